// What dom0 says to the stub domain (over a SOCK_SEQPACKET socket with fds as SCM_RIGHTS,
// drivers/hypercall/channel.ts MessageSocket): start or stop one guest's device model. The
// fds of a `start` arrive in the order of `StartDeviceModel.fds`.
import type { MessagePort } from 'node:worker_threads';
export interface DmNic {
  devid: number;
  mac: string;
  /** Index into the message's fds: the `vif<domid>.<devid>-emu` TAP, opened by dom0. */
  tapFd: number;
}

export interface DmDisk {
  /** IDE position: 0 hda, 1 hdb, 2 hdc, 3 hdd. */
  index: number;
  /** Raw image, or null for an empty cdrom drive. */
  path: string | null;
  readOnly: boolean;
  cdrom: boolean;
  /** Index into the message's fds: the image, opened by dom0 (the stub domain opens nothing
   * of the host by path). Absent or -1: opened by `path` (unconfined embedders). */
  fd?: number;
}

/** The display adapter and its VNC server (xl's vga=, vnc*=, keymap=). */
export interface DmDisplay {
  /** Video memory in bytes (xl's videoram; the standard VGA's default is 16 MiB). */
  vramBytes: number;
  /** null: the adapter without a VNC server (vnc = 0). */
  vnc: { listen: string; display: number; findUnused: boolean; password: string | null; listenFd?: number } | null;
}

/** What `start` answers. */
export interface DmStarted {
  started: number;
  vnc?: { listen: string; port: number; display: number };
}

export interface StartDeviceModel {
  op: 'start';
  domid: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  nics: DmNic[];
  disks: DmDisk[];
  /** Set up PCI as hvmloader would (BARs, decode, PIRQ routes, Interrupt Line): for guests
   * without firmware of their own (a Linux kernel booted directly on KVM). */
  firmware?: boolean;
  /** The standard VGA at 00:02.0 (absent: vga = "none"). */
  display?: DmDisplay;
  /** fd indices: guest RAM memfd, ioreq memfd, the guest's irq doorbell (eventfd), the serial
   * pty master (or -1), the console log (or -1); NIC TAPs are referenced from `nics`. */
  fds: { memory: number; ioreq: number; irq: number; serial: number; log: number };
  /** A restore or incoming migration: build the machine now, load the saved state
   * (stubdom/machine-state.ts) that `load-state` brings later (the guest's pages are still on
   * their way), then serve. */
  awaitState?: boolean;
}

export interface StopDeviceModel {
  op: 'stop';
  domid: number;
}

/** What the toolstack asks of a running device model (xl trigger, cd-insert, cd-eject). */
export type DmControl =
  /** An ACPI button press (PM1a_STS, the SCI). */
  | { kind: 'button'; button: 'power' | 'sleep' }
  /** An NMI to the guest's vCPU (its runtime takes it from the platform page). */
  | { kind: 'nmi'; vcpu: number }
  /** A new disc in the IDE CD-ROM at `index` (the image's fd rides along as SCM_RIGHTS), or
   * with `insert: false` the disc taken out. */
  | { kind: 'media'; index: number; insert: boolean };

/** What the device model answers a control: for a button, whether the guest's OS had the
 * button's SCI enabled (a press the OS does not listen to stays latched in PM1a_STS). */
export interface DmControlResult {
  enabled?: boolean;
  /** The medium's size after a media change, in bytes (0: none). */
  mediumBytes?: number;
}

/** Fault injection (tests): `exit` ends the device model as a crash would (the default);
 * `escape` tries what a subverted device model would (stubdom/escape-probe.ts) and answers
 * with the results; `setuid` calls setuid(0), which the seccomp filter answers by killing. */
export type DmFault = { kind?: 'exit' } | { kind: 'escape'; tcpPort?: number; path?: string; pid?: number } | { kind: 'setuid' };

export type DmRequest =
  | StartDeviceModel
  | StopDeviceModel
  | { op: 'metrics'; domid: number }
  | { op: 'fault'; domid: number; fault?: DmFault | null }
  // Save, restore, migration (stubdom/dm-save.ts): freeze and save (answers with the state in a
  // memfd), thaw (a checkpoint goes on), the state of a restore and its outcome, and the pages
  // the model wrote by DMA while a migration copies RAM.
  | { op: 'save'; domid: number }
  | { op: 'fetch-state'; domid: number }
  | { op: 'thaw'; domid: number }
  | { op: 'restored'; domid: number }
  | { op: 'load-state'; domid: number; bytes: number }
  | { op: 'dma-dirty'; domid: number; action: 'start' | 'collect' | 'stop' }
  | { op: 'control'; domid: number; control: DmControl };

/** Upcall from the stub domain: a device model ended by itself (crash or guest reset). */
export interface DmExit {
  domid: number;
  reason: 'crash' | 'reset';
  message: string;
}

/** What each worker gets (fds are this process's, shared by its threads). */
export interface WorkerData {
  domid: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  nics: { devid: number; mac: string; fd: number }[];
  /** `fd` here is this process's descriptor (or -1). */
  disks: DmDisk[];
  firmware: boolean;
  memFd: number;
  ioreqFd: number;
  irqFd: number;
  serialFd: number;
  logFd: number;
  /** Where the toolstack's controls arrive (DmControl; read with receiveMessageOnPort). */
  control: MessagePort;
  /** Wait for a saved state to come by message (`load-state`) and load it before serving. */
  awaitState: boolean;
  /** Save control words (stubdom/dm-save.ts) and the DMA dirty bitmap, both shared with the
   * stub domain's main thread. */
  saveControl: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  /** The display adapter's shared state and the viewers' input queue (stubdom/main.ts owns them). */
  display: { regs: SharedArrayBuffer; vram: SharedArrayBuffer; input: SharedArrayBuffer } | null;
}

/** The DMA dirty bitmap for a guest of `memoryBytes` (one bit per page, whole Int32 words): the
 * size dom0's memfd for a `dma-dirty` collect must have (stubdom/dm-save.ts). */
export function dirtyBitmapBytes(memoryBytes: number): number {
  return Math.ceil(memoryBytes / 4096 / 32) * 4;
}
