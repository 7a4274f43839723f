// The comparison's boot column: one image (busybox, MBR-partitioned) booted from its disk to
// the login prompt over PV (blkfront/blkback), PV-on-HVM (unplugged IDE, blkfront) and emulated
// IDE (PIIX3 in the stub domain), timed from `xl create` to "login:" on the console, with what
// the boot cost the device: sectors read, requests or IDE commands, ioreq exits (console UART
// excluded), and interrupts or event-channel notifications.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchInstance } from '../instance.js';
import { ConsoleTap } from '../console-tap.js';
import { nowMs } from '../stats.js';
import type { DmMetrics } from './counters.js';

export interface BootRun {
  key: 'pv' | 'pvhvm' | 'emulated';
  ms: number;
  sectorsRead: number;
  /** blkif requests (PV) or IDE commands (emulated). */
  requests: number;
  exits: number;
  notifies: number;
}

const LOGIN = /login: $/m;

function bootConfig(inst: BenchInstance, key: BootRun['key'], image: string): { name: string; path: string } {
  const name = `boot-${key}`;
  const lines = [`name = "${name}"`, 'memory = 256', 'vcpus = 1'];
  if (key === 'pv') lines.push(`disk = [ 'file:${image},xvda,w' ]`, 'root = "/dev/xvda1"', 'extra = "console=hvc0"');
  else lines.push('builder = "hvm"', `disk = [ 'file:${image},hda,w' ]`, 'serial = "pty"', 'boot = "c"', `extra = "${key === 'pvhvm' ? 'xen_pvhvm=1' : ''}"`);
  const path = join(inst.dir, `${name}.cfg`);
  writeFileSync(path, lines.join('\n') + '\n');
  return { name, path };
}

export async function bootOnce(inst: BenchInstance, key: BootRun['key'], image: string): Promise<BootRun> {
  const { name, path } = bootConfig(inst, key, image);
  const t0 = nowMs();
  await inst.xl('create', path);
  const { domid, tty } = await inst.rpc<{ domid: number; tty: string }>('console', { dom: name });
  const tap = new ConsoleTap(tty);
  try {
    const ms = (await tap.waitFor(LOGIN, 60_000)) - t0;
    const stats = await inst.rpc<Record<string, Record<string, number>>>('device-stats');
    const vbd = Object.entries(stats).find(([k]) => k.startsWith(`vbd/${domid}/`))?.[1] ?? {};
    let dm: DmMetrics | null = null;
    if (key !== 'pv') dm = (await inst.rpc<{ metrics: DmMetrics | null }>('dm-metrics', { dom: String(domid) })).metrics;
    const serialExits = (dm?.serial ?? []).reduce((s, x) => s + (x.exits ?? 0), 0);
    const exits = dm ? (dm.ioreq?.served ?? 0) + (dm.ioreq?.buffered ?? 0) - serialExits : 0;
    const ide = dm?.ide ?? {};
    const pvSectors = vbd.rd_sect ?? 0;
    return {
      key,
      ms,
      // PV-on-HVM reads some sectors over IDE (firmware, partition scan) before the unplug.
      sectorsRead: pvSectors + (ide.sectorsRead ?? 0),
      requests: (vbd.rd_req ?? 0) + (vbd.wr_req ?? 0) + (ide.commands ?? 0),
      exits,
      notifies: (vbd.notify_in ?? 0) + (vbd.notify_out ?? 0) + (ide.interrupts ?? 0),
    };
  } finally {
    tap.close();
    await inst.xl('destroy', name).catch(() => {});
  }
}
