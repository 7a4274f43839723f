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
import { dumpCore, dumpCoreTo } from './coredump.js';
import { HvmBuilder } from './hvm-builder.js';
import { ToolstackError } from './rpc.js';
import { addDevice, listDevices, removeDevice, type DeviceEntries, type DeviceXs } from './devices/device-store.js';
import { checkVbdSharing } from './devices/vbd-sharing.js';
import { deviceKinds } from './devices/device-kinds.js';
import './devices/all-kinds.js';
import { ownEntry } from '../../common/own-entry.js';
import { native } from '../../native/index.js';
import { memfdOf } from './save/image-reader.js';
import type { SaveHost } from './save/image-writer.js';
import { releaseDeadMapperPins } from '../../drivers/grant/grant-mapper.js';
import { loadDomainRecord, pruneDomainRecords, removeDomainRecord, saveDomainRecord, type SavedDomainRecord } from './domain-records.js';

/** What the toolstack needs of xenstore (an XsClient on dom0's in-process connection). */
export type ToolstackXs = DeviceXs;

/** What the toolstack needs of xenstored itself (domain introduction and release). */
type StoreRing = { page: Uint8Array; notify: () => void; holdOff?: (ms: number) => void };

export interface ToolstackXenstored {
  introduceDomain(domid: number, ring: StoreRing): { onEvent(): void };
  releaseDomain(domid: number): void;
  /** After a dom0 restart: carry on with the ring where the last xenstored left it. */
  resumeDomain?(domid: number, ring: StoreRing): { onEvent(): void } | undefined;
}

export interface ConsoleAttach {
  attach(c: { domid: number; name: string; page: Uint8Array; port: number }): Promise<string>;
  detach(domid: number): void;
}

/** What the toolstack knows of a domain it built: its saved record (domain-records.ts), and
 * what lives only as long as this dom0. */
interface DomainRecord extends SavedDomainRecord {
  /** A shutdown we already acted on (so a second VIRQ does not restart it twice). */
  handled: boolean;
  waiters: (() => void)[];
}

/** xl waits this long before re-creating a domain that asked to be restarted ("Done.
 * Rebooting now", then sleep(2) in xl_vmcontrol.c). */
export const RESTART_DELAY_MS = 2000;
/** A guest that stops again within this long of being (re)started restarted "quickly"... */
export const QUICK_RESTART_MS = 10_000;
/** ...and after this many quick restarts in a row it is left stopped, with a message. */
export const MAX_QUICK_RESTARTS = 5;
/** How long a new domain's devices may take to come up (hotplug-status) before create fails. */
const DEVICE_HOTPLUG_TIMEOUT_MS = 40_000; // LIBXL_HOTPLUG_TIMEOUT

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

  /** `restore` (xl restore, migrate-receive): the new domain's RAM, CPU and device state come
   * from a save image; it fills `memory` and returns the CPU and device state, before the
   * device models start (dom0/toolstack/save/image-reader.ts). */
  async create(spec: BuildSpec, opts: { paused?: boolean; monitor?: boolean; quickRestarts?: number; restore?: (domid: number, memory: Uint8Array) => Promise<{ cpu: Uint8Array; devices: Uint8Array }> } = {}): Promise<number> {
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
      kernel: hvm ? HvmBuilder.kernelArgs(spec, opts.restore !== undefined) : { kind: 'pv', startInfoPfn: sp.startInfo },
    });
    const rec: DomainRecord = {
      domid, name: spec.name, uuid, spec, storePort: 0, consolePort: 0, built: false, handled: false, waiters: [],
      monitor: opts.monitor !== false, startedAt: Date.now(), quickRestarts: opts.quickRestarts ?? 0,
    };
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
      this.saveRecord(rec);
      const storePort = rec.storePort;
      const conn = this.xenstored.introduceDomain(domid, this.storeRing(mem.page(sp.xenstore), storePort));
      this.evtchn.on(storePort, () => conn.onEvent());
      // The console ring: a PV guest's console; an HVM guest's PV console (hvc0, used when it
      // runs PV drivers), whose primary console is its emulated serial line (the builder wires
      // it after, so console/tty names the serial line as before).
      await this.consoles.attach({ domid, name: spec.name, page: mem.page(sp.console), port: rec.consolePort });
      if (opts.restore) {
        // The device models start while the pages come (a migration's downtime would otherwise
        // include starting them) and load their state once it is here, after the CPU's.
        await this.hvm!.build(spec, domid, true);
        const st = await opts.restore(domid, new Uint8Array(mem.memory));
        const fd = memfdOf('xenode-kvm-state', st.cpu);
        try {
          await this.hc.call('domctl.kvm_load_state', { domid, bytes: st.cpu.length }, [fd]);
        } finally {
          native().close(fd);
        }
        await this.hvm!.deliverState(domid, st.devices);
      } else if (hvm) await this.hvm!.build(spec, domid);
      const devices = deviceKinds.flatMap((kind) => kind.fromSpec(spec, domid));
      for (const d of devices) {
        if (d.type === 'vbd') await this.checkSharing(domid, d);
        await addDevice(this.xs, domid, d);
      }
      // As libxl (domcreate_attach_devices): the domain is only created once every device's
      // hotplug has succeeded; one that fails fails the create, which removes the domain.
      await this.awaitDevices(domid, devices);
      if (spec.weight !== undefined || spec.cap !== undefined) {
        await this.hc.invoke('domctl.scheduler_op', { domid, weight: spec.weight, cap: spec.cap });
      }
      if (!opts.paused) await this.hc.invoke('domctl.unpausedomain', { domid });
      rec.built = true;
      this.saveRecord(rec);
      this.log.info(`created domain ${domid} "${spec.name}"`);
      return domid;
    } catch (e) {
      this.log.error(`creating "${spec.name}" failed: ${(e as Error).message}; cleaning up domain ${domid}`);
      await this.destroy(domid).catch(() => {});
      throw e;
    }
  }

  /** What saving, restoring and migrating need from dom0 (dom0/toolstack/save/). */
  saveHost(): SaveHost {
    const dm = this.hvm?.deviceModels;
    if (!dm) throw new ToolstackError('ENOSYS', 'this dom0 runs no stub domain, so no HVM guest can be saved');
    return {
      hc: this.hc,
      memory: async (domid) => new Uint8Array((await this.foreign.map(domid)).memory),
      dm: { save: (d) => dm.save(d), thaw: (d) => dm.thaw(d), dmaDirty: (d, a, m) => dm.dmaDirty(d, a, m) },
    };
  }

  /** The config a domain was built from (what a save image carries). */
  specOf(domid: number): BuildSpec {
    const r = this.records.get(domid);
    if (!r) throw new ToolstackError('ESRCH', `domain ${domid} is not one this toolstack built`);
    return r.spec;
  }

  private storeRing(page: Uint8Array, port: number): StoreRing {
    return { page, notify: () => this.evtchn.notify(port), holdOff: (ms) => this.evtchn.holdOff(port, ms) };
  }

  private saveRecord(r: DomainRecord): void {
    try {
      const { handled: _handled, waiters: _waiters, ...saved } = r;
      saveDomainRecord(saved);
    } catch (e) {
      this.log.warn(`domain ${r.domid}: cannot save its record (a restarted dom0 could not take it over): ${(e as Error).message}`);
    }
  }

  /**
   * A dom0 that started after its predecessor died takes over the guests the hypervisor kept:
   * its record (domain-records.ts), its memory, dom0's ends of its xenstore and console
   * channels (still bound in the hypervisor), its xenstore ring where xenstored's live state
   * left it, a new console pty; an HVM guest's stub domain (hvm-builder.ts adopt). A guest
   * that cannot be taken over is crashed, so that its on_crash applies, never left hanging.
   * Backends reconnect on their own (backend-bus.ts).
   * Returns the domains that exist.
   */
  async adopt(): Promise<Set<number>> {
    const infos = await this.hc.invoke<DomainInfo[]>('sysctl.getdomaininfolist');
    pruneDomainRecords(new Set(infos.map((i) => i.domid)));
    for (const info of infos) {
      if (info.domid === 0) continue;
      const domid = info.domid;
      const saved = loadDomainRecord(domid);
      try {
        if (saved instanceof Error) throw saved;
        if (!saved.built) {
          // dom0 died in the middle of building it: the create failed (xl said so), and
          // failed creates leave nothing behind.
          this.log.error(`domain ${domid} "${saved.name}" was still being built when dom0 died; destroying it`);
          await this.hc.invoke('domctl.destroydomain', { domid }).catch(() => {});
          await this.forgetGone(domid);
          removeDomainRecord(domid);
          continue;
        }
        const rec: DomainRecord = { ...saved, handled: false, waiters: [] };
        this.records.set(domid, rec);
        if (rec.spec.type === 'hvm' && !this.hvm) throw new Error('its device models run in a stub domain, and this dom0 runs none');
        const mem = await this.foreign.map(domid);
        // The dead dom0's grant pins die with it; the backends pin again what they use.
        const unpinned = releaseDeadMapperPins(mem.grantTable, 0);
        const sp = specialPages(rec.spec.memoryMiB * 256);
        await this.evtchn.open(rec.storePort);
        await this.evtchn.open(rec.consolePort);
        const conn = this.xenstored.resumeDomain?.(domid, this.storeRing(mem.page(sp.xenstore), rec.storePort));
        if (!conn) throw new Error("xenstored's live state has no connection for it");
        this.evtchn.on(rec.storePort, () => conn.onEvent());
        await this.consoles.attach({ domid, name: rec.name, page: mem.page(sp.console), port: rec.consolePort });
        // An HVM guest's stub domain ran on meanwhile: its serial line and device models.
        if (rec.spec.type === 'hvm') await this.hvm!.adopt(rec.spec, domid);
        this.log.info(`took over domain ${domid} "${rec.name}" after dom0 restarted (${unpinned} grant pins of the old dom0 released)`);
      } catch (e) {
        const name = saved instanceof Error ? '' : ` "${saved.name}"`;
        // Without a record there is no config to apply on_crash from: it is destroyed.
        const fate = this.records.has(domid) ? 'crashing it' : 'destroying it';
        this.log.error(`domain ${domid}${name} cannot be taken over after dom0 restarted: ${(e as Error).message}; ${fate}`);
        if (!this.records.has(domid)) {
          await this.hc.invoke('domctl.destroydomain', { domid }).catch(() => {});
          await this.forgetGone(domid);
          continue;
        }
        await this.hc.invoke('domctl.shutdown', { domid, reason: 'crash' }).catch(() => {});
      }
    }
    return new Set(infos.map((i) => i.domid));
  }

  /** A domain xenstore still has but the hypervisor does not (destroyed while no dom0 ran, or
   * half destroyed when dom0 died): its devices, backend directories and nodes go. */
  async forgetGone(domid: number): Promise<void> {
    for (const d of await listDevices(this.xs, domid)) await removeDevice(this.xs, domid, d.type, d.devid, { force: true });
    await this.cleanupBackendDirs(domid);
    await this.xs.rm(`/libxl/${domid}`).catch(() => {});
    this.xenstored.releaseDomain(domid);
    this.log.info(`domain ${domid} went while dom0 was away: its xenstore nodes and devices are removed`);
  }

  private async checkSharing(domid: number, d: DeviceEntries): Promise<void> {
    try {
      await checkVbdSharing(this.xs, domid, { type: d.backend.type ?? 'phy', params: d.backend.params ?? '', mode: d.backend.mode ?? 'r' });
    } catch (e) {
      throw new ToolstackError('EBUSY', `libxl: error: libxl_device.c: device vbd ${d.devid}: ${(e as Error).message}`);
    }
  }

  /** Wait until each device's backend reports hotplug-status connected; the first error (or
   * a timeout) fails with libxl's messages. */
  private async awaitDevices(domid: number, devices: DeviceEntries[]): Promise<void> {
    const deadline = Date.now() + DEVICE_HOTPLUG_TIMEOUT_MS;
    for (const d of devices) {
      const be = `/local/domain/0/backend/${d.type}/${domid}/${d.devid}`;
      for (;;) {
        const st = await this.xs.read(`${be}/hotplug-status`).catch(() => '');
        if (st === 'connected') break;
        if (st === 'error' || Date.now() > deadline) {
          const why = st === 'error' ? await this.xs.read(`${be}/hotplug-error`).catch(() => 'hotplug script failed') : `timed out waiting for the ${d.type} backend`;
          const kind = d.type === 'vbd' ? 'disk' : d.type;
          throw new ToolstackError(
            'ENODEV',
            `libxl: error: libxl_device.c: device ${d.type} ${d.devid}: ${why}\n` +
              `libxl: error: libxl_create.c: Domain ${domid}:unable to add ${kind} devices\n` +
              `libxl: error: libxl_create.c: Domain ${domid}:cannot (re-)build domain: -3`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
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
    await this.cleanupBackendDirs(domid);
    this.consoles.detach(domid);
    await this.hvm?.destroy(domid);
    if (rec) {
      for (const p of [rec.storePort, rec.consolePort]) if (p) await this.evtchn.close(p).catch(() => {});
      this.records.delete(domid);
      removeDomainRecord(domid);
      await this.xs.rm(`/vm/${rec.uuid}`).catch(() => {});
      for (const w of rec.waiters) w();
    }
    this.xenstored.releaseDomain(domid);
    await this.xs.rm(`/libxl/${domid}`).catch(() => {});
    this.foreign.unmap(domid);
    this.log.info(`destroyed domain ${domid}${rec ? ` "${rec.name}"` : ''}`);
  }

  /** As libxl__xs_path_cleanup: the domain's per-type backend directories go, and a type
   * directory left empty goes too. */
  private async cleanupBackendDirs(domid: number): Promise<void> {
    const root = '/local/domain/0/backend';
    for (const type of await this.xs.directory(root).catch(() => [] as string[])) {
      await this.xs.rm(`${root}/${type}/${domid}`).catch(() => {});
      if ((await this.xs.directory(`${root}/${type}`).catch(() => ['?'])).length === 0) await this.xs.rm(`${root}/${type}`).catch(() => {});
    }
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
      if (!rec.monitor) {
        this.log.info(`domain ${info.domid} "${rec.name}" shut down (${info.shutdownReason}); not monitored (xl create -e): left as it is`);
        continue;
      }
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
        if (this.restartTooQuick(rec)) return;
        // Keep the old domain for inspection under a new name; start a fresh one.
        const oldName = `${rec.name}--${rec.domid}`;
        rec.name = oldName;
        await this.xs.write(`/local/domain/${rec.domid}/name`, oldName);
        await this.hc.invoke('domctl.setlabel', { domid: rec.domid, label: oldName });
        this.saveRecord(rec);
        await this.recreate(rec, { ...rec.spec, uuid: undefined });
        return;
      }
    }
  }

  private async restart(rec: DomainRecord): Promise<void> {
    // A guest that keeps stopping right after it starts (a crash at boot with
    // on_crash="restart") is left stopped, not rebuilt forever: it stays in `xl list` as it
    // stopped, for the administrator to look at.
    if (this.restartTooQuick(rec)) return;
    await this.destroy(rec.domid);
    await this.recreate(rec, { ...rec.spec, uuid: rec.uuid });
  }

  /** Counts a restart; true (and says why in the log) when it is one quick restart too many. */
  private restartTooQuick(rec: DomainRecord): boolean {
    rec.quickRestarts = Date.now() - rec.startedAt < QUICK_RESTART_MS ? rec.quickRestarts + 1 : 0;
    if (rec.quickRestarts < MAX_QUICK_RESTARTS) return false;
    this.log.error(
      `domain ${rec.domid} "${rec.name}" stopped ${MAX_QUICK_RESTARTS} times in a row within ${QUICK_RESTART_MS / 1000} s of starting: ` +
        'not restarting it again (it is left as it stopped; see its console log, then xl destroy it)',
    );
    return true;
  }

  /** xl's restart: wait as xl does, then build the domain again from its config. */
  private async recreate(rec: DomainRecord, spec: BuildSpec): Promise<void> {
    await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
    if (this.stopping) return;
    await this.create(spec, { monitor: rec.monitor, quickRestarts: rec.quickRestarts });
  }

  /** xl dump-core: the guest's memory to a file the administrator names. */
  coreDumpTo(domid: number, path: string): void {
    this.record(domid);
    const mem = this.foreign.get(domid);
    if (!mem) throw new ToolstackError('ENOENT', `domain ${domid}'s memory is not mapped`);
    try {
      dumpCoreTo(path, mem.memory);
    } catch (e) {
      throw new ToolstackError('EIO', `libxl: error: libxl_domain.c: Domain ${domid}:core dump to ${path} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
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

  /**
   * Ask the guest to shut down through xenstore (control/shutdown), as libxl does
   * (libxl__domain_pvcontrol). A PV guest always has the interface; an HVM guest only with PV
   * drivers, which say so by writing control/feature-poweroff (Xen looks at the callback IRQ
   * the drivers set up; xenode's PV-on-HVM drivers announce themselves in xenstore).
   */
  async requestShutdown(domid: number, reason: 'poweroff' | 'reboot' | 'halt' | 'suspend'): Promise<void> {
    const rec = this.record(domid);
    if (rec.spec.type === 'hvm') {
      const feature = await this.xs.read(`/local/domain/${domid}/control/feature-${reason === 'reboot' ? 'reboot' : 'poweroff'}`).catch(() => '');
      if (feature !== '1') throw new ToolstackError('ENOPARAVIRT', `PV control interface not available for ${rec.name}`);
    }
    await this.xs.write(`/local/domain/${domid}/control/shutdown`, reason);
  }

  /** libxl_send_sysrq: the key goes to control/sysrq, which the guest's kernel watches. */
  async sendSysrq(domid: number, key: string): Promise<void> {
    this.record(domid);
    await this.xs.write(`/local/domain/${domid}/control/sysrq`, key);
  }

  /** libxl_domain_rename: the name in the hypervisor, xenstore and the domain's record. */
  async rename(domid: number, newName: string): Promise<void> {
    const rec = this.record(domid);
    if (newName === rec.name) return;
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(newName)) {
      throw new ToolstackError('EINVAL', `domain name \`${newName}' is not valid: letters, digits, '.', '_', '+' and '-' (starting with a letter or digit), at most 64`);
    }
    for (const r of [...this.records.values(), { name: 'Domain-0' }]) {
      if (r.name === newName) throw new ToolstackError('EEXIST', `libxl: error: libxl_domain.c: Domain ${domid}:domain with name "${newName}" already exists.`);
    }
    rec.name = newName;
    rec.spec = { ...rec.spec, name: newName };
    await this.xs.write(`/local/domain/${domid}/name`, newName);
    await this.xs.write(`/vm/${rec.uuid}/name`, newName);
    await this.hc.invoke('domctl.setlabel', { domid, label: newName });
    this.saveRecord(rec);
  }

  /** xl config-update: the config used the next time the domain is rebuilt (reboot). */
  configUpdate(domid: number, spec: BuildSpec): void {
    const rec = this.record(domid);
    rec.spec = { ...spec, name: rec.name, uuid: rec.uuid };
    this.saveRecord(rec);
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
    if (d.type === 'vbd') await this.checkSharing(domid, d);
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
    const max = Number(await this.xs.read(`/local/domain/${domid}/memory/static-max`).catch(() => 'NaN'));
    if (targetKiB > max) {
      throw new ToolstackError('EINVAL', `libxl: error: libxl_mem.c: Domain ${domid}:memory_dynamic_max must be less than or equal to memory_static_max`);
    }
    await this.hc.invoke('domctl.set_target', { domid, targetKiB });
    await this.xs.write(`/local/domain/${domid}/memory/target`, String(targetKiB));
  }

  async setMaxMemory(domid: number, maxKiB: number): Promise<void> {
    this.record(domid);
    // libxl_domain_setmaxmem refuses a maximum below the current target.
    const target = Number(await this.xs.read(`/local/domain/${domid}/memory/target`).catch(() => '0'));
    if (maxKiB < target) {
      throw new ToolstackError('EINVAL', `libxl: error: libxl_mem.c: Domain ${domid}:memory_static_max must be greater than or or equal to memory_dynamic_max`);
    }
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
