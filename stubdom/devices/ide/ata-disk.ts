// An ATA hard disk on an image file: IDENTIFY, PIO READ/WRITE SECTORS (single, MULTIPLE,
// LBA28 and LBA48, CHS too), READ/WRITE DMA (+EXT) through the bus-master engine, VERIFY,
// FLUSH CACHE (+EXT), SET FEATURES (transfer mode, write cache, look-ahead), SET MULTIPLE
// MODE, and the power/seek/recalibrate commands a driver sends at boot and shutdown, which
// complete without doing anything. Anything else aborts (ERR, error ABRT).
//
// Refusals: sectors past the end of the disk -> IDNF; a write to a read-only image -> ABRT;
// an I/O error on the image -> ABRT (logged); CHS with sector 0 -> IDNF.
import { DeviceStateError, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import {
  ATA_CMD_CHK_POWER,
  ATA_CMD_EDD,
  ATA_CMD_FLUSH,
  ATA_CMD_FLUSH_EXT,
  ATA_CMD_ID_ATA,
  ATA_CMD_IDLE,
  ATA_CMD_IDLEIMMEDIATE,
  ATA_CMD_INIT_DEV_PARAMS,
  ATA_CMD_READ_DMA,
  ATA_CMD_READ_DMA_EXT,
  ATA_CMD_READ_DMA_NORETRY,
  ATA_CMD_READ_MULTI,
  ATA_CMD_READ_MULTI_EXT,
  ATA_CMD_READ_PIO,
  ATA_CMD_READ_PIO_EXT,
  ATA_CMD_READ_PIO_NORETRY,
  ATA_CMD_SEEK,
  ATA_CMD_SET_FEATURES,
  ATA_CMD_SET_MULTI,
  ATA_CMD_SLEEP,
  ATA_CMD_STANDBY,
  ATA_CMD_STANDBYNOW1,
  ATA_CMD_VERIFY,
  ATA_CMD_VERIFY_EXT,
  ATA_CMD_VERIFY_NORETRY,
  ATA_CMD_WRITE_DMA,
  ATA_CMD_WRITE_DMA_EXT,
  ATA_CMD_WRITE_DMA_NORETRY,
  ATA_CMD_WRITE_MULTI,
  ATA_CMD_WRITE_MULTI_EXT,
  ATA_CMD_WRITE_PIO,
  ATA_CMD_WRITE_PIO_EXT,
  ATA_CMD_WRITE_PIO_NORETRY,
  ATA_DEV_LBA,
  ATA_DRDY,
  ATA_DRQ,
  ATA_DSC,
  ATA_ERR,
  ATA_IDNF,
  ATA_SECTOR_SIZE,
  SETFEATURES_RA_OFF,
  SETFEATURES_RA_ON,
  SETFEATURES_REVERT_OFF,
  SETFEATURES_REVERT_ON,
  SETFEATURES_WC_OFF,
  SETFEATURES_WC_ON,
  SETFEATURES_XFER,
} from './ata-constants.js';
import type { BlockBacking } from './block-backing.js';
import { ataIdentify, type XferModes } from './identify.js';
import { IdeDrive } from './ide-drive.js';

export const MAX_MULT_SECTORS = 16;

export interface AtaDiskOptions {
  serial?: string;
  model?: string;
  firmware?: string;
}

/** What a restored PIO transfer does when the host has moved the buffer (IdeDrive.pioContinuation). */
const PIO_NEXT = { IDENTIFY: 1, READ_BLOCK: 2, WRITE_BLOCK: 3 } as const;

interface PioXfer {
  lba: number;
  remaining: number;
  block: number;
  lba48: boolean;
  /** Sectors in the block currently in the data buffer. */
  inBuffer: number;
}

export class AtaDisk extends IdeDrive {
  readonly kind = 'ata' as const;
  readonly sectors: number;
  readonly heads = 16;
  readonly sectorsPerTrack = 63;
  readonly cylinders: number;
  multSectors = MAX_MULT_SECTORS;
  writeCache = true;
  readonly modes: XferModes = { pio: 4, mwdma: 2, udma: -1 };
  private xfer: PioXfer | null = null;
  /** A DMA command waiting for (or in) the bus-master engine: re-issued after a restore. */
  private dmaCmd: { read: boolean; lba48: boolean } | null = null;
  private readonly ident: Required<AtaDiskOptions>;

  constructor(
    readonly backing: BlockBacking,
    opts: AtaDiskOptions = {},
  ) {
    super();
    this.sectors = Math.floor(backing.size / ATA_SECTOR_SIZE);
    this.cylinders = Math.max(1, Math.min(16383, Math.floor(this.sectors / (this.heads * this.sectorsPerTrack))));
    this.ident = { serial: opts.serial ?? 'XN00000001', model: opts.model ?? 'XENODE HARDDISK', firmware: opts.firmware ?? '0.1' };
    this.reset();
  }

  override setSignature(): void {
    this.setSignatureRegs(0, 0);
  }

  protected override resetStatus(): number {
    return ATA_DRDY | ATA_DSC;
  }

  override close(): void {
    this.backing.close();
  }

  identifyData(): Uint8Array {
    return ataIdentify({
      ...this.ident,
      sectors: this.sectors,
      cylinders: this.cylinders,
      heads: this.heads,
      sectorsPerTrack: this.sectorsPerTrack,
      multSectors: this.multSectors,
      maxMultSectors: MAX_MULT_SECTORS,
      writeCache: this.writeCache,
      modes: this.modes,
    });
  }

  /** The starting sector the task file names, or -1 for an impossible CHS address. */
  private startLba(lba48: boolean): number {
    if (this.select & ATA_DEV_LBA) {
      if (lba48) {
        return (
          ((this.hobHcyl << 16) | (this.hobLcyl << 8) | this.hobSector) * 0x100_0000 +
          ((this.hcyl << 16) | (this.lcyl << 8) | this.sector)
        );
      }
      return ((this.select & 0x0f) * 0x100_0000 + ((this.hcyl << 16) | (this.lcyl << 8) | this.sector));
    }
    if (this.sector === 0) return -1;
    const cyl = (this.hcyl << 8) | this.lcyl;
    const head = this.select & 0x0f;
    return (cyl * this.heads + head) * this.sectorsPerTrack + (this.sector - 1);
  }

  private count(lba48: boolean): number {
    if (lba48) return ((this.hobNsector << 8) | this.nsector) || 65536;
    return this.nsector || 256;
  }

  /** Leaves the task file pointing at `lba` (what a drive shows after a transfer/error). */
  private setLba(lba: number, lba48: boolean): void {
    if (this.select & ATA_DEV_LBA) {
      if (lba48) {
        const hi = Math.floor(lba / 0x100_0000);
        this.hobSector = hi & 0xff;
        this.hobLcyl = (hi >> 8) & 0xff;
        this.hobHcyl = (hi >> 16) & 0xff;
      } else {
        this.select = (this.select & 0xf0) | (Math.floor(lba / 0x100_0000) & 0x0f);
      }
      this.sector = lba & 0xff;
      this.lcyl = (lba >>> 8) & 0xff;
      this.hcyl = (lba >>> 16) & 0xff;
    } else {
      const perCyl = this.heads * this.sectorsPerTrack;
      const cyl = Math.floor(lba / perCyl);
      const r = lba % perCyl;
      this.hcyl = (cyl >> 8) & 0xff;
      this.lcyl = cyl & 0xff;
      this.select = (this.select & 0xf0) | (Math.floor(r / this.sectorsPerTrack) & 0x0f);
      this.sector = (r % this.sectorsPerTrack) + 1;
    }
  }

  /** Validates a range; on failure completes the command with IDNF and returns false. */
  private checkRange(lba: number, count: number, lba48: boolean): boolean {
    if (lba < 0 || lba + count > this.sectors) {
      this.status = ATA_DRDY | ATA_ERR;
      this.error = ATA_IDNF;
      this.host!.metrics.errors++;
      this.host!.log.warn('idnf', `sectors ${lba}+${count} past the end (${this.sectors} sectors)`);
      if (lba >= 0) this.setLba(Math.min(lba, Math.max(0, this.sectors - 1)), lba48);
      this.raiseIrq();
      return false;
    }
    return true;
  }

  private ioError(op: string, e: unknown): void {
    this.host!.log.warn('io', `${op}: image I/O error: ${(e as Error).message}`);
    this.abortCommand();
    this.raiseIrq();
  }

  protected override execute(cmd: number): void {
    switch (cmd) {
      case ATA_CMD_ID_ATA:
        this.io.set(this.identifyData());
        this.status = ATA_DRDY | ATA_DSC;
        this.transferStart(512, false, () => this.transferDone());
        this.raiseIrq();
        return;
      case ATA_CMD_READ_PIO:
      case ATA_CMD_READ_PIO_NORETRY:
        return this.pioRead(false, 1);
      case ATA_CMD_READ_PIO_EXT:
        return this.pioRead(true, 1);
      case ATA_CMD_READ_MULTI:
      case ATA_CMD_READ_MULTI_EXT:
        if (!this.multSectors) return this.abortAndRaise();
        return this.pioRead(cmd === ATA_CMD_READ_MULTI_EXT, this.multSectors);
      case ATA_CMD_WRITE_PIO:
      case ATA_CMD_WRITE_PIO_NORETRY:
        return this.pioWrite(false, 1);
      case ATA_CMD_WRITE_PIO_EXT:
        return this.pioWrite(true, 1);
      case ATA_CMD_WRITE_MULTI:
      case ATA_CMD_WRITE_MULTI_EXT:
        if (!this.multSectors) return this.abortAndRaise();
        return this.pioWrite(cmd === ATA_CMD_WRITE_MULTI_EXT, this.multSectors);
      case ATA_CMD_READ_DMA:
      case ATA_CMD_READ_DMA_NORETRY:
        return this.dma(true, false);
      case ATA_CMD_READ_DMA_EXT:
        return this.dma(true, true);
      case ATA_CMD_WRITE_DMA:
      case ATA_CMD_WRITE_DMA_NORETRY:
        return this.dma(false, false);
      case ATA_CMD_WRITE_DMA_EXT:
        return this.dma(false, true);
      case ATA_CMD_VERIFY:
      case ATA_CMD_VERIFY_NORETRY:
      case ATA_CMD_VERIFY_EXT: {
        const lba48 = cmd === ATA_CMD_VERIFY_EXT;
        const lba = this.startLba(lba48);
        const n = this.count(lba48);
        if (!this.checkRange(lba, n, lba48)) return;
        this.setLba(lba + n - 1, lba48);
        return this.completeNoData();
      }
      case ATA_CMD_FLUSH:
      case ATA_CMD_FLUSH_EXT:
        try {
          this.backing.flush();
        } catch (e) {
          return this.ioError('flush', e);
        }
        this.host!.metrics.flushes++;
        return this.completeNoData();
      case ATA_CMD_SET_FEATURES:
        return this.setFeatures();
      case ATA_CMD_SET_MULTI: {
        const n = this.nsector;
        if (n > MAX_MULT_SECTORS || (n & (n - 1)) !== 0) return this.abortAndRaise();
        this.multSectors = n;
        return this.completeNoData();
      }
      case ATA_CMD_EDD:
        this.setSignature();
        this.error = 0x01;
        this.status = ATA_DRDY | ATA_DSC;
        this.raiseIrq();
        return;
      case ATA_CMD_CHK_POWER:
        this.nsector = 0xff; // active or idle
        return this.completeNoData();
      case ATA_CMD_INIT_DEV_PARAMS:
      case ATA_CMD_SEEK:
      case ATA_CMD_STANDBYNOW1:
      case ATA_CMD_IDLEIMMEDIATE:
      case ATA_CMD_STANDBY:
      case ATA_CMD_IDLE:
      case ATA_CMD_SLEEP:
        return this.completeNoData();
      default:
        if (cmd >= 0x10 && cmd <= 0x1f) return this.completeNoData(); // RECALIBRATE
        this.host!.log.warn(`cmd-${cmd}`, `unsupported ATA command 0x${cmd.toString(16)}: aborted`);
        return this.abortAndRaise();
    }
  }

  private abortAndRaise(): void {
    this.abortCommand();
    this.raiseIrq();
  }

  private transferDone(): void {
    this.status = ATA_DRDY | ATA_DSC;
  }

  private setFeatures(): void {
    switch (this.feature) {
      case SETFEATURES_XFER: {
        const v = this.nsector;
        const mode = v & 7;
        if (v >> 3 === 0 || v >> 3 === 1) {
          if (v >> 3 === 1 && mode > 4) return this.abortAndRaise();
          this.modes.pio = v >> 3 === 1 ? mode : 0;
        } else if (v >> 3 === 4 && mode <= 2) {
          this.modes.mwdma = mode;
          this.modes.udma = -1;
        } else if (v >> 3 === 8 && mode <= 5) {
          this.modes.udma = mode;
          this.modes.mwdma = -1;
        } else return this.abortAndRaise();
        return this.completeNoData();
      }
      case SETFEATURES_WC_ON:
        this.writeCache = true;
        return this.completeNoData();
      case SETFEATURES_WC_OFF:
        this.writeCache = false;
        try {
          this.backing.flush();
        } catch (e) {
          return this.ioError('flush', e);
        }
        return this.completeNoData();
      case SETFEATURES_RA_ON:
      case SETFEATURES_RA_OFF:
      case SETFEATURES_REVERT_OFF:
      case SETFEATURES_REVERT_ON:
        return this.completeNoData();
      default:
        return this.abortAndRaise();
    }
  }

  // ---- save / restore --------------------------------------------------------------------

  protected override pioContinuation(): number {
    if (!this.pioBusy) return 0;
    if (this.xfer === null) return PIO_NEXT.IDENTIFY;
    return this.pioIsOut ? PIO_NEXT.WRITE_BLOCK : PIO_NEXT.READ_BLOCK;
  }

  protected override pioResume(next: number, section: string): () => void {
    switch (next) {
      case PIO_NEXT.IDENTIFY:
        return () => this.transferDone();
      case PIO_NEXT.WRITE_BLOCK:
        return () => this.writeBlock();
      case PIO_NEXT.READ_BLOCK:
        // loadReadBlock's continuation, over the restored transfer.
        return () => {
          if (this.xfer!.remaining > 0) this.loadReadBlock();
          else {
            this.xfer = null;
            this.status = ATA_DRDY | ATA_DSC;
          }
        };
      default:
        return super.pioResume(next, section);
    }
  }

  protected override saveKindState(f: FieldWriter): void {
    const x = this.xfer;
    f.bool('xfer', x !== null);
    if (x) f.f64('xferLba', x.lba).u32('xferRemaining', x.remaining).u32('xferBlock', x.block).bool('xferLba48', x.lba48).u32('xferInBuffer', x.inBuffer);
    f.u8('multSectors', this.multSectors).bool('writeCache', this.writeCache);
    f.u8('pio', this.modes.pio).u8('mwdma', this.modes.mwdma & 0xff).u8('udma', this.modes.udma & 0xff);
    f.bool('dma', this.dmaCmd !== null).bool('dmaRead', this.dmaCmd?.read ?? false).bool('dmaLba48', this.dmaCmd?.lba48 ?? false);
  }

  protected override readKindState(r: FieldReader): () => void {
    let x: PioXfer | null = null;
    if (r.bool('xfer')) {
      const lba = r.f64('xferLba');
      const remaining = r.u32('xferRemaining', 65536);
      const block = r.u32('xferBlock', MAX_MULT_SECTORS, 1);
      const lba48 = r.bool('xferLba48');
      const inBuffer = r.u32('xferInBuffer', block);
      if (!Number.isInteger(lba) || lba < 0 || lba + remaining > this.sectors) throw new DeviceStateError(`${r.section}: transfer at sector ${lba}+${remaining} is outside the disk's ${this.sectors} sectors`);
      x = { lba, remaining, block, lba48, inBuffer };
    }
    const multSectors = r.u8('multSectors', MAX_MULT_SECTORS);
    const writeCache = r.bool('writeCache');
    const pio = r.u8('pio', 4);
    const mwdma = r.u8('mwdma');
    const udma = r.u8('udma');
    const dma = r.bool('dma');
    const dmaCmd = dma ? { read: r.bool('dmaRead'), lba48: r.bool('dmaLba48') } : (r.bool('dmaRead'), r.bool('dmaLba48'), null);
    if (dmaCmd && !dmaCmd.read && this.backing.readOnly) throw new DeviceStateError(`${r.section}: a DMA write is in flight to a read-only disk`);
    return () => {
      this.xfer = x;
      this.multSectors = multSectors;
      this.writeCache = writeCache;
      this.modes.pio = pio;
      this.modes.mwdma = mwdma === 0xff ? -1 : mwdma;
      this.modes.udma = udma === 0xff ? -1 : udma;
      this.dmaCmd = null;
      // The command is issued again from the restored task file, as QEMU re-issues in-flight
      // requests: the data phase waits for the bus-master engine once more.
      if (dmaCmd) this.dma(dmaCmd.read, dmaCmd.lba48);
    };
  }

  // ---- PIO -------------------------------------------------------------------------------

  private pioRead(lba48: boolean, block: number): void {
    const lba = this.startLba(lba48);
    const n = this.count(lba48);
    if (lba < 0) return this.idnf(lba48);
    if (!this.checkRange(lba, n, lba48)) return;
    this.xfer = { lba, remaining: n, block, lba48, inBuffer: 0 };
    this.loadReadBlock();
  }

  private idnf(lba48: boolean): void {
    void lba48;
    this.status = ATA_DRDY | ATA_ERR;
    this.error = ATA_IDNF;
    this.host!.metrics.errors++;
    this.raiseIrq();
  }

  private loadReadBlock(): void {
    const x = this.xfer!;
    const n = Math.min(x.remaining, x.block);
    try {
      this.backing.readAt(x.lba * ATA_SECTOR_SIZE, this.io, 0, n * ATA_SECTOR_SIZE);
    } catch (e) {
      this.setLba(x.lba, x.lba48);
      this.xfer = null;
      return this.ioError('read', e);
    }
    x.lba += n;
    x.remaining -= n;
    this.host!.metrics.sectorsRead += n;
    this.setLba(x.lba - 1, x.lba48);
    this.status = ATA_DRDY | ATA_DSC;
    this.transferStart(n * ATA_SECTOR_SIZE, false, () => {
      if (x.remaining > 0) this.loadReadBlock();
      else {
        this.xfer = null;
        this.status = ATA_DRDY | ATA_DSC;
      }
    });
    this.raiseIrq();
  }

  private pioWrite(lba48: boolean, block: number): void {
    if (this.backing.readOnly) {
      this.host!.log.warn('ro', 'write to a read-only disk: aborted');
      return this.abortAndRaise();
    }
    const lba = this.startLba(lba48);
    const n = this.count(lba48);
    if (lba < 0) return this.idnf(lba48);
    if (!this.checkRange(lba, n, lba48)) return;
    const x: PioXfer = { lba, remaining: n, block, lba48, inBuffer: Math.min(n, block) };
    this.xfer = x;
    this.status = ATA_DRDY | ATA_DSC;
    // The first block is requested without an interrupt (PIO data-out protocol).
    this.transferStart(x.inBuffer * ATA_SECTOR_SIZE, true, () => this.writeBlock());
  }

  private writeBlock(): void {
    const x = this.xfer!;
    const n = x.inBuffer;
    try {
      this.backing.writeAt(x.lba * ATA_SECTOR_SIZE, this.io, 0, n * ATA_SECTOR_SIZE);
    } catch (e) {
      this.setLba(x.lba, x.lba48);
      this.xfer = null;
      return this.ioError('write', e);
    }
    x.lba += n;
    x.remaining -= n;
    this.host!.metrics.sectorsWritten += n;
    this.setLba(x.lba - 1, x.lba48);
    this.status = ATA_DRDY | ATA_DSC;
    if (x.remaining > 0) {
      x.inBuffer = Math.min(x.remaining, x.block);
      this.transferStart(x.inBuffer * ATA_SECTOR_SIZE, true, () => this.writeBlock());
    } else {
      this.xfer = null;
    }
    this.raiseIrq();
  }

  // ---- DMA -------------------------------------------------------------------------------

  private dma(read: boolean, lba48: boolean): void {
    if (!read && this.backing.readOnly) {
      this.host!.log.warn('ro', 'DMA write to a read-only disk: aborted');
      return this.abortAndRaise();
    }
    const lba = this.startLba(lba48);
    const n = this.count(lba48);
    if (lba < 0) return this.idnf(lba48);
    if (!this.checkRange(lba, n, lba48)) return;
    const pos0 = lba * ATA_SECTOR_SIZE;
    const backing = this.backing;
    // Data phase: the drive asserts DMARQ and waits for the bus-master engine.
    this.status = ATA_DRDY | ATA_DSC | ATA_DRQ;
    this.dmaCmd = { read, lba48 };
    this.host!.requestDma(this, {
      length: n * ATA_SECTOR_SIZE,
      toMemory: read,
      read: (pos, dst, len) => backing.readAt(pos0 + pos, dst, 0, len),
      write: (pos, src, len) => backing.writeAt(pos0 + pos, src, 0, len),
      done: (ok) => {
        this.dmaCmd = null;
        if (ok) {
          if (read) this.host!.metrics.sectorsRead += n;
          else this.host!.metrics.sectorsWritten += n;
          this.setLba(lba + n - 1, lba48);
          this.status = ATA_DRDY | ATA_DSC;
        } else {
          this.abortCommand();
        }
        this.raiseIrq();
      },
    });
  }
}
