// The typed domain configuration that domain-config.ts builds from an xl.cfg: xl's settings under
// readable names, with libxl's defaults applied where xl leaves them to libxl, and the disk and NIC
// structures under libxl's own field names.

import type { ConfigWarning } from './config-error.js';
import type { CpuAffinity } from './cpu-affinity.js';
import type { LibxlDeviceDisk } from './disk-spec.js';
import type { LibxlDeviceNic, ResolvedNic } from './vif-spec.js';

export type DomainType = 'pv' | 'pvh' | 'hvm';

/** xl's names for libxl_action_on_shutdown. */
export type ShutdownAction =
  | 'destroy' | 'restart' | 'rename-restart' | 'preserve'
  | 'coredump-destroy' | 'coredump-restart' | 'soft-reset';

export const SHUTDOWN_ACTIONS: readonly ShutdownAction[] = [
  'destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart', 'soft-reset',
];

export interface DomainDisk {
  /** The spec as written. */
  spec: string;
  /** libxl_device_disk as xl's parser leaves it. */
  disk: LibxlDeviceDisk;
  /** The xenstore device number of the vdev (xvda = 51712). */
  devid: number;
  line: number;
}

export interface DomainNic {
  spec: string;
  /** libxl_device_nic as xl's parser leaves it (devid = list index). */
  nic: LibxlDeviceNic;
  /** With libxl's defaults (MAC, bridge, script, type...) filled in. */
  resolved: ResolvedNic;
  line: number;
}

/** libxl_vnc_info; undefined members are at libxl's defaults. */
export interface VncOptions {
  enable?: boolean;
  listen?: string;
  passwd?: string;
  display?: number;
  findunused?: boolean;
}

export interface SdlOptions {
  enable?: boolean;
}

export interface HvmOptions {
  /** Boot order letters as given (xl passes them through); libxl's default is "cd". */
  boot: string;
  /** `serial='pty'` or a list of them. */
  serial?: string | string[];
  /** stdvga=1 or vga="stdvga" -> "std", stdvga=0 -> "cirrus", vga="none"/"qxl" as named;
   * undefined = device model default. xenode emulates only the standard VGA (or none). */
  vga?: 'std' | 'cirrus' | 'qxl' | 'none';
}

export interface DomainConfig {
  /** The config file name, for messages. */
  source: string;
  name: string;
  type: DomainType;
  /** Which setting decided the type. */
  typeFrom: 'type' | 'builder' | 'default';
  uuid: string;
  /** True when the config had no uuid and one was generated (v4), as xl does on every create. */
  uuidGenerated: boolean;
  /** memory= in MiB (libxl default 32 when neither memory nor maxmem is given). */
  memoryMiB: number;
  /** maxmem= in MiB; defaults to memory. */
  maxMemMiB: number;
  /** vcpus= (default 1): vCPUs online at boot. */
  vcpus: number;
  /** maxvcpus= (default vcpus). */
  maxVcpus: number;
  /** cpus= hard pinning. */
  cpus?: CpuAffinity;
  kernel?: string;
  ramdisk?: string;
  /** cmdline=, else "root=ROOT EXTRA" built from root= and extra=, as xl does. */
  cmdline?: string;
  bootloader?: string;
  onPoweroff: ShutdownAction;
  onReboot: ShutdownAction;
  onWatchdog: ShutdownAction;
  onCrash: ShutdownAction;
  onSoftReset: ShutdownAction;
  /** shadow_memory= in MiB. */
  shadowMemoryMiB?: number;
  /** cpu_weight= (credit scheduler weight, 1..65535). */
  cpuWeight?: number;
  /** cap= (percent of one CPU, 0 = uncapped). */
  cap?: number;
  acpi?: boolean;
  /** Present for HVM guests only. */
  hvm?: HvmOptions;
  /** vnc*= settings: the HVM display, or a PV framebuffer when vnc=1. */
  vnc: VncOptions;
  sdl: SdlOptions;
  deviceModel: {
    version?: 'qemu-xen' | 'qemu-xen-traditional';
    /** device_model_override= */
    override?: string;
    /** device_model_stubdomain_override= */
    stubdomain?: boolean;
  };
  disks: DomainDisk[];
  nics: DomainNic[];
  /** xm-only settings that xl ignores, kept so tools can explain them. */
  xm: { dhcp?: string; builder?: string; deviceModel?: string; vncviewer?: number; [key: string]: string | number | undefined };
  /** Every key the file set (dry-run output prints only what was set, as xl does). */
  specified: ReadonlySet<string>;
}

export interface ParsedDomainConfig {
  config: DomainConfig;
  warnings: ConfigWarning[];
}
