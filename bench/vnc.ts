// VNC benchmark (npm run bench:vnc):
//   1. a full-screen 80x25 text update (a screenful of boot log) per encoding - bytes on the
//      wire and time until the viewer has the whole update - and a one-line scroll of it, with
//      CopyRect + ZRLE against ZRLE and Raw alone; in-process, the stub domain's own display
//      and VNC server against the VGA's shared state, over loopback TCP;
//   2. (as root) the stub domain's CPU with an idle display: an HVM guest at its prompt, once
//      without a viewer and once with a viewer waiting for an update that never comes
//      (target: under 1% of a CPU).
// Every loop is bounded; everything started is torn down. Prints a table and writes JSON to
// bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VgaState } from '../stubdom/devices/vga/vga-shared.js';
import { VgaCore } from '../stubdom/devices/vga/vga.js';
import { DisplaySurface } from '../stubdom/display/display-surface.js';
import { VgaFont } from '../stubdom/display/psf-font.js';
import { VncServer } from '../stubdom/vnc/vnc-server.js';
import { RfbProbe } from './lib/rfb-probe.js';
import { BenchInstance, ROOT } from './lib/instance.js';
import { procCpuNs } from './lib/procmem.js';
import { median, table } from './lib/stats.js';

const ROUNDS = 7;
const IDLE_WINDOW_MS = 10_000;
const TARGET_IDLE_CPU_PCT = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

/** A screenful of kernel log, as the guest's boot leaves its screen. */
function bootLogLines(n: number, from = 0): string[] {
  const devs = ['pci 00:00.0 Host bridge [0600]: [8086:1237] (rev 02)', 'serial8250: ttyS0 at I/O 0x3f8 (irq = 4) is a 16550A', 'ata1: PATA max MWDMA2 cmd 0x1f0 ctl 0x3f6 bmdma 0xc000 irq 14', '8139too: eth0: RealTek RTL8139 at 0xc200, 00:16:3e:38:d4:15, IRQ 11', 'Run /bin/sh as init process'];
  return Array.from({ length: n }, (_, i) => `[${(0.1 + (from + i) * 0.0137).toFixed(6).padStart(12)}] ${devs[(from + i) % devs.length]}`);
}

function paint(vga: VgaState, lines: string[]): void {
  for (let r = 0; r < 25; r++) {
    const text = (lines[r] ?? '').padEnd(80).slice(0, 80);
    for (let c = 0; c < 80; c++) {
      vga.vram[(r * 80 + c) * 2] = text.charCodeAt(c);
      vga.vram[(r * 80 + c) * 2 + 1] = 0x07;
    }
  }
  vga.touch();
}

async function encodings(): Promise<Record<string, { bytes: number; ms: number }>> {
  const vga = VgaState.create(16 << 20);
  new VgaCore(vga); // mode 3 registers, as the device model sets them
  const surface = new DisplaySurface(vga, new VgaFont());
  const server = await VncServer.open({ listen: '127.0.0.1', display: 50, findUnused: true, password: null, name: 'bench' }, surface, { key: () => {}, pointer: () => {} }, () => {});
  const out: Record<string, { bytes: number; ms: number }> = {};
  try {
    const cases: [string, number[], 'full' | 'scroll'][] = [
      ['full screen, Raw', [0], 'full'],
      ['full screen, ZRLE', [16, 0], 'full'],
      ['one-line scroll, Raw', [0], 'scroll'],
      ['one-line scroll, ZRLE', [16, 0], 'scroll'],
      ['one-line scroll, CopyRect + ZRLE', [1, 16, 0], 'scroll'],
    ];
    for (const [name, enc, kind] of cases) {
      const bytes: number[] = [];
      const ms: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        paint(vga, bootLogLines(25, i * 25));
        surface.refresh();
        const p = await RfbProbe.open(server.port, enc);
        const first = await p.update(false);
        if (kind === 'full') {
          bytes.push(first.bytes);
          ms.push(first.ms);
        } else {
          paint(vga, bootLogLines(25, i * 25 + 1));
          await sleep(5);
          const u = await p.update(true);
          bytes.push(u.bytes);
          ms.push(u.ms);
        }
        p.close();
      }
      out[name] = { bytes: median(bytes), ms: median(ms) };
    }
  } finally {
    server.close();
  }
  return out;
}

async function idleCpu(): Promise<{ withoutViewerPct: number; withViewerPct: number } | null> {
  if (process.getuid?.() !== 0) {
    log('not root: skipping the stub domain idle CPU measurement');
    return null;
  }
  const inst = new BenchInstance('vnc');
  const onSignal = () => void inst.stop().then(() => process.exit(1));
  process.once('SIGINT', onSignal);
  try {
    await inst.start();
    const cfg = join(inst.dir, 'idle.cfg');
    writeFileSync(cfg, ["builder = 'hvm'", "name = 'idle'", "memory = '128'", "serial = 'pty'", 'vnc = 1', ''].join('\n'));
    await inst.xl('create', cfg);
    const deadline = Date.now() + 60_000;
    const { domid } = await inst.rpc<{ domid: number }>('domid', { name: 'idle' });
    let pid: number | null = null;
    let port = 0;
    while (Date.now() < deadline && (!pid || !port)) {
      pid = (await inst.rpc<{ pid: number | null }>('dm-metrics', { dom: String(domid) })).pid;
      const r = await inst.run('xenstore-read', [`/local/domain/${domid}/console/vnc-port`]);
      port = Number(r.stdout.trim()) || 0;
      await sleep(200);
    }
    if (!pid || !port) throw new Error('the HVM guest did not come up');
    await sleep(3000); // boot settles
    const measure = async () => {
      const c0 = procCpuNs(pid!);
      const t0 = Date.now();
      await sleep(IDLE_WINDOW_MS);
      return ((procCpuNs(pid!) - c0) / 1e6 / (Date.now() - t0)) * 100;
    };
    const withoutViewerPct = await measure();
    const viewer = await RfbProbe.open(port, [16, 1, 0]);
    await viewer.update(false);
    // An incremental request that stays pending: the server checks for changes, finds none.
    viewer.request(true);
    const withViewerPct = await measure();
    viewer.close();
    return { withoutViewerPct, withViewerPct };
  } finally {
    process.off('SIGINT', onSignal);
    await inst.stop();
  }
}

async function main(): Promise<void> {
  const enc = await encodings();
  const idle = await idleCpu();
  const rows = Object.entries(enc).map(([k, v]) => [k, String(v.bytes), v.ms.toFixed(2)]);
  process.stdout.write(table([['update (720x400 text screen)', 'bytes on the wire', 'ms to the viewer'], ...rows]) + '\n');
  if (idle) {
    process.stdout.write(
      table([
        ['stub domain, idle HVM guest at its prompt', 'CPU % of one core', `target < ${TARGET_IDLE_CPU_PCT}%`],
        ['no viewer', idle.withoutViewerPct.toFixed(2), idle.withoutViewerPct < TARGET_IDLE_CPU_PCT ? 'met' : 'MISSED'],
        ['one viewer waiting for an update', idle.withViewerPct.toFixed(2), idle.withViewerPct < TARGET_IDLE_CPU_PCT ? 'met' : 'MISSED'],
      ]) + '\n',
    );
  }
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `vnc-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ encodings: enc, idle }, null, 2));
  log(`wrote ${file}`);
}

main().catch((e) => {
  process.stderr.write(`bench:vnc failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
