// The HVM half of the domain builder (docs/hvm.md): the interrupt channel, the serial line
// `xl console` attaches to, the emulated NICs' TAPs on their bridges, the IDE disks, and the
// device model in the stub domain. What it opens it keeps until the domain is destroyed.
import { closeSync, openSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { native, type PtyPair } from '../../native/index.js';
import type { HypercallClient } from '../../drivers/hypercall/channel.js';
import type { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { HVM_PARAM } from '../../drivers/hypercall/ops.js';
import type { Logger } from '../../common/log.js';
import { ensureBridge } from '../../net/bridge.js';
import { ipSync } from '../../net/ip.js';
import { ConsoleDaemon } from '../console/console-daemon.js';
import type { StubdomHost } from '../stubdom-host.js';
import type { DmDisk, DmDisplay } from '../../stubdom/protocol.js';
import { ideIndexForVdev, pciIntxRoutes } from '../../stubdom/machine.js';
import type { CreateDomainArgs } from '../../drivers/hypercall/ops.js';
import type { DomainConfig } from './config/domain-config-types.js';
import type { BuildSpec } from './build-spec.js';
import { ToolstackError } from './rpc.js';
import { memfdOf } from './save/image-reader.js';
import { checkVbdSharing } from './devices/vbd-sharing.js';
import type { DeviceXs } from './devices/device-store.js';
import { hypervisorFdStore, type FdStoreClient } from '../fd-store-client.js';

type HvmXs = DeviceXs;

/** The console daemon's side of an HVM guest's serial line (dom0/console/console-daemon.ts). */
interface SerialLines {
  openSerial(domid: number): Promise<PtyPair>;
  adoptSerial(domid: number, pty: PtyPair): Promise<void>;
}

/** The fd store entry (hypervisor/fd-store.ts) with what a dom0 that takes this guest over
 * needs of the build: dom0's end of its irq channel, and its serial pty (fds: master, slave). */
const STORE_ENTRY = 'hvm';
interface StoredHvm {
  irqPort: number;
  serialPath: string | null;
}

/** `serial = 'none'` (or `[]`) asks for no serial port; anything else (and no key: xenode's HVM
 * OS speaks on COM1 from its first line) gives COM1 on a pty. */
function wantsSerial(spec: BuildSpec): boolean {
  const s = (spec.config as DomainConfig).hvm?.serial;
  if (Array.isArray(s)) return s.length > 0 && s[0] !== 'none';
  return s !== 'none';
}

interface HvmDomain {
  irqPort: number;
  /** The IDE drives by vdev (hdc, xvdc ...): position, xenstore devid, CD-ROM or disk. */
  ide: Map<string, { index: number; devid: number; cdrom: boolean }>;
  /** A Linux kernel booted directly on KVM (no ACPI tables: it finds no power button). */
  linux: boolean;
}

/** xl trigger's names (libxl_trigger). */
export type HvmTrigger = 'power' | 'sleep' | 'nmi' | 'init' | 'reset' | 's3resume';

/** The config's emulated NICs (type=ioemu, the HVM default), in the order the machine slots them. */
function emulatedNics(spec: BuildSpec) {
  return ((spec.config as DomainConfig).nics ?? []).map((n) => n.resolved).filter((nic) => nic.nictype === 'vif_ioemu');
}

/** The display a config gives an HVM guest, as libxl sets qemu up: the standard VGA unless
 * vga = "none", and a VNC server unless vnc = 0 (on by default for HVM), on vnclisten (default
 * 127.0.0.1, ":N" in it naming the display), display vncdisplay (default 0) or, with vncunused
 * (default on), the first free one from there. */
export function displayFor(cfg: DomainConfig): DmDisplay | undefined {
  if (cfg.hvm?.vga === 'none') return undefined;
  const v = cfg.vnc;
  if (v.enable === false) return { vramBytes: 16 << 20, vnc: null };
  const [host, fromListen] = (v.listen || '127.0.0.1').split(':');
  return {
    vramBytes: 16 << 20,
    vnc: {
      listen: host || '127.0.0.1',
      display: v.display ?? (fromListen !== undefined && /^\d+$/.test(fromListen) ? Number(fromListen) : 0),
      findUnused: v.findunused ?? true,
      password: v.passwd ? v.passwd : null,
    },
  };
}

/** The IDE drives by vdev (hda-hdd: the four IDE positions) of a config's disks. */
function ideDrives(spec: BuildSpec): Map<string, { index: number; devid: number; cdrom: boolean }> {
  const ide = new Map<string, { index: number; devid: number; cdrom: boolean }>();
  for (const { disk, devid } of (spec.config as DomainConfig).disks ?? []) {
    const vdev = disk.vdev.replace(/^ioemu:/, '').replace(/:cdrom$/, '');
    const index = ideIndexForVdev(vdev);
    if (index !== undefined) ide.set(vdev, { index, devid, cdrom: disk.is_cdrom === 1 });
  }
  return ide;
}

export class HvmBuilder {
  private readonly domains = new Map<number, HvmDomain>();
  private readonly store: FdStoreClient;

  constructor(
    private readonly hc: HypercallClient,
    private readonly evtchn: EventChannels,
    private readonly xs: HvmXs,
    private readonly stubdom: StubdomHost,
    private readonly log: Logger,
    private readonly serialLines: SerialLines,
  ) {
    this.store = hypervisorFdStore(hc);
  }

  /** The command line an HVM guest's "bootloader" hands over: the config's, plus the boot order. */
  static cmdline(spec: BuildSpec): string {
    const cfg = spec.config as DomainConfig;
    const boot = cfg.hvm?.boot ?? 'cd';
    return `${spec.cmdline} xenode.boot=${boot}`.trim();
  }

  /** An HVM config that names a Linux `kernel` boots it directly on KVM (docs/kvm.md), with
   * `ramdisk` and `extra` as they are; without one, xenode's own HVM guest OS runs. */
  static bootsLinux(spec: BuildSpec): boolean {
    return spec.type === 'hvm' && !!spec.kernel;
  }

  /** What the hypervisor is told this HVM domain runs (domctl.createdomain's `kernel`). */
  static kernelArgs(spec: BuildSpec, restore = false): CreateDomainArgs['kernel'] {
    if (!HvmBuilder.bootsLinux(spec)) return { kind: 'hvm', cmdline: HvmBuilder.cmdline(spec) };
    return {
      kind: 'hvm',
      cmdline: spec.cmdline,
      linux: { kernel: spec.kernel!, ramdisk: spec.ramdisk, cmdline: spec.cmdline, pciIrqs: pciIntxRoutes({ nics: emulatedNics(spec).length }), restore },
    };
  }

  /** PV-on-HVM drivers find xenstore through HVM params, as in Xen. */
  async setStoreParams(domid: number, storePfn: number, storePort: number, consolePfn: number, consolePort: number): Promise<void> {
    const set = (index: number, value: number) => this.hc.invoke('domctl.set_hvm_param', { domid, index, value });
    await set(HVM_PARAM.STORE_PFN, storePfn);
    await set(HVM_PARAM.STORE_EVTCHN, storePort);
    await set(HVM_PARAM.CONSOLE_PFN, consolePfn);
    await set(HVM_PARAM.CONSOLE_EVTCHN, consolePort);
  }

  /** Everything the emulated PC needs, then the device model; the domain stays paused. For a
   * restore (`awaitState`) the device models wait for their saved state (deliverState) before
   * serving. */
  async build(spec: BuildSpec, domid: number, awaitState = false): Promise<void> {
    const cfg = spec.config as DomainConfig;
    const rec: HvmDomain = { irqPort: 0, ide: ideDrives(spec), linux: HvmBuilder.bootsLinux(spec) };
    this.domains.set(domid, rec);
    const toClose: number[] = [];
    try {
      // Interrupts: the guest's irq port, bound by dom0; the device model rings its doorbell.
      const guestIrq = (await this.hc.invoke<{ port: number }>('evtchn.alloc_unbound', { dom: domid, remote_dom: 0 })).port;
      rec.irqPort = await this.evtchn.bindInterdomain(domid, guestIrq);
      await this.hc.invoke('domctl.set_hvm_irq_port', { domid, port: guestIrq });
      const irqFd = this.evtchn.dupSendFd(rec.irqPort);
      toClose.push(irqFd);

      const mem = await this.hc.call<{ bytes: number }>('domctl.map_foreign_memory', { domid });
      toClose.push(...mem.fds);
      const ioreq = await this.hc.call('domctl.map_ioreq_pages', { domid });
      toClose.push(...ioreq.fds);

      // COM1 on a pty the console daemon holds (serial='pty' is what classic HVM configs ask for):
      // `xl console` reaches it as any console, Xen's serial/0/tty names it.
      const serial = wantsSerial(spec) ? await this.serialLines.openSerial(domid) : null;
      // What the next dom0 needs if this one dies (adopt): stored before the stub domain
      // starts, so one that exists always has it.
      const kept: StoredHvm = { irqPort: rec.irqPort, serialPath: serial?.path ?? null };
      await this.store.put(domid, STORE_ENTRY, serial ? [serial.master, serial.slave] : [], kept).catch((e: Error) => {
        this.log.warn(`domain ${domid}: cannot leave its HVM build with the hypervisor, so it will not outlive dom0: ${e.message}`);
      });
      const logPath = ConsoleDaemon.logPath(spec.name);
      mkdirSync(dirname(logPath), { recursive: true });

      // Emulated NICs (type=ioemu, the HVM default): TAP vif<domid>.<devid>-emu on the bridge.
      const taps: { devid: number; mac: string; fd: number }[] = [];
      for (const nic of emulatedNics(spec)) {
        const name = `${nic.ifname ?? `vif${domid}.${nic.devid}`}-emu`.slice(0, 15);
        const tap = native().tapOpen(name, false, 0);
        toClose.push(tap.fd);
        ensureBridge(nic.bridge);
        ipSync(['link', 'set', 'dev', tap.name, 'master', nic.bridge]);
        ipSync(['link', 'set', 'dev', tap.name, 'up']);
        taps.push({ devid: nic.devid, mac: nic.mac, fd: tap.fd });
      }

      // The images, opened here: the stub domain sees no host file by path.
      const disks: DmDisk[] = [];
      const diskFds = new Map<number, number>();
      for (const { disk } of cfg.disks ?? []) {
        const vdev = disk.vdev.replace(/^ioemu:/, '').replace(/:cdrom$/, '');
        const index = ideIndexForVdev(vdev);
        if (index === undefined) {
          this.log.warn(`domain ${domid}: ${disk.vdev} is not one of the four IDE positions (hda-hdd); only its PV path exists`);
          continue;
        }
        const d: DmDisk = { index, path: disk.pdev_path ? disk.pdev_path : null, readOnly: disk.readwrite === 0, cdrom: disk.is_cdrom === 1 };
        if (d.path) {
          const fd = openSync(d.path, d.readOnly || d.cdrom ? 'r' : 'r+');
          toClose.push(fd);
          diskFds.set(index, fd);
        }
        disks.push(d);
      }

      const display = displayFor(cfg);
      const started = await this.stubdom.start(
        { domid, name: spec.name, vcpus: spec.maxVcpus, memoryBytes: spec.memoryMiB * 1048576, disks, firmware: HvmBuilder.bootsLinux(spec), display, awaitState },
        { memory: mem.fds[0]!, ioreq: ioreq.fds[0]!, irq: irqFd, serial: serial ? serial.master : -1, consoleLog: logPath, taps, disks: diskFds },
      );
      // The device model's pid, where libxl writes qemu's.
      const pid = this.stubdom.pidOf(domid);
      if (pid) await this.xs.write(`/local/domain/${domid}/image/device-model-pid`, String(pid));
      // Where viewers connect, where libxl writes it (`xl vncviewer` reads it back).
      if (started?.vnc) {
        await this.xs.write(`/local/domain/${domid}/console/vnc-listen`, started.vnc.listen);
        await this.xs.write(`/local/domain/${domid}/console/vnc-port`, String(started.vnc.port));
      }
    } catch (e) {
      await this.destroy(domid);
      throw e instanceof ToolstackError ? e : new ToolstackError('EIO', `HVM device model for domain ${domid}: ${(e as Error).message}`);
    } finally {
      // The stub domain has its own copies now (SCM_RIGHTS); the TAPs live while it holds them.
      for (const fd of toClose) native().close(fd);
    }
  }

  /**
   * xl trigger (libxl_send_trigger): power and sleep are the ACPI buttons in the device model's
   * PM block; nmi goes through the device model to the vCPU runtime (Xen's hypervisor sets the
   * vCPU's nmi_pending itself). Xen refuses init and reset (ENOSYS); s3resume
   * wakes a guest in S3, which xenode's guests never enter. Whatever this guest cannot be given
   * is refused with the reason, never reported done.
   */
  async trigger(domid: number, name: HvmTrigger, vcpu = 0): Promise<void> {
    const rec = this.domains.get(domid);
    if (!rec) throw new ToolstackError('EINVAL', `Send trigger '${name}' failed: Invalid argument (triggers are for HVM guests)`);
    if (name === 'power' || name === 'sleep') {
      if (rec.linux) throw new ToolstackError('EOPNOTSUPP', `Send trigger '${name}' failed: Operation not supported (this guest's Linux kernel was booted directly on KVM without ACPI tables, so it has no ACPI ${name} button)`);
      const r = await this.stubdom.control(domid, { kind: 'button', button: name });
      if (!r.enabled) throw new ToolstackError('ENODEV', `Send trigger '${name}' failed: No such device (the guest's OS has not enabled its ACPI buttons yet: the press is latched and seen once it does)`);
      return;
    }
    if (name === 'nmi') {
      // The process guest's runtime takes it from the platform page; a KVM vCPU would need
      // KVM_NMI from the engine, which does not look at that word.
      if (rec.linux) throw new ToolstackError('EOPNOTSUPP', `Send trigger 'nmi' failed: Operation not supported (xenode's KVM engine does not inject NMIs)`);
      await this.stubdom.control(domid, { kind: 'nmi', vcpu });
      return;
    }
    if (name === 's3resume') throw new ToolstackError('EINVAL', `Send trigger 's3resume' failed, rc=-6 (the guest is not suspended: xenode's HVM guests never enter S3)`);
    throw new ToolstackError('ENOSYS', `Send trigger '${name}' failed: Function not implemented`);
  }

  /**
   * xl cd-insert / cd-eject (libxl_cdrom_insert): the drive's disc changes in the device model,
   * and the vbd's backend `params` (and libxl's own copy) name the new image, or nothing.
   */
  async changeMedia(domid: number, vdev: string, path: string | null): Promise<void> {
    const rec = this.domains.get(domid);
    if (!rec) throw new ToolstackError('EINVAL', 'cdrom-insert requires an HVM domain');
    const drive = rec.ide.get(vdev);
    if (!drive?.cdrom) throw new ToolstackError('ENODEV', 'Virtual device not found');
    let fd: number | undefined;
    if (path !== null) {
      // A disc image another guest writes is refused, as at create (the block script's check).
      try {
        await checkVbdSharing(this.xs, domid, { type: 'phy', params: path, mode: 'r' });
      } catch (e) {
        throw new ToolstackError('EBUSY', (e as Error).message);
      }
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        throw new ToolstackError('ENOENT', `Cannot open ${path}: ${(e as Error).message}`);
      }
    }
    try {
      await this.stubdom.control(domid, { kind: 'media', index: drive.index, insert: path !== null }, fd);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const params = path ?? '';
    await this.xs.write(`/local/domain/0/backend/vbd/${domid}/${drive.devid}/params`, params);
    await this.xs.write(`/libxl/${domid}/device/vbd/${drive.devid}/params`, params).catch(() => {});
  }

  /**
   * A dom0 started after its predecessor died takes over an HVM guest: its irq channel, its
   * serial line (console/tty names it again) and its stub domain, all left with the
   * hypervisor (docs/hvm.md, "The stub domain"). Throws when something is missing.
   */
  async adopt(spec: BuildSpec, domid: number): Promise<void> {
    const got = await this.store.get(domid, STORE_ENTRY);
    if (!got) throw new Error('the dead dom0 left nothing of its HVM build with the hypervisor');
    const m = got.meta as Partial<StoredHvm> | null;
    const serialFds = got.fds.length === 2;
    if (!Number.isInteger(m?.irqPort) || (got.fds.length !== 0 && !serialFds) || serialFds !== (typeof m?.serialPath === 'string')) {
      for (const fd of got.fds) native().close(fd);
      throw new Error('its HVM entry in the fd store is not one this dom0 understands');
    }
    const rec: HvmDomain = { irqPort: m!.irqPort!, ide: ideDrives(spec), linux: HvmBuilder.bootsLinux(spec) };
    this.domains.set(domid, rec);
    await this.evtchn.open(rec.irqPort);
    if (serialFds) await this.serialLines.adoptSerial(domid, { master: got.fds[0]!, slave: got.fds[1]!, path: m!.serialPath! });
    await this.stubdom.adopt(domid, ConsoleDaemon.logPath(spec.name));
  }

  isHvm(domid: number): boolean {
    return this.domains.has(domid);
  }

  private async restored(domid: number): Promise<void> {
    await this.stubdom.restored(domid).catch((e: Error) => {
      throw new ToolstackError('EINVAL', `the saved device state is refused: ${e.message}`);
    });
  }

  /** The saved device state, for models built with `awaitState`: they load it and then serve;
   * resolves once they have, or fails with why they refused it. */
  async deliverState(domid: number, state: Uint8Array): Promise<void> {
    const fd = memfdOf('xenode-dm-state', state);
    try {
      await this.stubdom.loadState(domid, fd, state.length);
    } finally {
      native().close(fd);
    }
    await this.restored(domid);
  }

  /** The stub domain's save controls (dom0/toolstack/save/). */
  get deviceModels(): StubdomHost {
    return this.stubdom;
  }

  async destroy(domid: number): Promise<void> {
    const rec = this.domains.get(domid);
    if (!rec) return;
    this.domains.delete(domid);
    await this.stubdom.stop(domid);
    await this.store.remove(domid, STORE_ENTRY).catch(() => {});
    if (rec.irqPort) await this.evtchn.close(rec.irqPort).catch(() => {});
  }
}
