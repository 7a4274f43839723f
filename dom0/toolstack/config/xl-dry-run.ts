// What `xl create -n CFG` prints: libxl_domain_config_to_json() of the configuration exactly as
// xl's parser leaves it (before libxl fills its defaults), modelled on libxl_types.idl as of Xen
// 4.19/4.20. libxl prints a field only when it is off its IDL default, in IDL order; nested structs
// (sched_params, vnc, sdl, spice, rdm, arch_arm, arch_x86, the type.<kind> union) always print,
// empty ones as libxl's odd `{`, blank line, `}`.
//
// Not complete, but every field printed is named, valued and placed as libxl would: options xenode
// does not implement are never printed. Two fields come from xl.conf rather than the domain config
// (run_hotplug_scripts, claim_mode: both default to on in xl) and can be set through options.
// Fields that depend on the host (vcpu_hard_affinity bitmaps, which libxl sizes to the host's CPU
// count) use options.hostCpus.

import { cpus as hostCpuList } from 'node:os';
import { affinityPerVcpu } from './cpu-affinity.js';
import type { DomainConfig, ShutdownAction, VncOptions } from './domain-config.js';
import { diskToLibxlJson } from './disk-spec.js';
import { defbool, type LibxlJson, LibxlMap, libxlJsonText } from './libxl-json.js';
import { nicToLibxlJson } from './vif-spec.js';

export interface DryRunOptions {
  /** xl.conf run_hotplug_scripts (xl default 1). */
  runHotplugScripts?: boolean;
  /** xl.conf claim_mode (xl default 1). */
  claimMode?: boolean;
  /** Host CPU count, for `cpus=` bitmaps (default: this machine's). */
  hostCpus?: number;
}

/** libxl_action_on_shutdown values as libxl prints them (xl's "rename-restart" is RESTART_RENAME). */
const ACTION_JSON: Record<ShutdownAction, string> = {
  'destroy': 'destroy',
  'restart': 'restart',
  'rename-restart': 'restart_rename',
  'preserve': 'preserve',
  'coredump-destroy': 'coredump_destroy',
  'coredump-restart': 'coredump_restart',
  'soft-reset': 'soft_reset',
};

function vncJson(v: VncOptions): LibxlMap {
  return new LibxlMap()
    .set('enable', defbool(v.enable))
    .set('listen', v.listen)
    .set('passwd', v.passwd)
    .set('display', v.display || undefined)
    .set('findunused', defbool(v.findunused));
}

function sdlJson(cfg: DomainConfig): LibxlMap {
  return new LibxlMap().set('enable', defbool(cfg.sdl.enable));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function cInfo(cfg: DomainConfig, opts: DryRunOptions): LibxlMap {
  return new LibxlMap()
    .set('type', cfg.type)
    .set('name', cfg.name)
    .set('uuid', cfg.uuid)
    .set('run_hotplug_scripts', defbool(opts.runHotplugScripts ?? true));
}

function typeUnion(cfg: DomainConfig): [string, LibxlMap] {
  if (cfg.type !== 'hvm' || !cfg.hvm) return [`type.${cfg.type}`, new LibxlMap()];
  const has = (k: string) => cfg.specified.has(k);
  const serial = cfg.hvm.serial;
  const hvm = new LibxlMap()
    .set('vga', new LibxlMap().set('kind', cfg.hvm.vga))
    .set('vnc', vncJson(cfg.vnc))
    .set('sdl', sdlJson(cfg))
    .set('spice', new LibxlMap())
    .set('serial', typeof serial === 'string' ? serial : undefined)
    .set('boot', has('boot') ? cfg.hvm.boot : undefined)
    .set('serial_list', Array.isArray(serial) && serial.length ? serial : undefined)
    .set('rdm', new LibxlMap());
  return ['type.hvm', hvm];
}

function bInfo(cfg: DomainConfig, opts: DryRunOptions): LibxlMap {
  const has = (k: string) => cfg.specified.has(k);
  // xl: max_vcpus = maxvcpus, else vcpus, else 0 (left to libxl); avail_vcpus only from vcpus=.
  const maxVcpus = has('maxvcpus') || has('vcpus') ? cfg.maxVcpus : 0;
  const hostCpus = opts.hostCpus ?? hostCpuList().length;
  const affinity = cfg.cpus ? affinityPerVcpu(cfg.cpus, maxVcpus, hostCpus) : [];
  // xl: target from memory=, max from maxmem= or else the target; unset ones stay at the default.
  const targetKb = has('memory') ? cfg.memoryMiB * 1024 : undefined;
  const maxKb = has('maxmem') ? cfg.maxMemMiB * 1024 : targetKb;
  const [unionKey, union] = typeUnion(cfg);
  const dmVersion = cfg.deviceModel.version?.replaceAll('-', '_');
  return new LibxlMap()
    .set('max_vcpus', maxVcpus || undefined)
    .set('avail_vcpus', has('vcpus') && cfg.vcpus > 0 ? range(cfg.vcpus) : undefined)
    .set('vcpu_hard_affinity', affinity.length ? affinity : undefined)
    .set('numa_placement', cfg.cpus?.form === 'list' ? defbool(false) : undefined)
    .set('max_memkb', maxKb)
    .set('target_memkb', targetKb)
    .set('shadow_memkb', cfg.shadowMemoryMiB !== undefined ? cfg.shadowMemoryMiB * 1024 : undefined)
    .set('device_model_version', dmVersion)
    .set('device_model_stubdomain', defbool(cfg.deviceModel.stubdomain))
    .set('device_model', cfg.deviceModel.override)
    .set('sched_params', new LibxlMap().set('weight', cfg.cpuWeight).set('cap', cfg.cap))
    .set('claim_mode', defbool(opts.claimMode ?? true))
    .set('kernel', cfg.kernel)
    .set('cmdline', cfg.cmdline)
    .set('ramdisk', cfg.ramdisk)
    .set('acpi', defbool(cfg.acpi))
    .set('bootloader', cfg.bootloader)
    .set(unionKey, union)
    .set('arch_arm', new LibxlMap())
    .set('arch_x86', new LibxlMap());
}

/** libxl_domain_config as an ordered JSON value (see domainConfigToLibxlJson for the text). */
export function domainConfigToLibxlMap(cfg: DomainConfig, opts: DryRunOptions = {}): LibxlMap {
  const nonEmpty = (a: LibxlJson[]) => (a.length ? a : undefined);
  // PV guests get their framebuffer as a vfb + vkb pair when vnc=1 (xl's top-level VNC options).
  const pvVfb = cfg.type === 'pv' && cfg.vnc.enable;
  const action = (a: ShutdownAction) => (a === 'destroy' ? undefined : ACTION_JSON[a]);
  return new LibxlMap()
    .set('c_info', cInfo(cfg, opts))
    .set('b_info', bInfo(cfg, opts))
    .set('disks', nonEmpty(cfg.disks.map((d) => diskToLibxlJson(d.disk))))
    .set('nics', nonEmpty(cfg.nics.map((n) => nicToLibxlJson(n.nic))))
    .set('vfbs', pvVfb ? [new LibxlMap().set('devid', 0).set('vnc', vncJson(cfg.vnc)).set('sdl', sdlJson(cfg))] : undefined)
    .set('vkbs', pvVfb ? [new LibxlMap().set('devid', 0)] : undefined)
    .set('on_poweroff', action(cfg.onPoweroff))
    .set('on_reboot', action(cfg.onReboot))
    .set('on_watchdog', action(cfg.onWatchdog))
    .set('on_crash', action(cfg.onCrash))
    .set('on_soft_reset', action(cfg.onSoftReset));
}

/** The text `xl create -n CFG` writes to stdout (libxl's JSON, ending in a newline). */
export function domainConfigToLibxlJson(cfg: DomainConfig, opts: DryRunOptions = {}): string {
  return libxlJsonText(domainConfigToLibxlMap(cfg, opts));
}
