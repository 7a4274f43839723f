// xl.cfg settings -> a typed, checked domain configuration, following xl's parse_config_data()
// (tools/xl/xl_parse.c) for meanings and defaults and libxl's setdefault code for the values xl
// leaves unset. Unknown keys are warnings, as in xl (which ignores them silently); keys xl knows but
// xenode does not implement are warnings that say so.
//
// Decisions where Xen was unclear or where we differ:
// - type/builder: `type` decides when present and `builder` must then agree (xl: "Contradicting
//   builder and type options specified."); without `type`, `builder` decides; with neither, pv.
//   builder='hvm' -> hvm, 'generic' -> pv, and the xm-era 'linux' -> pv with a warning (xl >= 4.10
//   rejects 'linux', older xl took it as pv). Both keys match prefixes as xl does (type='h' is hvm).
// - Bad values are errors here where xl only warns and falls back to a default (memory='lots').
// - `weight` is not an xl key: xl reads `cpu_weight` (and `cap`); `weight` gets a hint.
// - For HVM, kernel='.../hvmloader' is dropped with xl's warning; device_model= is ignored with
//   xl's warning (device_model_override is the real key); vncviewer= is ignored with xl's warning.
// - xm's dhcp/ip/netmask/gateway/hostname/interface/nfs_* (which xm turned into the kernel's ip=
//   argument) are kept in `xm` and warned about: xl ignores them.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigWarning, type SourcePos } from './config-error.js';
import { CfgReader } from './cfg-values.js';
import { parseCpuSet, type CpuAffinity } from './cpu-affinity.js';
import { parseDiskSpec, validateDiskVdev } from './disk-spec.js';
import {
  SHUTDOWN_ACTIONS, type DomainConfig, type DomainDisk, type DomainNic, type DomainType, type HvmOptions,
  type ParsedDomainConfig, type ShutdownAction, type VncOptions,
} from './domain-config-types.js';
import { parseVifSpec, resolveNicDefaults } from './vif-spec.js';
import { parseXlCfg, type XlCfg } from './xl-cfg-parser.js';

export * from './domain-config-types.js';

/** Keys xl reads that xenode does not implement: accepted with a warning. */
const XL_KEYS_NOT_SUPPORTED = new Set([
  'init_seclabel', 'seclabel', 'hap', 'oos', 'pool', 'pvshim', 'pvshim_path', 'pvshim_cmdline', 'pvshim_extra',
  'period', 'slice', 'latency', 'extratime', 'vuart', 'vnuma', 'cpus_soft', 'max_grant_frames',
  'max_maptrack_frames', 'max_grant_version', 'pci', 'dtdev', 'passthrough', 'nomigrate', 'tsc_mode',
  'rtc_timeoffset', 'localtime', 'videoram', 'max_event_channels', 'device_tree', 'driver_domain',
  'bootloader_args', 'timer_mode', 'nestedhvm', 'firmware_override', 'bios_path_override', 'bios', 'pae',
  'acpi_s3', 'acpi_s4', 'acpi_laptop_slate', 'nx', 'hpet', 'vpt_align', 'apic', 'viridian', 'mmio_hole',
  'altp2mhvm', 'altp2m', 'smbios_firmware', 'acpi_firmware', 'ms_vm_genid', 'rdm_mem_boundary', 'mca_caps',
  'firmware', 'ioports', 'irqs', 'iomem', 'p9', 'vtpm', 'vdispl', 'pvcalls', 'vsnd', 'channel', 'vif2', 'vfb',
  'pci_msitranslate', 'pci_power_mgmt', 'pci_permissive', 'pci_seize', 'e820_host', 'rdm', 'usbctrl', 'usbdev',
  'cpuid', 'device_model_stubdomain_seclabel', 'device_model_user', 'device_model_args',
  'device_model_args_pv', 'device_model_args_hvm', 'dm_restrict', 'hdtype', 'spice',
  'spiceport', 'spicetls_port', 'spicehost', 'spicedisable_ticketing', 'spicepasswd', 'spiceagent_mouse',
  'spicevdagent', 'spice_clipboard_sharing', 'spiceusbredirection', 'spice_image_compression',
  'spice_streaming_video', 'nographic', 'gfx_passthru', 'usb', 'usbversion', 'usbdevice', 'vkb_device',
  'soundhw', 'xen_platform_pci', 'vendor_device', 'gic_version', 'tee', 'vkb', 'vpmu', 'opengl', 'display',
  'xauthority', 'claim_mode',
]);

/** xm settings xl ignores: xm built the kernel's `ip=` argument from these. */
const XM_IP_KEYS = ['dhcp', 'ip', 'netmask', 'gateway', 'hostname', 'interface', 'nfs_server', 'nfs_root'];

function prefixOf(value: string, word: string): boolean {
  return value.length > 0 && word.startsWith(value);
}

class Builder {
  readonly r: CfgReader;
  readonly errors: ConfigError[] = [];
  readonly warnings: ConfigWarning[] = [];

  constructor(readonly cfg: XlCfg) {
    this.r = new CfgReader(cfg);
  }

  /** Runs one step; a ConfigError is recorded and the step's fallback returned. */
  step<T>(fallback: T, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      this.errors.push(...e.errors);
      return fallback;
    }
  }

  warn(key: string | undefined, message: string): void {
    const s = key ? this.cfg.get(key) : undefined;
    this.warnings.push({ file: this.cfg.fileName, line: s?.line ?? 0, key, message });
  }

  pos(key: string): SourcePos {
    const s = this.cfg.get(key);
    return { file: this.cfg.fileName, line: s?.line ?? 0, column: s?.column ?? 0, key };
  }

  fail(key: string, detail: string): never {
    throw new ConfigError(this.pos(key), detail);
  }

  domainType(): { type: DomainType; typeFrom: DomainConfig['typeFrom'] } {
    const t = this.r.string('type');
    let type: DomainType | undefined;
    if (t !== undefined) {
      // xl: strncmp(buf, "hvm", strlen(buf)), then "pv", then "pvh": prefixes count.
      if (prefixOf(t, 'hvm')) type = 'hvm';
      else if (prefixOf(t, 'pv')) type = 'pv';
      else if (prefixOf(t, 'pvh')) type = 'pvh';
      else this.fail('type', `invalid domain type \`${t}' (pv, pvh or hvm)`);
    }
    const b = this.r.string('builder');
    if (b === undefined) return type ? { type, typeFrom: 'type' } : { type: 'pv', typeFrom: 'default' };
    let fromBuilder: DomainType;
    if (prefixOf(b, 'hvm')) fromBuilder = 'hvm';
    else if (prefixOf(b, 'generic')) fromBuilder = 'pv';
    else if (b === 'linux') {
      this.warn('builder', 'builder=\'linux\' is xm\'s name for a PV guest; xl since 4.10 rejects it: use type="pv"');
      fromBuilder = 'pv';
    } else this.fail('builder', `invalid builder \`${b}' (hvm or generic; builder is deprecated, use type=)`);
    if (type && type !== fromBuilder) {
      this.fail('builder', `contradicting "builder" and "type" options specified (builder='${b}' means ${fromBuilder}, type='${t}')`);
    }
    if (!type) this.warn('builder', `builder is deprecated since Xen 4.10: use type="${fromBuilder}"`);
    return type ? { type, typeFrom: 'type' } : { type: fromBuilder, typeFrom: 'builder' };
  }

  name(): string {
    const name = this.r.string('name');
    if (name === undefined) {
      throw new ConfigError({ file: this.cfg.fileName, line: 0, column: 0, key: 'name' }, 'domain name must be specified');
    }
    if (name === '') this.fail('name', 'domain name is empty');
    // The name becomes a xenstore value and part of paths and interface names: keep it printable.
    if (/[\x00-\x1f\x7f/]/.test(name)) this.fail('name', `domain name \`${name}' contains '/' or control characters`);
    if (/^\d+$/.test(name)) this.warn('name', `domain name \`${name}' is a number: xl commands will read it as a domain id`);
    return name;
  }

  uuid(): { uuid: string; uuidGenerated: boolean } {
    const u = this.r.string('uuid');
    if (u === undefined) return { uuid: randomUUID(), uuidGenerated: true };
    if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(u)) {
      this.fail('uuid', `failed to parse UUID \`${u}' (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
    }
    return { uuid: u.toLowerCase(), uuidGenerated: false };
  }

  action(key: string, dflt: ShutdownAction): ShutdownAction {
    const v = this.r.string(key);
    if (v === undefined) return dflt;
    if (!(SHUTDOWN_ACTIONS as readonly string[]).includes(v)) {
      this.fail(key, `unknown ${key} action \`${v}' (one of ${SHUTDOWN_ACTIONS.join(', ')})`);
    }
    return v as ShutdownAction;
  }

  /** xl's parse_cmdline(): cmdline wins; else "root=ROOT EXTRA". */
  cmdline(): string | undefined {
    const cmdline = this.r.string('cmdline');
    const root = this.r.string('root');
    const extra = this.r.string('extra');
    if (cmdline !== undefined) {
      if (root !== undefined || extra !== undefined) this.warn('cmdline', 'ignoring root= and extra= in favour of cmdline=');
      return cmdline;
    }
    if (root !== undefined && extra !== undefined) return `root=${root} ${extra}`;
    if (root !== undefined) return `root=${root}`;
    return extra;
  }

  cpus(): CpuAffinity | undefined {
    const v = this.r.stringOrList('cpus');
    if (v === undefined) return undefined;
    const parse = (text: string, pos: SourcePos) => {
      try {
        return parseCpuSet(text);
      } catch (e) {
        throw new ConfigError(pos, (e as Error).message);
      }
    };
    if (typeof v === 'string') return { form: 'string', set: parse(v, this.pos('cpus')) };
    return { form: 'list', perVcpu: v.map((item) => parse(item.value, this.cfg.pos(item, 'cpus'))) };
  }

  boot(): string {
    const boot = this.r.string('boot');
    if (boot === undefined) return 'cd';
    if (!/^[a-dn-p]+$/.test(boot)) {
      this.fail('boot', `boot order \`${boot}' may hold only c (hard disk), d (cd-rom) and n (network)`);
    }
    if (/[abop]/.test(boot)) {
      this.warn('boot', `boot order \`${boot}': only c, d and n are supported by xenode; the other devices are skipped`);
    }
    return boot;
  }

  disks(): DomainDisk[] {
    const items = this.r.list('disk') ?? [];
    const seen = new Map<number, string>();
    return items.flatMap((item) => this.step<DomainDisk[]>([], () => {
      const where = this.cfg.pos(item, 'disk');
      const disk = parseDiskSpec(item.value, where);
      const devid = validateDiskVdev(disk, where);
      const dup = seen.get(devid);
      if (dup !== undefined) throw new ConfigError(where, `vdev \`${disk.vdev}' is the same device (${devid}) as \`${dup}'`);
      seen.set(devid, disk.vdev);
      if (disk.backend_domname !== undefined && disk.backend_domname !== '0' && disk.backend_domname !== 'Domain-0') {
        throw new ConfigError(where, `backend=${disk.backend_domname}: xenode runs every device backend in Domain-0; there are no driver domains (leave backend= out)`);
      }
      if (disk.script !== undefined) {
        this.warnings.push({ file: where.file, line: where.line, key: 'disk', message: `ignoring script=${disk.script}: xenode's blkback opens the image or device itself (no block hotplug script runs)` });
      }
      return [{ spec: item.value, disk, devid, line: item.line }];
    }));
  }

  nics(type: DomainType, uuid: string): DomainNic[] {
    const items = this.r.list('vif') ?? [];
    const seen = new Set<number>();
    return items.flatMap((item, index) => this.step<DomainNic[]>([], () => {
      const where = this.cfg.pos(item, 'vif');
      const { nic, warnings } = parseVifSpec(item.value, where);
      for (const w of warnings) this.warnings.push({ file: where.file, line: where.line, key: 'vif', message: w });
      // xl's ARRAY_EXTEND_INIT gives each NIC its list index as devid unless devid= says otherwise.
      nic.devid ??= index;
      if (seen.has(nic.devid)) throw new ConfigError(where, `devid ${nic.devid} is used by two vifs`);
      seen.add(nic.devid);
      // Every backend runs in Domain-0 here: a vif that names another backend domain would
      // be served by dom0 without a word, so it is refused, as libxl refuses a backend
      // domain that cannot serve it.
      if (nic.backend_domname !== undefined && nic.backend_domname !== '0' && nic.backend_domname !== 'Domain-0') {
        throw new ConfigError(where, `backend=${nic.backend_domname}: xenode runs every device backend in Domain-0; there are no driver domains (leave backend= out)`);
      }
      const resolved = resolveNicDefaults(nic, { guestType: type, devid: nic.devid, macSeed: `${uuid}/vif/${nic.devid}` }, where);
      return [{ spec: item.value, nic, resolved, line: item.line }];
    }));
  }

  vnc(): VncOptions {
    const vnc: VncOptions = {
      enable: this.r.bool('vnc'),
      listen: this.r.string('vnclisten'),
      passwd: this.r.string('vncpasswd'),
      display: this.r.long('vncdisplay', 0, 65535 - 5900),
      findunused: this.r.bool('vncunused'),
    };
    if (vnc.listen && vnc.display && vnc.listen.includes(':')) {
      this.fail('vncdisplay', 'display specified both in vnclisten and vncdisplay');
    }
    return vnc;
  }

  unknownKeys(): void {
    for (const key of this.cfg.keys()) {
      if (this.r.consumed.has(key)) continue;
      if (XL_KEYS_NOT_SUPPORTED.has(key)) this.warn(key, `\`${key}' is an xl option that xenode does not support; ignored`);
      else if (key === 'weight') this.warn(key, 'unknown option `weight\' ignored: the credit scheduler weight is `cpu_weight\'');
      else this.warn(key, `unknown option \`${key}' ignored (xl ignores unknown options too)`);
    }
  }
}

function build(b: Builder): DomainConfig {
  const { r } = b;
  const { type, typeFrom } = b.step({ type: 'pv' as DomainType, typeFrom: 'default' as const }, () => b.domainType());
  const name = b.step('', () => b.name());
  const { uuid, uuidGenerated } = b.step({ uuid: randomUUID(), uuidGenerated: true }, () => b.uuid());

  const cpuWeight = b.step(undefined, () => r.long('cpu_weight', 1, 65535));
  const cap = b.step(undefined, () => r.long('cap', 0, 65535));

  // Memory: xl sets target from memory=, max from maxmem= (else = target); libxl defaults max to 32 MiB.
  const memory = b.step(undefined, () => r.long('memory', 1, 1 << 30));
  const maxmem = b.step(undefined, () => r.long('maxmem', 1, 1 << 30));
  const maxMemMiB = maxmem ?? memory ?? 32;
  const memoryMiB = memory ?? maxMemMiB;
  if (maxMemMiB < memoryMiB) {
    b.step(undefined, () => b.fail('maxmem', `maxmem (${maxMemMiB} MiB) is smaller than memory (${memoryMiB} MiB)`));
  }

  const vcpus = b.step(undefined, () => r.long('vcpus', 1, 4096)) ?? 1;
  const maxVcpus = b.step(undefined, () => r.long('maxvcpus', 1, 4096)) ?? vcpus;
  if (maxVcpus < vcpus) b.step(undefined, () => b.fail('maxvcpus', `maxvcpus (${maxVcpus}) < vcpus (${vcpus})`));
  const cpus = b.step(undefined, () => b.cpus());

  const onPoweroff = b.step<ShutdownAction>('destroy', () => b.action('on_poweroff', 'destroy'));
  const onReboot = b.step<ShutdownAction>('restart', () => b.action('on_reboot', 'restart'));
  const onWatchdog = b.step<ShutdownAction>('destroy', () => b.action('on_watchdog', 'destroy'));
  const onCrash = b.step<ShutdownAction>('destroy', () => b.action('on_crash', 'destroy'));
  const onSoftReset = b.step<ShutdownAction>('soft-reset', () => b.action('on_soft_reset', 'soft-reset'));

  const shadowMemoryMiB = b.step(undefined, () => r.long('shadow_memory', 0, 1 << 20));
  const vncviewer = b.step(undefined, () => r.long('vncviewer'));
  if (vncviewer !== undefined) b.warn('vncviewer', 'ignoring "vncviewer" option: use "-V" option of "xl create" to spawn a vncviewer');

  let kernel = b.step(undefined, () => r.string('kernel'));
  const ramdisk = b.step(undefined, () => r.string('ramdisk'));
  const cmdline = b.step(undefined, () => b.cmdline());
  const bootloader = b.step(undefined, () => r.string('bootloader'));
  const acpi = b.step(undefined, () => r.bool('acpi'));

  let hvm: HvmOptions | undefined;
  if (type === 'hvm') {
    if (kernel !== undefined && kernel.split('/').pop() === 'hvmloader') {
      b.warn('kernel', 'you seem to be using "kernel" directive to override HVM guest firmware; ignored');
      kernel = undefined;
    }
    const serial = b.step(undefined, () => {
      const v = r.stringOrList('serial');
      return typeof v === 'string' || v === undefined ? v : v.map((i) => i.value);
    });
    const stdvga = b.step(undefined, () => r.bool('stdvga'));
    // vga= wins over the older stdvga= (xl_parse.c reads vga first). xenode's device model has
    // the standard VGA only: cirrus (libxl's default) and qxl are given it, with a word.
    const vga = b.step<HvmOptions['vga']>(undefined, () => {
      const kind = r.string('vga');
      if (kind === undefined) return stdvga === undefined ? undefined : stdvga ? 'std' : 'cirrus';
      if (kind === 'stdvga') return 'std';
      if (kind === 'none') return 'none';
      if (kind === 'cirrus' || kind === 'qxl') {
        b.warn('vga', `vga="${kind}" is not emulated: the guest gets the standard VGA (as vga="stdvga")`);
        return kind;
      }
      return b.fail('vga', `unknown vga "${kind}" (stdvga, cirrus, qxl or none)`);
    });
    const keymap = b.step(undefined, () => r.string('keymap'));
    if (keymap !== undefined && keymap !== 'en-us') b.warn('keymap', `keymap "${keymap}" is not available: VNC keys are mapped as en-us`);
    hvm = {
      boot: b.step('cd', () => b.boot()),
      serial,
      vga,
    };
  } else {
    for (const key of ['boot', 'serial', 'stdvga']) {
      if (r.setting(key)) b.warn(key, `\`${key}' applies to HVM guests only; ignored for a ${type} guest`);
    }
    // xenode's PV guests always boot xenode's own PV kernel (guest/kernel/): kernel= and
    // ramdisk= are recorded (xl list -l) but not loaded, so a classic config that names a Linux
    // image still works, and a config without one is fine too. Real xl would refuse it. Each
    // says so, as xl says what it does instead of a setting.
    const pvKernel = 'xenode\'s PV guests run xenode\'s own PV kernel, configured by the command line (extra/root/cmdline)';
    if (kernel !== undefined) b.warn('kernel', `ignoring kernel \`${kernel}' (recorded, not loaded): ${pvKernel}`);
    if (ramdisk !== undefined) b.warn('ramdisk', `ignoring ramdisk \`${ramdisk}' (recorded, not loaded): ${pvKernel}, with no initrd`);
    if (bootloader !== undefined) b.warn('bootloader', `ignoring bootloader \`${bootloader}': no bootloader runs; ${pvKernel}`);
    if (type === 'pvh') b.warn('type', 'type "pvh" is built as a PV guest here: xenode has no PVH container (no HVM paging without a device model)');
  }
  if (acpi !== undefined) b.warn('acpi', `acpi=${acpi ? 1 : 0} changes nothing: xenode's HVM platform always has its ACPI PM block (power and sleep buttons, S5: xl trigger) and never ACPI tables`);
  if (shadowMemoryMiB !== undefined) b.warn('shadow_memory', 'ignoring shadow_memory: xenode keeps no shadow page tables (guest memory is a memfd the guest maps directly)');

  const xm: DomainConfig['xm'] = {};
  const dm = b.step(undefined, () => r.string('device_model'));
  if (dm !== undefined) {
    xm.deviceModel = dm;
    b.warn('device_model', 'ignoring device_model directive: use "device_model_override" if you really want a non-default device model');
  }
  const builder = b.cfg.get('builder');
  if (builder?.value.kind === 'string') xm.builder = builder.value.value;
  if (vncviewer !== undefined) xm.vncviewer = vncviewer;
  for (const key of XM_IP_KEYS) {
    const v = b.step(undefined, () => r.string(key));
    if (v === undefined) continue;
    xm[key] = v;
    b.warn(key, `\`${key}' is an xm option that xl ignores (xm built the kernel's ip= argument from it): put ip=... in extra instead`);
  }

  const version = b.step(undefined, () => {
    const v = r.string('device_model_version');
    if (v !== undefined && v !== 'qemu-xen' && v !== 'qemu-xen-traditional') {
      b.fail('device_model_version', `unknown device_model_version \`${v}' (qemu-xen or qemu-xen-traditional)`);
    }
    return v as 'qemu-xen' | 'qemu-xen-traditional' | undefined;
  });
  const override = b.step(undefined, () => r.string('device_model_override'));
  if (override !== undefined && version === undefined) b.warn('device_model_override', 'device model override given without specific DM version');
  const stubdomain = b.step(undefined, () => r.bool('device_model_stubdomain_override'));

  const vnc = b.step<VncOptions>({}, () => b.vnc());
  if (type !== 'hvm' && vnc.enable) {
    b.warn('vnc', 'the PV framebuffer (vfb/vkb) is not supported: this guest gets no display; use `xl console` for its console');
  }
  const sdl = { enable: b.step(undefined, () => r.bool('sdl')) };

  const disks = b.step<DomainDisk[]>([], () => b.disks());
  const nics = b.step<DomainNic[]>([], () => b.nics(type, uuid));

  b.unknownKeys();
  return {
    source: b.cfg.fileName, name, type, typeFrom, uuid, uuidGenerated, memoryMiB, maxMemMiB, vcpus, maxVcpus, cpus,
    kernel, ramdisk, cmdline, bootloader, onPoweroff, onReboot, onWatchdog, onCrash, onSoftReset,
    shadowMemoryMiB, cpuWeight, cap, acpi, hvm, vnc, sdl,
    deviceModel: { version, override, stubdomain }, disks, nics, xm, specified: new Set(b.cfg.keys()),
  };
}

/** Parses and checks xl.cfg text. Throws ConfigError (with every error found in `.errors`). */
export function parseDomainConfigText(text: string, fileName: string): ParsedDomainConfig {
  const b = new Builder(parseXlCfg(text, fileName));
  const config = build(b);
  ConfigError.throwIfAny(b.errors);
  // In file order, as a reader goes through the file (line 0, "not on a line", first).
  return { config, warnings: [...b.warnings].sort((x, y) => x.line - y.line) };
}

/** Reads and parses an xl.cfg file. */
export function parseDomainConfigFile(path: string): ParsedDomainConfig {
  return parseDomainConfigText(readFileSync(path, 'utf8'), path);
}
