// One IDE channel (cable): command block registers (8 ports at 0x1F0/0x170), control block
// (device control / alternate status at 0x3F6/0x376), up to two devices, its bus-master engine
// and its interrupt line (ISA IRQ 14/15 in compatibility mode).
//
// Register semantics:
//  - Writes to features/count/LBA/device go to BOTH devices (each keeps the previous value as
//    its "HOB" copy for LBA48); the device register's bit 4 selects which one answers reads.
//  - Command writes go to the selected device; commands to an absent device are ignored.
//  - Reading STATUS clears the selected device's pending interrupt; ALT STATUS does not.
//  - Device control: nIEN masks INTRQ, SRST resets both devices (signature on release),
//    HOB selects the previous ("high order") register contents for reads. Writing any command
//    block register clears HOB.
//  - With no device at all the channel floats: every register reads 0xFF. With only the
//    other device present, error/status read 0 and the others read the latched values.
import { DeviceStateError, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import type { LimitedLog } from '../../device-model/log.js';
import { ATA_DEV_DRV, ATA_HOB, ATA_NIEN, ATA_SRST } from './ata-constants.js';
import { BusMasterChannel, type DmaStream } from './bus-master.js';
import type { DriveHost, IdeDrive, IdeMetrics } from './ide-drive.js';

export class IdeChannel implements DriveHost {
  readonly drives: [IdeDrive | null, IdeDrive | null] = [null, null];
  selected: 0 | 1 = 0;
  devCtl = 0;
  /** Task-file values as the bus last carried them (read back for an absent device). */
  private readonly latch = { feature: 0, nsector: 0, sector: 0, lcyl: 0, hcyl: 0, select: 0xa0 };

  constructor(
    readonly index: number,
    readonly irq: IrqSource,
    readonly bm: BusMasterChannel,
    readonly metrics: IdeMetrics,
    readonly log: LimitedLog,
  ) {}

  attach(unit: 0 | 1, drive: IdeDrive): void {
    if (this.drives[unit]) throw new Error(`IDE channel ${this.index} unit ${unit} is taken`);
    drive.host = this;
    drive.unit = unit;
    this.drives[unit] = drive;
    drive.reset();
  }

  /** Removes a device (Xen unplug); its image is closed. */
  detach(unit: 0 | 1): IdeDrive | null {
    const d = this.drives[unit];
    if (!d) return null;
    this.bm.cancel();
    d.close();
    d.host = undefined;
    this.drives[unit] = null;
    this.updateIrq();
    return d;
  }

  // ---- save / restore (docs/kvm.md) ------------------------------------------------------

  saveState(f: FieldWriter): void {
    f.u8('selected', this.selected).u8('devCtl', this.devCtl);
    for (const [k, v] of Object.entries(this.latch)) f.u8(`latch.${k}`, v);
    this.bm.saveState(f);
    this.drives.forEach((d, unit) => {
      f.bool(`unit${unit}`, d !== null);
      d?.saveDriveState(f);
    });
  }

  /** Checks everything, then applies; a DMA command that was waiting for the engine is issued
   * again by its drive (it is part of the drive's state). */
  loadState(r: FieldReader): void {
    const selected = r.u8('selected', 1);
    const devCtl = r.u8('devCtl');
    const latch = Object.fromEntries(Object.keys(this.latch).map((k) => [k, r.u8(`latch.${k}`)]));
    const bm = this.bm.readState(r);
    const drives = this.drives.map((d, unit) => {
      const present = r.bool(`unit${unit}`);
      if (present !== (d !== null)) throw new DeviceStateError(`${r.section}: unit ${unit} was ${present ? 'present' : 'absent'} when saved, this machine's is ${d ? 'present' : 'absent'}`);
      return d ? d.readDriveState(r) : () => {};
    });
    this.selected = selected === 1 ? 1 : 0;
    this.devCtl = devCtl;
    Object.assign(this.latch, latch);
    bm.apply();
    for (const apply of drives) apply();
    if (bm.pending && !this.bm.hasPending()) throw new DeviceStateError(`${r.section}: a DMA transfer was waiting for the engine that no drive issued again`);
    this.updateIrq();
  }

  private get current(): IdeDrive | null {
    return this.drives[this.selected];
  }

  private get empty(): boolean {
    return !this.drives[0] && !this.drives[1];
  }

  // ---- DriveHost -------------------------------------------------------------------------

  driveInterrupt(drive: IdeDrive): void {
    if (this.drives[this.selected] === drive && !(this.devCtl & ATA_NIEN)) this.bm.noteInterrupt();
    this.updateIrq();
  }

  requestDma(_drive: IdeDrive, stream: DmaStream): void {
    this.bm.request(stream);
  }

  cancelDma(_drive: IdeDrive): void {
    this.bm.cancel();
  }

  updateIrq(): void {
    const d = this.current;
    const level = !!d && d.intrq && !(this.devCtl & ATA_NIEN);
    const before = this.irq.edges;
    this.irq.set(level);
    this.metrics.interrupts += this.irq.edges - before;
  }

  // ---- command block ---------------------------------------------------------------------

  read(reg: number, size: number): number {
    if (this.empty) return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    const d = this.current;
    if (reg === 0) return d ? d.dataRead(size) : 0;
    if (size > 1) {
      // Registers 1-7 are byte ports: a wider access reads consecutive ports.
      let v = 0;
      for (let i = 0; i < size && reg + i < 8; i++) v |= this.readByte(reg + i) << (8 * i);
      return v >>> 0;
    }
    return this.readByte(reg);
  }

  private readByte(reg: number): number {
    const d = this.current;
    const hob = (this.devCtl & ATA_HOB) !== 0;
    let v: number;
    switch (reg) {
      case 1:
        v = d ? (hob ? d.hobFeature : d.error) : 0;
        break;
      case 2:
        v = d ? (hob ? d.hobNsector : d.nsector) : this.latch.nsector;
        break;
      case 3:
        v = d ? (hob ? d.hobSector : d.sector) : this.latch.sector;
        break;
      case 4:
        v = d ? (hob ? d.hobLcyl : d.lcyl) : this.latch.lcyl;
        break;
      case 5:
        v = d ? (hob ? d.hobHcyl : d.hcyl) : this.latch.hcyl;
        break;
      case 6:
        v = d ? d.select : this.latch.select;
        break;
      default: // 7: status, acknowledges the interrupt
        if (!d) return 0;
        v = d.status;
        if (d.intrq) {
          d.intrq = false;
          this.updateIrq();
        }
    }
    return v & 0xff;
  }

  write(reg: number, size: number, value: number): void {
    if (reg === 0) {
      this.current?.dataWrite(size, value);
      return;
    }
    for (let i = 0; i < size && reg + i < 8; i++) this.writeByte(reg + i, (value >>> (8 * i)) & 0xff);
  }

  private writeByte(reg: number, v: number): void {
    this.devCtl &= ~ATA_HOB;
    const both = this.drives;
    switch (reg) {
      case 1:
        this.latch.feature = v;
        for (const d of both) if (d) ((d.hobFeature = d.feature), (d.feature = v));
        return;
      case 2:
        this.latch.nsector = v;
        for (const d of both) if (d) ((d.hobNsector = d.nsector), (d.nsector = v));
        return;
      case 3:
        this.latch.sector = v;
        for (const d of both) if (d) ((d.hobSector = d.sector), (d.sector = v));
        return;
      case 4:
        this.latch.lcyl = v;
        for (const d of both) if (d) ((d.hobLcyl = d.lcyl), (d.lcyl = v));
        return;
      case 5:
        this.latch.hcyl = v;
        for (const d of both) if (d) ((d.hobHcyl = d.hcyl), (d.hcyl = v));
        return;
      case 6:
        this.latch.select = v | 0xa0;
        for (const d of both) if (d) d.select = v | 0xa0;
        this.selected = v & ATA_DEV_DRV ? 1 : 0;
        this.updateIrq();
        return;
      default: {
        const d = this.current;
        if (!d) return; // commands to an absent device are ignored
        d.command(v);
        this.updateIrq();
      }
    }
  }

  // ---- control block ---------------------------------------------------------------------

  readAltStatus(): number {
    if (this.empty) return 0xff;
    return this.current?.status ?? 0;
  }

  writeDeviceControl(v: number): void {
    const old = this.devCtl;
    this.devCtl = v & (ATA_NIEN | ATA_SRST | ATA_HOB);
    if (!(old & ATA_SRST) && v & ATA_SRST) {
      this.bm.cancel();
      for (const d of this.drives) d?.holdInReset();
    } else if (old & ATA_SRST && !(v & ATA_SRST)) {
      for (const d of this.drives) d?.reset();
    }
    this.updateIrq();
  }

  reset(): void {
    this.devCtl = 0;
    this.selected = 0;
    this.bm.reset();
    for (const d of this.drives) {
      if (!d) continue;
      d.select = 0xa0;
      d.reset();
    }
    this.updateIrq();
  }
}
