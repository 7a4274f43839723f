// The whole HVM guest OS, bundled as /boot/hvm-kernel.mjs and started by the jailer as PID 1 of
// a sandbox, the way the hypervisor starts it, against a stand-in hypervisor on fd 3 (the four
// hypercalls an HVM kernel makes: hvm.platform, memory.map_self, evtchn.open, sched.shutdown)
// and a real device model (PcMachine, firmware: false) in a worker thread on the domain's
// memfds. Through the emulated UART: the firmware and kernel messages, a shell, the IDE disk
// and CD-ROM as /dev/hda and /dev/hdc, ping over the RTL8139 (the test answers ARP and ICMP
// on the NIC's backend), and poweroff, which flushes the disk and reports the shutdown.
import { buildSync } from 'esbuild';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { jailerPath, native, nativeBuildDir } from '../../native/index.js';
import { MessageSocket } from '../../drivers/hypercall/channel.js';
import { HVM_IOREQ_PAGES, PlatformWord } from '../../drivers/hypercall/hvm-platform-page.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { nativeFutex } from '../../drivers/ioreq/native-futex.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const missing = process.getuid?.() !== 0 ? 'needs root' : null;
const RAM = 64 * 1024 * 1024;
const IRQ_PORT = 7;
const GUEST_MAC = '00:16:3e:4b:00:01';
const GW_MAC = Uint8Array.of(0x00, 0x16, 0x3e, 0x00, 0x00, 0xfe);

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {
      /* best effort */
    }
  }
});

function ipSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (b[off + i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** The LAN's 10.0.0.1: answers ARP and ICMP echo for itself. */
function gateway(frame: Uint8Array): Uint8Array | null {
  const et = (frame[12]! << 8) | frame[13]!;
  if (et === 0x0806 && frame[21] === 1 && frame.subarray(38, 42).join('.') === '10.0.0.1') {
    const r = new Uint8Array(42);
    r.set(frame.subarray(6, 12), 0);
    r.set(GW_MAC, 6);
    r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
    r.set(GW_MAC, 22);
    r.set([10, 0, 0, 1], 28);
    r.set(frame.subarray(22, 32), 32); // sender MAC + IP become the target
    return r;
  }
  if (et === 0x0800 && frame[23] === 1 && frame.subarray(30, 34).join('.') === '10.0.0.1') {
    const ihl = (frame[14]! & 0xf) * 4;
    const total = (frame[16]! << 8) | frame[17]!;
    const r = frame.slice(0, 14 + total);
    r.set(frame.subarray(6, 12), 0);
    r.set(GW_MAC, 6);
    r.set(frame.subarray(30, 34), 26);
    r.set(frame.subarray(26, 30), 30);
    const icmp = 14 + ihl;
    if (r[icmp] !== 8) return null;
    r[icmp] = 0;
    r[icmp + 2] = r[icmp + 3] = 0;
    const c = ipSum(r, icmp, total - ihl);
    r[icmp + 2] = c >> 8;
    r[icmp + 3] = c & 0xff;
    return r;
  }
  return null;
}

interface Booted {
  serial: () => string;
  msgs: { type: string; [k: string]: any }[];
  shutdowns: string[];
  calls: string[];
  exited: Promise<number | null>;
  base: string;
  type(s: string): void;
  until(what: string, cond: () => boolean, ms?: number): Promise<void>;
  run(cmd: string, marker: string, ms?: number): Promise<string>;
}

/** Starts the bundled HVM kernel in a jailer sandbox on a fresh device model. */
async function bootGuest(o: { cmdline: string; nic?: boolean; disks?: boolean }): Promise<Booted> {
  // ---- the domain's files: /boot with the bundled kernel and the addon
  const base = mkdtempSync(join(tmpdir(), 'xenode-hvm-boot-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o755);
  const bootDir = join(base, 'boot');
  const rootDir = join(base, 'root');
  mkdirSync(bootDir);
  mkdirSync(rootDir, { mode: 0o755 });
  buildSync({
    entryPoints: [join(root, 'guest/hvm/main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(bootDir, 'hvm-kernel.mjs'),
    banner: { js: "import { createRequire as __xenodeCreateRequire } from 'node:module'; const require = __xenodeCreateRequire(import.meta.url);" },
    logLevel: 'silent',
  });
  copyFileSync(join(nativeBuildDir(), 'xenode.node'), join(bootDir, 'xenode.node'));
  // As the hypervisor stages it: the kernel starts every guest program through it.
  copyFileSync(join(nativeBuildDir(), 'xenode-rootboot'), join(bootDir, 'xenode-rootboot'));
  chmodSync(join(bootDir, 'xenode-rootboot'), 0o755);
  const disk = Buffer.alloc(4 * 1024 * 1024);
  disk.write('XENODEDISK', 0, 'latin1');
  disk[510] = 0x55;
  disk[511] = 0xaa;
  writeFileSync(join(base, 'disk.img'), disk);
  const iso = Buffer.alloc(40 * 2048);
  iso[16 * 2048] = 1;
  iso.write('CD001', 16 * 2048 + 1, 'latin1');
  writeFileSync(join(base, 'cd.iso'), iso);

  // ---- the domain's memory and ioreq pages (memfds), the irq doorbell
  const n = native();
  const ramFd = n.memfdCreate('hvm-ram', RAM);
  const ioreqFd = n.memfdCreate('hvm-ioreq', HVM_IOREQ_PAGES * 4096);
  const ram = n.mapShared(ramFd, RAM);
  const pages = n.mapShared(ioreqFd, HVM_IOREQ_PAGES * 4096);
  const words = new Int32Array(pages);
  const irqFd = n.eventfdCreate(0);
  cleanups.push(() => [ramFd, ioreqFd, irqFd].forEach((fd) => n.close(fd)));

  // ---- the device model
  const entry = fileURLToPath(new URL('./fixtures/machine-worker.ts', import.meta.url));
  const code = buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', write: false, target: 'node20', logLevel: 'silent' }).outputFiles[0]!.text;
  const { port1, port2 } = new MessageChannel();
  const dmPort: MessagePort = port1;
  let serial = '';
  const msgs: { type: string; [k: string]: any }[] = [];
  dmPort.on('message', (m) => {
    msgs.push(m);
    if (m.type === 'serial') serial += Buffer.from(m.data).toString('latin1');
    if (m.type === 'tx') {
      const reply = gateway(new Uint8Array(m.frame));
      if (reply) dmPort.postMessage({ type: 'rx', devid: 0, frame: reply, id: 0 });
    }
  });
  const dm = new Worker(code, {
    eval: true,
    workerData: {
      addon: join(nativeBuildDir(), 'xenode.node'),
      ram,
      pages,
      irqFd,
      port: port2,
      nics: o.nic ? [{ devid: 0, mac: GUEST_MAC }] : [],
      disks: o.disks
        ? [
            { index: 0, path: join(base, 'disk.img') },
            { index: 2, path: join(base, 'cd.iso'), cdrom: true },
          ]
        : [],
      serial: true,
    },
    transferList: [port2],
  });
  cleanups.push(() => {
    IoreqServer.requestStop({ view: words, index: PlatformWord.STOP }, { view: words, index: PlatformWord.DOORBELL }, nativeFutex());
    void dm.terminate();
  });

  // ---- the stand-in hypervisor on the guest's fd 3
  const [ours, theirs] = n.seqpacketPair();
  const shutdowns: string[] = [];
  const calls: string[] = [];
  const hv = new MessageSocket(
    ours,
    ({ message, fds }) => {
      for (const fd of fds) n.close(fd);
      const { id, op, args } = message as { id: number; op: string; args: any };
      calls.push(op);
      const reply = (result: unknown, fds: number[] = []) => hv.send({ id, result }, fds);
      switch (op) {
        case 'hvm.platform':
          return reply({ vcpus: 1, memoryBytes: RAM, irqPort: IRQ_PORT, cmdline: o.cmdline }, [ioreqFd]);
        case 'memory.map_self':
          return reply({ bytes: RAM, nrPages: RAM / 4096 }, [ramFd]);
        case 'evtchn.open':
          if (args.port !== IRQ_PORT) return hv.send({ id, error: { errno: 'EINVAL', message: 'no such port' } });
          return reply({ state: 'interdomain' }, [irqFd]);
        case 'sched.shutdown':
          shutdowns.push(args.reason);
          return reply(null);
        default:
          return hv.send({ id, error: { errno: 'ENOSYS', message: op } });
      }
    },
    () => {},
  );
  cleanups.push(() => hv.close());

  // ---- the domain
  const child: ChildProcess = spawn(
    jailerPath(),
    [
      '--uid-base', String(330000 + (process.pid % 40) * 65536), '--uid-count', '65536', '--hostname', 'hvm-test', '--root', rootDir, '--boot-dir', bootDir,
      '--keep-fd', '3', '--tun-fds', '2', '--env', 'XENODE_TUN_FDS=4-5', '--env', 'XENODE_NATIVE_DIR=/boot',
      '--', process.execPath, '--max-semi-space-size=1', '/boot/hvm-kernel.mjs',
    ],
    { stdio: ['pipe', 'pipe', 'pipe', theirs] },
  );
  n.close(theirs);
  let kernelLog = '';
  child.stdout!.on('data', (d) => (kernelLog += d));
  child.stderr!.on('data', (d) => (kernelLog += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  child.stdin!.end('g');

  const until = async (what: string, cond: () => boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n--- serial:\n${serial.slice(-3000)}\n--- kernel log:\n${kernelLog.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const type = (s: string) => dmPort.postMessage({ type: 'serial-in', data: Buffer.from(s) });
  const run = async (cmd: string, marker: string, ms = 15_000) => {
    const from = serial.length;
    type(`${cmd}; echo ${marker}-$((1+1))\r`);
    await until(marker, () => serial.slice(from).includes(`${marker}-2`), ms);
    return serial.slice(from);
  };
  return { serial: () => serial, msgs, shutdowns, calls, exited, base, type, until, run };
}

describe('HVM guest OS boot (jailer + device model)', () => {
  it.skipIf(missing !== null)(`boots to a shell on the serial console, uses the disk, CD-ROM and NIC, powers off${missing ? ` (skipped: ${missing})` : ''}`, async () => {
    const g = await bootGuest({ cmdline: 'console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off xenode.boot=c xenode.hvm_stats=200', nic: true, disks: true });
    await g.until('the firmware', () => g.serial().includes('HVM Loader'));
    await g.until('the boot device', () => g.serial().includes('Booting from Hard Disk...'));
    await g.until('the kernel', () => g.serial().includes('Linux version'));
    await g.until('the shell', () => g.serial().includes('Run /bin/sh as init process'));
    await new Promise((r) => setTimeout(r, 300));
    const serial = g.serial();
    expect(serial).toContain('Booting from 0000:7c00');
    expect(serial).toMatch(/ttyS0 at I\/O 0x3f8 \(irq = 4, base_baud = 115200\) is a 16550A/);
    expect(serial).toMatch(/ata1\.00: ATA-7: XENODE HARDDISK/);
    expect(serial).toMatch(/8139too: eth0: RealTek RTL8139 at 0xc[0-9a-f]+, 00:16:3e:4b:00:01, IRQ 11/);
    expect(serial).toContain('IP-Config: Complete:');

    let out = await g.run('echo hello-$((6*7))', 'M1');
    expect(out).toContain('hello-42');
    out = await g.run('head -c 10 /dev/hda; echo; dd if=/dev/hdc bs=2048 skip=16 count=1 2>/dev/null | head -c 6 | tail -c 5; echo', 'M2');
    expect(out).toContain('XENODEDISK');
    expect(out).toContain('CD001');
    await g.run('printf PERSISTED | dd of=/dev/hda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null', 'M3');
    out = await g.run('ping -c 2 -W 2 10.0.0.1 | tail -2', 'M4', 20_000);
    expect(out).toMatch(/2 packets transmitted, 2 received/);
    out = await g.run('cat /run/xenode/hvm-stats.json | head -c 300', 'M5');
    expect(out).toContain('"exits"');
    if (process.env.HVM_BOOT_DUMP) console.log(g.serial());

    g.type('poweroff\r');
    await g.until('the shutdown report', () => g.shutdowns.length > 0);
    expect(g.shutdowns).toEqual(['poweroff']);
    expect(await g.exited).toBe(0);
    expect(g.serial()).toContain('reboot: Power down');
    expect(readFileSync(join(g.base, 'disk.img')).subarray(100 * 512, 100 * 512 + 9).toString('latin1')).toBe('PERSISTED');
    expect(g.calls.slice(0, 3)).toEqual(['hvm.platform', 'memory.map_self', 'evtchn.open']);
    // Nothing else but what the guest's /proc views ask about the domain (its CPU time and
    // memory use, as the PV kernel's do; this stand-in hypervisor answers ENOSYS).
    const procViews = ['vcpu.runstate', 'memory.stat'];
    expect(g.calls.filter((c) => ![...procViews, 'hvm.platform', 'memory.map_self', 'evtchn.open', 'sched.shutdown'].includes(c))).toEqual([]);
  }, 90_000);

  it.skipIf(missing !== null)(`reboots through 0xCF9 and panics when init dies${missing ? ` (skipped: ${missing})` : ''}`, async () => {
    const r = await bootGuest({ cmdline: 'init=/bin/sh -c "sleep 0.2; reboot; sleep 10"' });
    await r.until('the reboot report', () => r.shutdowns.length > 0);
    expect(r.shutdowns).toEqual(['reboot']);
    expect(await r.exited).toBe(0);
    expect(r.serial()).toContain('reboot: Restarting system');
    expect(r.msgs.some((m) => m.type === 'reset' && m.hard === true)).toBe(true);

    const c = await bootGuest({ cmdline: 'init=/bin/false' });
    await c.until('the crash report', () => c.shutdowns.length > 0);
    expect(c.shutdowns).toEqual(['crash']);
    expect(c.serial()).toContain('Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100');
  }, 60_000);
});
