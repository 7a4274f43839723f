// What the domain builder needs from a parsed xl config (dom0/toolstack/config/): the part of
// libxl_domain_config this toolstack acts on. Devices (vif, disk) are carried through
// unchanged for their backends.
export type Action = 'destroy' | 'restart' | 'rename-restart' | 'preserve' | 'coredump-destroy' | 'coredump-restart' | 'soft-reset';

export interface BuildSpec {
  name: string;
  uuid?: string;
  type: 'pv' | 'pvh' | 'hvm';
  memoryMiB: number;
  maxMemMiB: number;
  vcpus: number;
  maxVcpus: number;
  cpus?: number[];
  cmdline: string;
  kernel?: string;
  ramdisk?: string;
  onPoweroff: Action;
  onReboot: Action;
  onWatchdog: Action;
  onCrash: Action;
  weight?: number;
  cap?: number;
  /** The whole parsed config, for `xl list -l` and for re-creating on restart. */
  config: unknown;
  /** The libxl-style JSON `xl create -n` / `xl list -l` print. */
  libxlJson?: unknown;
}
