// The toolstack (libxl's job, in dom0): builds PV domains, wires them to xenstored and the
// console daemon, applies on_poweroff/on_reboot/on_crash when the hypervisor reports a
// domain has stopped (VIRQ_DOM_EXC), and answers xl's queries.
import { randomUUID } from 'node:crypto';
import type { HypercallClient } from '../../drivers/hypercall/channel.js';
import type { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { encodeStartInfo, specialPages, START_INFO_MAGIC } from '../../drivers/hypercall/start-info.js';
import type { DomainInfo, HostInfo, ShutdownReason } from '../../drivers/hypercall/ops.js';
import type { ForeignMemory } from '../foreign-memory.js';
import type { Logger } from '../../common/log.js';
import type { Action, BuildSpec } from './build-spec.js';
import { writeDomainLayout } from './xenstore-layout.js';
import { dumpCore } from './coredump.js';
import { HvmBuilder } from './hvm-builder.js';
import { ToolstackError } from './rpc.js';
import { addDevice, listDevices, removeDevice, type DeviceEntries, type DeviceXs } from './devices/device-store.js';
import { deviceKinds } from './devices/device-kinds.js';
import './devices/all-kinds.js';
import { ownEntry } from '../../common/own-entry.js';

/** What the toolstack needs of xenstore (an XsClient on dom0's in-process connection). */
export type ToolstackXs = DeviceXs;

/** What the toolstack needs of xenstored itself (domain introduction and release). */
export interface ToolstackXenstored {
  introduceDomain(domid: number, ring: { page: Uint8Array; notify: () => void; holdOff?: (ms: number) => void }): { onEvent(): void };
  releaseDomain(domid: number): void;
}

export interface ConsoleAttach {
  attach(c: { domid: number; name: string; page: Uint8Array; port: number }): Promise<string>;
  detach(domid: number): void;
}

interface DomainRecord {
  domid: number;
  name: string;
  uuid: string;
  spec: BuildSpec;
  storePort: number;
  consolePort: number;
  /** A shutdown we already acted on (so a second VIRQ does not restart it twice). */
  handled: boolean;
  waiters: (() => void)[];
}

const REASON_ACTION: Record<ShutdownReason, (s: BuildSpec) => Action | null> = {
  poweroff: (s) => s.onPoweroff,
  reboot: (s) => s.onReboot,
  crash: (s) => s.onCrash,
  watchdog: (s) => s.onWatchdog,
  soft_reset: () => 'restart',
  suspend: () => null,
};

export class Toolstack {
  private readonly records = new Map<number, DomainRecord>();
  private stopping = false;

  constructor(
    private readonly hc: HypercallClient,
    private readonly xs: ToolstackXs,
    private readonly xenstored: ToolstackXenstored,
    private readonly evtchn: EventChannels,
    private readonly foreign: ForeignMemory,
    private readonly consoles: ConsoleAttach,
    private readonly log: Logger,
    private readonly hvm?: HvmBuilder,
  ) {}

  // ------------------------------------------------------------------ create / destroy

  async create(spec: BuildSpec, opts: { paused?: boolean } = {}): Promise<number> {
    if (this.stopping) throw new ToolstackError('ESHUTDOWN', 'xenode is stopping');
    const hvm = spec.type === 'hvm';
    if (hvm && !this.hvm) throw new ToolstackError('ENOSYS', `${spec.name}: HVM guests need the stub domain, which this dom0 does not run`);
    for (const r of this.records.values()) {
      if (r.name === spec.name) throw new ToolstackError('EEXIST', `domain with name "${spec.name}" already exists (domid ${r.domid})`);
    }
    const uuid = spec.uuid ?? randomUUID();
    const nrPages = spec.memoryMiB * 256;
    const sp = specialPages(nrPages);
    const { domid } = await this.hc.invoke<{ domid: number }>('domctl.createdomain', {
      label: spec.name,
      uuid,
      memoryMiB: spec.memoryMiB,
      maxMemMiB: spec.maxMemMiB,
      vcpus: spec.vcpus,
      maxVcpus: spec.maxVcpus,
      cpus: spec.cpus,
      kernel: hvm ? HvmBuilder.kernelArgs(spec) : { kind: 'pv', startInfoPfn: sp.startInfo },
    });
    const rec: DomainRecord = { domid, name: spec.name, uuid, spec, storePort: 0, consolePort: 0, handled: false, waiters: [] };
    this.records.set(domid, rec);
    try {
      const mem = await this.foreign.map(domid);
      // The guest's ends of its xenstore and console channels, waiting for dom0.
      const guestStore = (await this.hc.invoke<{ port: number }>('evtchn.alloc_unbound', { dom: domid, remote_dom: 0 })).port;
      const guestConsole = (await this.hc.invoke<{ port: number }>('evtchn.alloc_unbound', { dom: domid, remote_dom: 0 })).port;
      rec.storePort = await this.evtchn.bindInterdomain(domid, guestStore);
      rec.consolePort = await this.evtchn.bindInterdomain(domid, guestConsole);

      encodeStartInfo(mem.page(sp.startInfo), {
        magic: START_INFO_MAGIC,
        nrPages,
        sharedInfoFrame: sp.sharedInfo,
        flags: 0,
        storeMfn: sp.xenstore,
        storeEvtchn: guestStore,
        consoleMfn: sp.console,
        consoleEvtchn: guestConsole,
        cmdLine: spec.cmdline,
      });
      if (hvm) await this.hvm!.setStoreParams(domid, sp.xenstore, guestStore, sp.console, guestConsole);
      await writeDomainLayout(this.xs, spec, {
        domid,
        uuid,
        storeMfn: sp.xenstore,
        storePort: guestStore,
        consoleMfn: sp.console,
        consolePort: guestConsole,
      });
      const storePort = rec.storePort;
      const conn = this.xenstored.introduceDomain(domid, { page: mem.page(sp.xenstore), notify: () => this.evtchn.notify(storePort), holdOff: (ms) => this.evtchn.holdOff(storePort, ms) });
      this.evtchn.on(storePort, () => conn.onEvent());
      // An HVM guest's console is its emulated serial line (the builder wires it); a PV guest's
      // is the console ring.
      if (hvm) await this.hvm!.build(spec, domid);
      else await this.consoles.attach({ domid, name: spec.name, page: mem.page(sp.console), port: rec.consolePort });
      for (const kind of deviceKinds) {
        for (const d of kind.fromSpec(spec, domid)) await addDevice(this.xs, domid, d);
      }
      if (spec.weight !== undefined || spec.cap !== undefined) {
        await this.hc.invoke('domctl.scheduler_op', { domid, weight: spec.weight, cap: spec.cap });
      }
      if (!opts.paused) await this.hc.invoke('domctl.unpausedomain', { domid });
      this.log.info(`created domain ${domid} "${spec.name}"`);
      return domid;
    } catch (e) {
      this.log.error(`creating "${spec.name}" failed: ${(e as Error).message}; cleaning up domain ${domid}`);
      await this.destroy(domid).catch(() => {});
      throw e;
    }
  }

  /** Tear a domain down completely: hypervisor state, console, xenstore nodes, mappings. */
  async destroy(domid: number): Promise<void> {
    const rec = this.records.get(domid);
    await this.hc.invoke('domctl.destroydomain', { domid }).catch((e: Error & { errno?: string }) => {
      if (e.errno !== 'ESRCH') throw e;
    });
    // The guest is gone: its devices go without waiting for it to close them.
    for (const d of await listDevices(this.xs, domid)) await removeDevice(this.xs, domid, d.type, d.devid, { force: true });
    this.consoles.detach(domid);
    await this.hvm?.destroy(domid);
    if (rec) {
      for (const p of [rec.storePort, rec.consolePort]) if (p) await this.evtchn.close(p).catch(() => {});
      this.records.delete(domid);
      await this.xs.rm(`/vm/${rec.uuid}`).catch(() => {});
      for (const w of rec.waiters) w();
    }
    this.xenstored.releaseDomain(domid);
    await this.xs.rm(`/libxl/${domid}`).catch(() => {});
    this.foreign.unmap(domid);
    this.log.info(`destroyed domain ${domid}${rec ? ` "${rec.name}"` : ''}`);
  }

  async destroyAll(): Promise<void> {
    this.stopping = true;
    for (const domid of [...this.records.keys()]) await this.destroy(domid).catch((e) => this.log.error((e as Error).message));
  }

  // ------------------------------------------------------------------ VIRQ_DOM_EXC

  /** The hypervisor says some domain changed state: act on every newly stopped one. */
  async onDomainException(): Promise<void> {
    const infos = await this.hc.invoke<DomainInfo[]>('sysctl.getdomaininfolist');
    for (const info of infos) {
      const rec = this.records.get(info.domid);
      if (!rec || rec.handled || !info.shutdownReason) continue;
      rec.handled = true;
      for (const w of rec.waiters.splice(0)) w();
      // The reason came from the hypervisor, which checks it; look it up as an own entry all the same.
      const action = ownEntry(REASON_ACTION, info.shutdownReason)?.(rec.spec) ?? null;
      this.log.info(`domain ${info.domid} "${rec.name}" ${info.shutdownReason === 'crash' ? 'crashed' : `shut down (${info.shutdownReason})`}; action ${action ?? 'none'}`);
      if (action) await this.apply(rec, action).catch((e) => this.log.error(`on_${info.shutdownReason}=${action} for ${rec.name}: ${(e as Error).message}`));
    }
  }

  private async apply(rec: DomainRecord, action: Action): Promise<void> {
    if (this.stopping) return;
    switch (action) {
      case 'preserve':
        return;
      case 'destroy':
        return this.destroy(rec.domid);
      case 'coredump-destroy':
        this.coredump(rec);
        return this.destroy(rec.domid);
      case 'coredump-restart':
        this.coredump(rec);
        return this.restart(rec);
      case 'restart':
      case 'soft-reset':
        return this.restart(rec);
      case 'rename-restart': {
        // Keep the old domain for inspection under a new name; start a fresh one.
        const oldName = `${rec.name}--${rec.domid}`;
        rec.name = oldName;
        await this.xs.write(`/local/domain/${rec.domid}/name`, oldName);
        await this.hc.invoke('domctl.setlabel', { domid: rec.domid, label: oldName });
        await this.create({ ...rec.spec });
        return;
      }
    }
  }

  private async restart(rec: DomainRecord): Promise<void> {
    await this.destroy(rec.domid);
    await this.create({ ...rec.spec, uuid: rec.uuid });
  }

  private coredump(rec: DomainRecord): void {
    const mem = this.foreign.get(rec.domid);
    if (!mem) return;
    const path = dumpCore(rec.name, rec.domid, mem.memory);
    this.log.info(`dumped core of ${rec.name} to ${path}`);
  }

  // ------------------------------------------------------------------ control

  /** Resolve a domain given by name or id, as xl's find_domain does. */
  resolve(dom: unknown): number {
    const s = String(dom ?? '');
    if (/^\d+$/.test(s)) {
      const id = Number(s);
      if (id === 0 || this.records.has(id)) return id;
    }
    for (const r of this.records.values()) if (r.name === s) return r.domid;
    if (s === 'Domain-0') return 0;
    throw new ToolstackError('ESRCH', `invalid domain identifier "${s}"`);
  }

  record(domid: number): DomainRecord {
    const r = this.records.get(domid);
    if (!r) throw new ToolstackError('ESRCH', `domain ${domid} is not a guest`);
    return r;
  }

  nameOf(domid: number): string {
    return domid === 0 ? 'Domain-0' : (this.records.get(domid)?.name ?? `(null)`);
  }

  /** Ask the guest to shut down through xenstore (control/shutdown), as xl shutdown does. */
  async requestShutdown(domid: number, reason: 'poweroff' | 'reboot' | 'halt' | 'suspend'): Promise<void> {
    const rec = this.record(domid);
    const feature = await this.xs.read(`/local/domain/${domid}/control/feature-${reason === 'halt' ? 'poweroff' : reason}`).catch(() => '');
    if (feature !== '1' && reason !== 'suspend') throw new ToolstackError('EOPNOTSUPP', `PV control interface not available for ${rec.name}`);
    await this.xs.write(`/local/domain/${domid}/control/shutdown`, reason);
  }

  /** Resolve when the domain has shut down (or is gone). */
  waitForShutdown(domid: number, timeoutMs: number): Promise<boolean> {
    const rec = this.records.get(domid);
    if (!rec || rec.handled) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      rec.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async domainInfos(): Promise<(DomainInfo & { name: string })[]> {
    const infos = await this.hc.invoke<DomainInfo[]>('sysctl.getdomaininfolist');
    return infos.filter((i) => i.domid === 0 || this.records.has(i.domid)).map((i) => ({ ...i, name: this.nameOf(i.domid) }));
  }

  async hostInfo(): Promise<HostInfo> {
    return this.hc.invoke<HostInfo>('sysctl.physinfo');
  }

  specs(): { domid: number; spec: BuildSpec }[] {
    return [...this.records.values()].map((r) => ({ domid: r.domid, spec: r.spec }));
  }

  /** Hot-plug a device into a running guest (xl network-attach / block-attach). */
  async attachDevice(domid: number, d: DeviceEntries): Promise<void> {
    this.record(domid);
    const existing = await listDevices(this.xs, domid);
    if (existing.some((e) => e.type === d.type && e.devid === d.devid)) {
      throw new ToolstackError('EEXIST', `domain ${domid} already has ${d.type} device ${d.devid}`);
    }
    await addDevice(this.xs, domid, d);
  }

  /** Unplug: the backend closes, the frontend lets go, then both directories go. */
  async detachDevice(domid: number, type: string, devid: number, force = false): Promise<void> {
    this.record(domid);
    const existing = await listDevices(this.xs, domid);
    if (!existing.some((e) => e.type === type && e.devid === devid)) {
      throw new ToolstackError('ENOENT', `domain ${domid} has no ${type} device ${devid}`);
    }
    const clean = await removeDevice(this.xs, domid, type, devid, { force });
    if (!clean) this.log.warn(`${type} ${devid} of domain ${domid} did not close in time; removed anyway`);
  }

  async devicesOf(domid: number): Promise<{ type: string; devid: number }[]> {
    return listDevices(this.xs, domid);
  }

  async setMemoryTarget(domid: number, targetKiB: number): Promise<void> {
    this.record(domid);
    await this.hc.invoke('domctl.set_target', { domid, targetKiB });
    await this.xs.write(`/local/domain/${domid}/memory/target`, String(targetKiB));
  }

  async setMaxMemory(domid: number, maxKiB: number): Promise<void> {
    this.record(domid);
    await this.hc.invoke('domctl.max_mem', { domid, maxKiB });
    await this.xs.write(`/local/domain/${domid}/memory/static-max`, String(maxKiB));
  }

  async setOnlineVcpus(domid: number, count: number): Promise<void> {
    const rec = this.record(domid);
    await this.hc.invoke('domctl.max_vcpus', { domid, online: count });
    for (let i = 0; i < rec.spec.maxVcpus; i++) {
      await this.xs.write(`/local/domain/${domid}/cpu/${i}/availability`, i < count ? 'online' : 'offline');
    }
  }
}
