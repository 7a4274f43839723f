// What every device on an IDE cable has: its own copy of the task-file registers (both
// devices latch every register write; reads come from the selected one), a status/error pair,
// an INTRQ output, and the PIO data-transfer state machine behind the data port. AtaDisk and
// AtapiCdrom implement the commands.
import type { LimitedLog } from '../../device-model/log.js';
import { ATA_ABRT, ATA_BSY, ATA_DRDY, ATA_DRQ, ATA_DSC, ATA_ERR, ATA_CMD_DEVICE_RESET } from './ata-constants.js';
import type { DmaStream } from './bus-master.js';
import { DeviceStateError, readRegisters, writeRegisters, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';

export interface IdeMetrics {
  /** Guest accesses to the controller's ports (counted by the ioreq dispatcher). */
  exits: number;
  commands: number;
  sectorsRead: number;
  sectorsWritten: number;
  flushes: number;
  /** Commands completed with ERR. */
  errors: number;
  dmaTransfers: number;
  dmaBytes: number;
  dmaErrors: number;
  prdEntries: number;
  /** Rising edges of the channel IRQ lines. */
  interrupts: number;
}

export function createIdeMetrics(): IdeMetrics {
  return { exits: 0, commands: 0, sectorsRead: 0, sectorsWritten: 0, flushes: 0, errors: 0, dmaTransfers: 0, dmaBytes: 0, dmaErrors: 0, prdEntries: 0, interrupts: 0 };
}

/** The channel, as its devices see it. */
export interface DriveHost {
  driveInterrupt(drive: IdeDrive): void;
  requestDma(drive: IdeDrive, stream: DmaStream): void;
  cancelDma(drive: IdeDrive): void;
  readonly metrics: IdeMetrics;
  readonly log: LimitedLog;
}

/** Largest PIO block: an ATAPI DRQ block (0xFFFE) or 16 ATA sectors. */
export const IDE_IO_BUFFER = 0x10000;

/** The task file and interface state every IDE device has, as saved. */
const DRIVE_REGISTERS = [
  'feature', 'hobFeature', 'nsector', 'hobNsector', 'sector', 'hobSector', 'lcyl', 'hobLcyl', 'hcyl', 'hobHcyl', 'select', 'status', 'error', 'intrq',
] as const;

export abstract class IdeDrive {
  abstract readonly kind: 'ata' | 'atapi';
  feature = 0;
  hobFeature = 0;
  nsector = 0;
  hobNsector = 0;
  sector = 0;
  hobSector = 0;
  lcyl = 0;
  hobLcyl = 0;
  hcyl = 0;
  hobHcyl = 0;
  select = 0xa0;
  status = 0;
  error = 0;
  /** INTRQ pending (cleared by a status read or a new command). */
  intrq = false;
  host: DriveHost | undefined;
  /** 0 = master, 1 = slave. */
  unit = 0;

  protected readonly io = new Uint8Array(IDE_IO_BUFFER);
  private pos = 0;
  private end = 0;
  private pioOut = false;
  private endFn: (() => void) | null = null;

  /** Signature registers after reset/diagnostics (ATA: 01 01 00 00, ATAPI: 01 01 14 EB). */
  abstract setSignature(): void;
  /** Status after reset. */
  protected abstract resetStatus(): number;
  /** Runs a command (BSY/DRQ already checked, error cleared). */
  protected abstract execute(cmd: number): void;
  /** Releases the backing image. */
  abstract close(): void;

  // ---- save / restore (docs/kvm.md, "Save, restore, migration") ---------------------------

  /** Task file, and a PIO transfer in progress: the data buffer, the position in it and what
   * the drive does when the host has moved it all (pioContinuation). */
  saveDriveState(f: FieldWriter): void {
    writeRegisters(f, this, DRIVE_REGISTERS);
    f.u32('end', this.end).u32('pos', this.pos).bool('pioOut', this.pioOut).u8('pioNext', this.pioContinuation());
    f.bytes('io', this.io.subarray(0, this.end));
    this.saveKindState(f);
  }

  /** Reads and checks everything first; returns what applies it. */
  readDriveState(r: FieldReader): () => void {
    const regs = readRegisters(r, this, DRIVE_REGISTERS, { feature: 0xff, hobFeature: 0xff, nsector: 0xff, hobNsector: 0xff, sector: 0xff, hobSector: 0xff, lcyl: 0xff, hobLcyl: 0xff, hcyl: 0xff, hobHcyl: 0xff, select: 0xff, status: 0xff, error: 0xff });
    const end = r.u32('end', IDE_IO_BUFFER);
    const pos = r.u32('pos', end);
    const pioOut = r.bool('pioOut');
    const next = r.u8('pioNext');
    const io = r.bytes('io', end);
    const resume = next === 0 ? null : this.pioResume(next, r.section);
    const kind = this.readKindState(r);
    return () => {
      Object.assign(this, regs);
      this.io.set(io);
      this.pos = pos;
      this.end = end;
      this.pioOut = pioOut;
      this.endFn = resume;
      kind();
    };
  }

  /** What finishBlock will run, as a number pioResume understands: 0 = no transfer. A device
   * that cannot describe its transfer refuses the save while one is in progress. */
  protected pioContinuation(): number {
    if (this.endFn === null) return 0;
    throw new DeviceStateError(`IDE ${this.kind} unit ${this.unit}: a command is in flight that this device cannot save; try again`);
  }

  protected pioResume(next: number, section: string): () => void {
    throw new DeviceStateError(`${section}: PIO continuation ${next} is not one this device has`);
  }

  /** Device-specific state (ATA: the transfer in progress, modes); default none. */
  protected saveKindState(_f: FieldWriter): void {}
  protected readKindState(_r: FieldReader): () => void {
    return () => {};
  }

  /** A PIO data phase is armed, and which way it goes (host writes = out). */
  protected get pioBusy(): boolean {
    return this.endFn !== null;
  }
  protected get pioIsOut(): boolean {
    return this.pioOut;
  }

  /** The host wrote the command register. */
  command(cmd: number): void {
    const h = this.host!;
    if (this.status & (ATA_BSY | ATA_DRQ) && cmd !== ATA_CMD_DEVICE_RESET) {
      h.log.warn('busy-cmd', `command 0x${cmd.toString(16)} while busy (status 0x${this.status.toString(16)}): ignored`);
      return;
    }
    h.metrics.commands++;
    this.intrq = false;
    this.error = 0;
    this.execute(cmd);
  }

  /** SRST deasserted, DEVICE RESET, or power-on. */
  reset(): void {
    this.transferStop();
    this.host?.cancelDma(this);
    this.intrq = false;
    this.error = 0x01; // diagnostic code: no error
    this.feature = 0;
    this.setSignature();
    this.status = this.resetStatus();
  }

  /** SRST asserted: busy until released. */
  holdInReset(): void {
    this.transferStop();
    this.host?.cancelDma(this);
    this.intrq = false;
    this.status = ATA_BSY | ATA_DSC;
    this.error = 0x01;
  }

  protected setSignatureRegs(lcyl: number, hcyl: number): void {
    this.select &= 0xf0;
    this.nsector = 1;
    this.sector = 1;
    this.lcyl = lcyl;
    this.hcyl = hcyl;
  }

  protected raiseIrq(): void {
    this.intrq = true;
    this.host?.driveInterrupt(this);
  }

  protected abortCommand(): void {
    this.transferStop();
    this.status = ATA_DRDY | ATA_ERR;
    this.error = ATA_ABRT;
    if (this.host) this.host.metrics.errors++;
  }

  /** Completes a command that moves no data: DRDY|DSC and an interrupt. */
  protected completeNoData(): void {
    this.status = ATA_DRDY | ATA_DSC;
    this.raiseIrq();
  }

  /** Arms the data port for `len` bytes of io[]; `out` = host writes. */
  protected transferStart(len: number, out: boolean, end: () => void): void {
    this.pos = 0;
    this.end = len;
    this.pioOut = out;
    this.endFn = end;
    this.status |= ATA_DRQ;
  }

  protected transferStop(): void {
    this.pos = 0;
    this.end = 0;
    this.endFn = null;
    this.status &= ~ATA_DRQ;
  }

  private finishBlock(): void {
    const f = this.endFn;
    this.endFn = null;
    this.status &= ~ATA_DRQ;
    if (f) f();
  }

  /** Data port read of 1, 2 or 4 bytes. */
  dataRead(size: number): number {
    if (!(this.status & ATA_DRQ) || this.pioOut || this.endFn === null) return 0;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const p = this.pos + i;
      v |= (p < this.end ? this.io[p]! : 0) << (8 * i);
    }
    this.pos += size;
    if (this.pos >= this.end) this.finishBlock();
    return v >>> 0;
  }

  /** Data port write of 1, 2 or 4 bytes. */
  dataWrite(size: number, value: number): void {
    if (!(this.status & ATA_DRQ) || !this.pioOut || this.endFn === null) return;
    for (let i = 0; i < size; i++) {
      const p = this.pos + i;
      if (p < this.end) this.io[p] = (value >>> (8 * i)) & 0xff;
    }
    this.pos += size;
    if (this.pos >= this.end) this.finishBlock();
  }
}
