// What one stub domain per HVM guest costs (as root): the same device models (an idle PC with
// 128 MiB of RAM and the standard VGA, no disks or NICs) started for 1, 2 and 3 guests,
//   shared     all in one unconfined stub domain process (one worker thread per guest), as
//              xenode ran them before the stub domain was confined;
//   per guest  each in a confined stub domain of its own (dom0/stubdom-host.ts: the sandbox,
//              cgroups, uid range), as now.
// For each: the time from `start` until the guest's first exit is answered (spawn, Node
// start-up, the device model's worker; an `inl 0xCF8` through the ioreq page) and the
// memory the stub domain processes hold (USS: private pages; node's shared text not counted).
// Bounded: ROUNDS rounds of at most 3 guests; everything started is stopped.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../native/index.js';
import { HypercallClient } from '../drivers/hypercall/channel.js';
import { HVM_IOREQ_PAGES, IOREQ_PAGE_OFFSET, PlatformWord } from '../drivers/hypercall/hvm-platform-page.js';
import { IOREQ_READ, IOREQ_TYPE_PIO } from '../drivers/wire/ioreq.js';
import { IoreqVcpuPort } from '../drivers/ioreq/ioreq-vcpu.js';
import { nativeFutex } from '../drivers/ioreq/native-futex.js';
import { StubdomHost } from '../dom0/stubdom-host.js';
import { logger } from '../common/log.js';
import { procMem } from './lib/procmem.js';
import { median, table } from './lib/stats.js';
import { ROOT } from './lib/instance.js';

const ROUNDS = 3;
const GUESTS = 3;
const MEMORY = 128 << 20;
const VRAM = 16 << 20;
const settle = () => new Promise((r) => setTimeout(r, 1500));

interface Guest { domid: number; memory: number; ioreq: number; irq: number }

function fakeGuest(domid: number): Guest {
  const n = native();
  return { domid, memory: n.memfdCreate(`bench-d${domid}-ram`, MEMORY), ioreq: n.memfdCreate(`bench-d${domid}-ioreq`, HVM_IOREQ_PAGES * 4096), irq: n.eventfdCreate() };
}

/** Blocks until the device model answers one PIO read on vCPU 0's slot (it is serving). */
function firstExit(g: Guest): void {
  const pages = native().mapShared(g.ioreq, HVM_IOREQ_PAGES * 4096);
  const port = new IoreqVcpuPort(pages, IOREQ_PAGE_OFFSET, 0, { view: new Int32Array(pages), index: PlatformWord.DOORBELL }, nativeFutex());
  port.call({ type: IOREQ_TYPE_PIO, addr: 0xcf8n, size: 4, dir: IOREQ_READ }, 10_000);
}

function closeGuest(g: Guest): void {
  for (const fd of [g.memory, g.ioreq, g.irq]) native().close(fd);
}

const spec = (g: Guest) => ({ domid: g.domid, name: `bench${g.domid}`, vcpus: 1, memoryBytes: MEMORY, disks: [], display: { vramBytes: VRAM, vnc: null } });

interface Model {
  /** Start one guest's device model. */
  start(g: Guest): Promise<void>;
  /** The pids of the stub domain processes. */
  pids(guests: Guest[]): number[];
  stop(guests: Guest[]): Promise<void>;
}

/** Start GUESTS device models one after another: time to each one's first answered exit, and
 * the stub domains' USS once each has settled. */
async function measure(model: Model): Promise<{ startMs: number[]; ussMiB: number[] }> {
  const startMs: number[] = [];
  const ussMiB: number[] = [];
  const guests: Guest[] = [];
  try {
    for (let i = 1; i <= GUESTS; i++) {
      const g = fakeGuest(i);
      guests.push(g);
      const t0 = performance.now();
      await model.start(g);
      firstExit(g);
      startMs.push(performance.now() - t0);
      await settle();
      ussMiB.push(model.pids(guests).reduce((t, pid) => t + procMem(pid).uss, 0) / 1048576);
    }
  } finally {
    await model.stop(guests);
    guests.forEach(closeGuest);
  }
  return { startMs, ussMiB };
}

/** All guests' device models in one unconfined stub domain, as before. */
function shared(): Model {
  const [ours, theirs] = native().seqpacketPair();
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'stubdom', 'main.js')], { stdio: ['ignore', 'ignore', 'inherit', theirs] });
  native().close(theirs);
  const client = new HypercallClient(ours);
  return {
    start: async (g) => void (await client.call('start', { ...spec(g), fds: { memory: 0, ioreq: 1, irq: 2, serial: -1, log: -1 }, nics: [] }, [g.memory, g.ioreq, g.irq])),
    pids: () => [child.pid!],
    stop: async (guests) => {
      for (const g of guests) await client.call('stop', { domid: g.domid }).catch(() => {});
      client.close();
      child.kill('SIGKILL');
    },
  };
}

/** A confined stub domain per guest, as dom0 runs them now. */
function perGuest(): Model {
  const host = new StubdomHost(logger('bench'), () => {});
  return {
    start: async (g) => void (await host.start(spec(g), { memory: g.memory, ioreq: g.ioreq, irq: g.irq, serial: -1, consoleLog: join(process.env.XENODE_RUN_DIR!, `bench${g.domid}.log`), taps: [], disks: new Map() })),
    pids: (guests) => guests.map((g) => host.pidOf(g.domid) ?? 0),
    stop: async (guests) => {
      for (const g of guests) await host.stop(g.domid);
    },
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (the stub domain sandbox)');
  const dir = mkdtempSync(join(tmpdir(), 'xenode-bench-stubdom-'));
  process.env.XENODE_RUN_DIR = dir;
  process.env.XENODE_CGROUP = `xenode-bench-stubdom-${process.pid}`;
  const runs: Record<string, { startMs: number[][]; ussMiB: number[][] }> = { shared: { startMs: [], ussMiB: [] }, 'per guest': { startMs: [], ussMiB: [] } };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, fn] of [['shared', shared], ['per guest', perGuest]] as const) {
        const res = await measure(fn());
        runs[name]!.startMs.push(res.startMs);
        runs[name]!.ussMiB.push(res.ussMiB);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: string[][] = [];
  for (const [name, v] of Object.entries(runs)) {
    for (let i = 0; i < GUESTS; i++) {
      rows.push([name, String(i + 1), median(v.startMs.map((s) => s[i]!)).toFixed(0), median(v.ussMiB.map((s) => s[i]!)).toFixed(1)]);
    }
  }
  process.stdout.write(table([['stub domains', 'guests', `guest N's first exit answered after, ms (median of ${ROUNDS})`, 'stub domain USS, MiB'], ...rows]) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
