// One PCI function's configuration space (type 0 header), as real hardware presents it:
// read-only identity, per-byte write masks, write-1-to-clear status bits, BARs that read back
// their size mask after an all-ones write, the command register gating I/O decode, memory
// decode, bus mastering and INTx, and the interrupt line/pin registers. Devices extend it and
// add BARs; the PciBus maps enabled BARs into the machine's I/O and MMIO buses.
import { DeviceStateError, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import type { BusRegion, ExitCounter, IoHandler } from '../../device-model/address-bus.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_STATUS_SIG_SYSTEM_ERROR,
  PCI_STATUS_W1C,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './constants.js';

export type BarKind = 'io' | 'mem';

export interface BarSpec {
  kind: BarKind;
  /** Power of two; at least 4 for I/O, 16 for memory. */
  size: number;
  prefetchable?: boolean;
  handler: IoHandler;
}

export interface PciIds {
  vendor: number;
  device: number;
  revision: number;
  /** base << 16 | sub << 8 | prog-if */
  classCode: number;
  headerType?: number;
  subsystemVendor?: number;
  subsystem?: number;
  /** 0 = no interrupt, 1..4 = INTA..INTD */
  interruptPin?: number;
  /** Initial status register bits (fast back-to-back, DEVSEL timing...). */
  status?: number;
}

/** What a PciFunction needs from the bus it sits on. */
export interface PciBusHooks {
  remap(fn: PciFunction): void;
}

const BAR_COMMAND_BITS = PCI_COMMAND_IO | PCI_COMMAND_MEMORY;

/** Config bytes a device's own hardware fixes: vendor/device, revision/class, header type,
 * subsystem, interrupt pin. A saved config must agree on them. */
const IDENTITY_BYTES: readonly [number, number][] = [[0x00, 4], [0x08, 4], [0x0e, 1], [0x2c, 4], [0x3d, 1]];

export class PciFunction {
  readonly config = new Uint8Array(256);
  protected readonly wmask = new Uint8Array(256);
  protected readonly w1cmask = new Uint8Array(256);
  readonly bars: (BarSpec | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  /** Current mapping of each BAR (maintained by the bus). */
  readonly barRegions: (BusRegion | null)[] = [null, null, null, null, null, null];
  /** Set by the bus on attach. */
  hooks: PciBusHooks | undefined;
  dev = -1;
  fn = -1;
  /** The INTx output, connected by the bus on attach. */
  irq: IrqSource | undefined;
  private intxLevel = false;

  constructor(
    readonly name: string,
    ids: PciIds,
    /** Counted on every guest access to this function's BARs. */
    readonly exitCounter?: ExitCounter,
  ) {
    const c = this.config;
    const dv = new DataView(c.buffer);
    dv.setUint16(PCI_VENDOR_ID, ids.vendor, true);
    dv.setUint16(PCI_DEVICE_ID, ids.device, true);
    c[PCI_REVISION_ID] = ids.revision;
    c[PCI_CLASS_PROG] = ids.classCode & 0xff;
    c[PCI_CLASS_PROG + 1] = (ids.classCode >> 8) & 0xff;
    c[PCI_CLASS_PROG + 2] = (ids.classCode >> 16) & 0xff;
    c[PCI_HEADER_TYPE] = ids.headerType ?? 0;
    dv.setUint16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystemVendor ?? 0, true);
    dv.setUint16(PCI_SUBSYSTEM_ID, ids.subsystem ?? 0, true);
    c[PCI_INTERRUPT_PIN] = ids.interruptPin ?? 0;
    dv.setUint16(PCI_STATUS, ids.status ?? 0, true);
    // Writable standard fields.
    this.wmask[PCI_COMMAND] = 0xff & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY);
    this.wmask[PCI_COMMAND + 1] = (PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE) >> 8;
    this.w1cmask[PCI_STATUS] = PCI_STATUS_W1C & 0xff;
    this.w1cmask[PCI_STATUS + 1] = PCI_STATUS_W1C >> 8;
    this.wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.wmask[PCI_LATENCY_TIMER] = 0xff;
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
  }

  /** Declares BAR `index` (0..5). 64-bit BARs are not used by these devices. */
  protected addBar(index: number, spec: BarSpec): void {
    const min = spec.kind === 'io' ? 4 : 16;
    if (index < 0 || index > 5 || spec.size < min || (spec.size & (spec.size - 1)) !== 0) throw new RangeError(`${this.name}: bad BAR ${index}`);
    this.bars[index] = spec;
    this.setBarRegister(index, 0);
  }

  /** Makes config bytes [reg, reg+len) plain read/write storage (chipset registers). */
  protected writable(reg: number, len: number, mask = 0xff): void {
    for (let i = 0; i < len; i++) this.wmask[reg + i] = mask;
  }

  private u16(reg: number): number {
    return this.config[reg]! | (this.config[reg + 1]! << 8);
  }

  private u32(reg: number): number {
    return (this.config[reg]! | (this.config[reg + 1]! << 8) | (this.config[reg + 2]! << 16) | (this.config[reg + 3]! << 24)) >>> 0;
  }

  private set32(reg: number, v: number): void {
    this.config[reg] = v & 0xff;
    this.config[reg + 1] = (v >>> 8) & 0xff;
    this.config[reg + 2] = (v >>> 16) & 0xff;
    this.config[reg + 3] = (v >>> 24) & 0xff;
  }

  get command(): number {
    return this.u16(PCI_COMMAND);
  }

  get status(): number {
    return this.u16(PCI_STATUS);
  }

  busMasterEnabled(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  /** The device's DMA hit nothing (not guest RAM): PCI "received master abort". */
  signalMasterAbort(): void {
    this.config[PCI_STATUS + 1]! |= PCI_STATUS_REC_MASTER_ABORT >> 8;
  }

  /** The device asserted SERR# (only when SERR# is enabled in the command register). */
  signalSystemError(): void {
    if (this.command & PCI_COMMAND_SERR) this.config[PCI_STATUS + 1]! |= PCI_STATUS_SIG_SYSTEM_ERROR >> 8;
  }

  /** Address a BAR decodes (flags stripped), or 0. */
  barAddress(index: number): number {
    const spec = this.bars[index];
    if (!spec) return 0;
    const v = this.u32(PCI_BASE_ADDRESS_0 + 4 * index);
    return (spec.kind === 'io' ? v & 0xffff_fffc : v & 0xffff_fff0) >>> 0;
  }

  /** Whether the BAR should decode now: command bit on, address assigned and in range. */
  barDecodes(index: number): boolean {
    const spec = this.bars[index];
    if (!spec) return false;
    const a = this.barAddress(index);
    if (a === 0) return false;
    if (spec.kind === 'io') return (this.command & PCI_COMMAND_IO) !== 0 && a + spec.size <= 0x10000;
    return (this.command & PCI_COMMAND_MEMORY) !== 0 && a + spec.size <= 0x1_0000_0000;
  }

  private setBarRegister(index: number, value: number): void {
    const spec = this.bars[index];
    const reg = PCI_BASE_ADDRESS_0 + 4 * index;
    if (!spec) {
      this.set32(reg, 0);
      return;
    }
    if (spec.kind === 'io') this.set32(reg, ((value & ~(spec.size - 1) & 0xffff_fffc) | PCI_BASE_ADDRESS_SPACE_IO) >>> 0);
    else this.set32(reg, ((value & ~(spec.size - 1) & 0xffff_fff0) | (spec.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0)) >>> 0);
  }

  /** Config read of `size` bytes at an aligned `reg` (the bus checks alignment). */
  configRead(reg: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.config[reg + i]! << (8 * i);
    return v >>> 0;
  }

  /** Config write; BARs, command and status get their hardware semantics. */
  configWrite(reg: number, size: number, value: number): void {
    const oldCmd = this.command;
    let barsTouched = 0;
    for (let i = 0; i < size; i++) {
      const a = reg + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (a >= PCI_BASE_ADDRESS_0 && a < PCI_BASE_ADDRESS_0 + 24) {
        barsTouched |= 1 << ((a - PCI_BASE_ADDRESS_0) >> 2);
        continue;
      }
      const m = this.wmask[a]!;
      let b = (this.config[a]! & ~m) | (byte & m);
      b &= ~(byte & this.w1cmask[a]!);
      this.config[a] = b;
    }
    for (let bar = 0; bar < 6; bar++) {
      if (!(barsTouched & (1 << bar))) continue;
      const r = PCI_BASE_ADDRESS_0 + 4 * bar;
      let cur = this.u32(r);
      for (let i = 0; i < size; i++) {
        const a = reg + i;
        if (a >= r && a < r + 4) {
          const sh = 8 * (a - r);
          cur = ((cur & ~(0xff << sh)) | (((value >>> (8 * i)) & 0xff) << sh)) >>> 0;
        }
      }
      this.setBarRegister(bar, cur);
    }
    const cmd = this.command;
    if (barsTouched || (cmd ^ oldCmd) & BAR_COMMAND_BITS) this.hooks?.remap(this);
    if ((cmd ^ oldCmd) & PCI_COMMAND_INTX_DISABLE) this.driveIntx();
    this.onConfigWrite(reg, size, oldCmd);
  }

  /** Device-specific reaction to a config write (after the standard handling). */
  protected onConfigWrite(_reg: number, _size: number, _oldCommand: number): void {}

  /** Sets the device's INTx level; the status register's interrupt bit follows it and the pin
   * is driven unless Interrupt Disable is set. */
  setIrq(level: boolean): void {
    this.intxLevel = level;
    if (level) this.config[PCI_STATUS]! |= PCI_STATUS_INTERRUPT;
    else this.config[PCI_STATUS]! &= ~PCI_STATUS_INTERRUPT;
    this.driveIntx();
  }

  private driveIntx(): void {
    this.irq?.set(this.intxLevel && (this.command & PCI_COMMAND_INTX_DISABLE) === 0);
  }

  /** Config space and the INTx level (docs/kvm.md, "Save, restore, migration"). */
  savePciState(f: FieldWriter): void {
    f.bytes('config', this.config).bool('intx', this.intxLevel);
  }

  /** Config space back, refused if it names another device (IDs, class, header type, pin);
   * then the BARs decode where the config says and INTx is driven as it was. */
  loadPciState(r: FieldReader): void {
    const config = r.bytes('config', 256);
    const intx = r.bool('intx');
    for (const [off, len] of IDENTITY_BYTES) {
      for (let i = off; i < off + len; i++) {
        if (config[i] !== this.config[i]) throw new DeviceStateError(`${r.section}: config byte 0x${i.toString(16)} is 0x${config[i]!.toString(16)}, this ${this.name} has 0x${this.config[i]!.toString(16)}`);
      }
    }
    this.config.set(config);
    this.hooks?.remap(this);
    this.setIrq(intx);
  }

  /** Firmware-style direct BAR assignment (the machine's hvmloader role). */
  assignBar(index: number, address: number): void {
    this.setBarRegister(index, address);
    this.hooks?.remap(this);
  }

  /** Firmware-style command register store (goes through the normal write path). */
  setCommand(bits: number): void {
    this.configWrite(PCI_COMMAND, 2, bits);
  }
}
