// An ATAPI CD-ROM drive (MMC subset) on an ISO image, or empty.
//
// PACKET protocol (PIO): the host writes the byte-count limit to LBA mid/high and issues
// PACKET (0xA0, features bit 0 = DMA); the drive answers DRQ with interrupt reason CoD and
// takes 12 command bytes through the data port (no interrupt: IDENTIFY word 0 says "50 us
// DRQ"). Data-in then comes in DRQ blocks of at most the byte-count limit: for each, the drive
// puts the block length in LBA mid/high, interrupt reason IO, DRQ, and interrupts. After the
// last block (or at once for commands without data) it completes with reason IO|CoD, DRDY and
// an interrupt. With the DMA bit, data moves through the bus-master engine instead.
// Errors: CHECK CONDITION = status ERR, error register = sense key << 4, reason IO|CoD; the
// sense data is returned by the next REQUEST SENSE.
//
// Packet commands: TEST UNIT READY, REQUEST SENSE, INQUIRY, MODE SENSE (6)/(10) for pages 01h,
// 2Ah and 3Fh, START STOP UNIT (eject / load), PREVENT ALLOW MEDIUM REMOVAL, READ CAPACITY,
// READ (10)/(12), SEEK (10), READ TOC (formats 0 and 1), GET EVENT STATUS NOTIFICATION (polled,
// media class). Others: ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE, which Linux's sr
// driver handles (it falls back from GET CONFIGURATION).
//
// Media change (xl cd-insert / cd-eject, changeMedium) as a real drive reports it: the next
// packet command other than INQUIRY, REQUEST SENSE and GET EVENT STATUS NOTIFICATION ends in
// UNIT ATTENTION, MEDIUM MAY HAVE CHANGED (06/28/00); a drive without a disc answers NOT READY,
// MEDIUM NOT PRESENT (02/3A/00); GESN reports NEW MEDIA once after an insertion (QEMU's
// event_status_media), and the media status (tray open after an eject, media present).
// START STOP UNIT with LoEj ejects (refused with 02/53/02 while PREVENT MEDIUM REMOVAL holds)
// or closes the tray; the host's eject is not refused by the guest's lock (libxl forces it).
// ATA commands: IDENTIFY PACKET DEVICE, PACKET, DEVICE RESET, EXECUTE DEVICE DIAGNOSTIC,
// SET FEATURES, power commands. IDENTIFY DEVICE and the READ SECTORS family abort and leave
// the ATAPI signature in the task file, as ATA-4 requires, which is how hosts find the drive.
import {
  ASC_INV_COMMAND_OPERATION_CODE,
  ASC_INV_FIELD_IN_CMD_PACKET,
  ASC_LOGICAL_BLOCK_OOR,
  ASC_MEDIUM_MAY_HAVE_CHANGED,
  ASC_MEDIUM_NOT_PRESENT,
  ASC_SAVING_PARAMETERS_NOT_SUPPORTED,
  ASC_UNRECOVERED_READ_ERROR,
  ATA_CMD_CHK_POWER,
  ATA_CMD_DEVICE_RESET,
  ATA_CMD_EDD,
  ATA_CMD_ID_ATA,
  ATA_CMD_ID_ATAPI,
  ATA_CMD_IDLE,
  ATA_CMD_IDLEIMMEDIATE,
  ATA_CMD_PACKET,
  ATA_CMD_READ_MULTI,
  ATA_CMD_READ_PIO,
  ATA_CMD_READ_PIO_EXT,
  ATA_CMD_READ_PIO_NORETRY,
  ATA_CMD_SET_FEATURES,
  ATA_CMD_SLEEP,
  ATA_CMD_STANDBY,
  ATA_CMD_STANDBYNOW1,
  ATA_DRDY,
  ATA_DRQ,
  ATA_DSC,
  ATA_ERR,
  ATAPI_INT_REASON_COD,
  ATAPI_INT_REASON_IO,
  CD_SECTOR_SIZE,
  GPCMD_GET_EVENT_STATUS_NOTIFICATION,
  GPCMD_INQUIRY,
  GESN_MEDIA,
  MEC_NEW_MEDIA,
  MEC_NO_CHANGE,
  MS_MEDIA_PRESENT,
  MS_TRAY_OPEN,
  ASC_MEDIA_REMOVAL_PREVENTED,
  GPCMD_MODE_SENSE_10,
  GPCMD_MODE_SENSE_6,
  GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL,
  GPCMD_READ_10,
  GPCMD_READ_12,
  GPCMD_READ_CAPACITY,
  GPCMD_READ_TOC_PMA_ATIP,
  GPCMD_REQUEST_SENSE,
  GPCMD_SEEK,
  GPCMD_START_STOP_UNIT,
  GPCMD_TEST_UNIT_READY,
  SENSE_ILLEGAL_REQUEST,
  SENSE_MEDIUM_ERROR,
  SENSE_NONE,
  SENSE_NOT_READY,
  SENSE_UNIT_ATTENTION,
} from './ata-constants.js';
import type { BlockBacking } from './block-backing.js';
import { atapiIdentify, type XferModes } from './identify.js';
import { IDE_IO_BUFFER, IdeDrive } from './ide-drive.js';

/** Produces data-in bytes [pos, pos+len) into dst[0..len). May throw (image I/O error). */
type Source = (pos: number, dst: Uint8Array, len: number) => void;

export interface AtapiCdromOptions {
  serial?: string;
  model?: string;
  firmware?: string;
}

function be16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function putBe32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** LBA -> MSF address (the 150-sector lead-in offset). */
function lbaToMsf(b: Uint8Array, o: number, lba: number): void {
  const l = lba + 150;
  b[o] = 0;
  b[o + 1] = Math.floor(l / (75 * 60));
  b[o + 2] = Math.floor(l / 75) % 60;
  b[o + 3] = l % 75;
}

export class AtapiCdrom extends IdeDrive {
  readonly kind = 'atapi' as const;
  backing: BlockBacking | null;
  readonly modes: XferModes = { pio: 4, mwdma: 2, udma: -1 };
  senseKey = SENSE_NONE;
  asc = 0;
  ascq = 0;
  private unitAttention = false;
  /** GESN: an insertion not yet reported. */
  private newMedia = false;
  /** The tray is open (ejected, no disc). */
  private trayOpen = false;
  /** PREVENT MEDIUM REMOVAL from the guest. */
  private locked = false;
  private dmaPacket = false;
  private byteLimit = 0;
  private readonly ident: Required<AtapiCdromOptions>;
  private readonly cdb = new Uint8Array(12);
  private xfer: { src: Source; total: number; pos: number } | null = null;

  constructor(backing: BlockBacking | null, opts: AtapiCdromOptions = {}) {
    super();
    this.backing = backing;
    this.ident = { serial: opts.serial ?? 'XN00000002', model: opts.model ?? 'XENODE DVD-ROM', firmware: opts.firmware ?? '0.1' };
    this.reset();
  }

  /** 2048-byte sectors on the medium (0 when empty). */
  get sectors(): number {
    return this.backing ? Math.floor(this.backing.size / CD_SECTOR_SIZE) : 0;
  }

  override setSignature(): void {
    this.setSignatureRegs(0x14, 0xeb);
  }

  protected override resetStatus(): number {
    return 0;
  }

  override close(): void {
    this.backing?.close();
    this.backing = null;
  }

  /** Inserts (or with null, ejects) a medium; the next packet command sees UNIT ATTENTION. */
  changeMedium(backing: BlockBacking | null): void {
    this.backing?.close();
    this.backing = backing;
    this.unitAttention = true;
    this.newMedia = backing !== null;
    this.trayOpen = backing === null;
    if (backing === null) this.locked = false;
  }

  identifyData(): Uint8Array {
    return atapiIdentify({ ...this.ident, modes: this.modes });
  }

  protected override execute(cmd: number): void {
    switch (cmd) {
      case ATA_CMD_ID_ATAPI:
        this.io.set(this.identifyData());
        this.status = ATA_DRDY | ATA_DSC;
        this.transferStart(512, false, () => {
          this.status = ATA_DRDY | ATA_DSC;
        });
        this.raiseIrq();
        return;
      case ATA_CMD_PACKET:
        this.dmaPacket = (this.feature & 1) !== 0;
        this.byteLimit = this.lcyl | (this.hcyl << 8);
        this.status = ATA_DRDY | ATA_DSC;
        this.nsector = (this.nsector & ~7) | ATAPI_INT_REASON_COD;
        this.transferStart(12, true, () => this.packetReceived());
        return;
      case ATA_CMD_DEVICE_RESET:
        this.reset();
        return;
      case ATA_CMD_EDD:
        this.setSignature();
        this.error = 0x01;
        this.status = 0;
        this.raiseIrq();
        return;
      case ATA_CMD_ID_ATA:
      case ATA_CMD_READ_PIO:
      case ATA_CMD_READ_PIO_NORETRY:
      case ATA_CMD_READ_PIO_EXT:
      case ATA_CMD_READ_MULTI:
        this.setSignature();
        this.abortCommand();
        this.raiseIrq();
        return;
      case ATA_CMD_SET_FEATURES:
        if (this.feature === 0x03) {
          const v = this.nsector;
          if (v >> 3 === 4 && (v & 7) <= 2) {
            this.modes.mwdma = v & 7;
            this.modes.udma = -1;
          } else if (v >> 3 === 8 && (v & 7) <= 5) {
            this.modes.udma = v & 7;
            this.modes.mwdma = -1;
          } else if (v >> 3 === 1 && (v & 7) <= 4) this.modes.pio = v & 7;
          else if (v >> 3 !== 0) {
            this.abortCommand();
            this.raiseIrq();
            return;
          }
        }
        this.completeNoData();
        return;
      case ATA_CMD_CHK_POWER:
        this.nsector = 0xff;
        this.completeNoData();
        return;
      case ATA_CMD_STANDBYNOW1:
      case ATA_CMD_IDLEIMMEDIATE:
      case ATA_CMD_STANDBY:
      case ATA_CMD_IDLE:
      case ATA_CMD_SLEEP:
        this.completeNoData();
        return;
      default:
        this.host!.log.warn(`atapi-cmd-${cmd}`, `ATA command 0x${cmd.toString(16)} to ATAPI device: aborted`);
        this.abortCommand();
        this.raiseIrq();
    }
  }

  // ---- packet phase ----------------------------------------------------------------------

  private packetReceived(): void {
    this.cdb.set(this.io.subarray(0, 12));
    const op = this.cdb[0]!;
    if (op !== GPCMD_REQUEST_SENSE) this.setSense(SENSE_NONE, 0);
    // A changed medium is reported once, to the first command that is not exempt.
    if (this.unitAttention && op !== GPCMD_INQUIRY && op !== GPCMD_REQUEST_SENSE && op !== GPCMD_GET_EVENT_STATUS_NOTIFICATION) {
      this.unitAttention = false;
      return this.checkCondition(SENSE_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
    }
    try {
      this.runPacket(op);
    } catch (e) {
      this.host!.log.warn('cd-io', `image I/O error: ${(e as Error).message}`);
      this.checkCondition(SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERROR);
    }
  }

  private runPacket(op: number): void {
    const c = this.cdb;
    switch (op) {
      case GPCMD_TEST_UNIT_READY:
        if (!this.backing) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
        return this.commandOk();
      case GPCMD_REQUEST_SENSE: {
        const buf = new Uint8Array(18);
        buf[0] = 0x70;
        buf[2] = this.senseKey;
        buf[7] = 10;
        buf[12] = this.asc;
        buf[13] = this.ascq;
        this.setSense(SENSE_NONE, 0);
        return this.dataIn(buf, Math.min(18, c[4]!));
      }
      case GPCMD_INQUIRY: {
        if (c[1]! & 1) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
        const buf = new Uint8Array(36);
        buf[0] = 0x05; // CD/DVD device
        buf[1] = 0x80; // removable
        buf[2] = 0x00; // ATAPI: no ANSI version
        buf[3] = 0x21; // ATAPI transport, response format 1
        buf[4] = 31;
        const text = 'XENODE  ' + this.ident.model.padEnd(16).slice(0, 16) + this.ident.firmware.padEnd(4).slice(0, 4);
        for (let i = 0; i < 28; i++) buf[8 + i] = text.charCodeAt(i);
        return this.dataIn(buf, Math.min(36, be16(c, 3)));
      }
      case GPCMD_MODE_SENSE_6:
      case GPCMD_MODE_SENSE_10:
        return this.modeSense(op === GPCMD_MODE_SENSE_10);
      case GPCMD_START_STOP_UNIT: {
        const loej = (c[4]! & 2) !== 0;
        const start = (c[4]! & 1) !== 0;
        if (!loej) return this.commandOk();
        if (start) {
          // Load: close the tray (a real drive would pull in the disc still on it; an ejected
          // disc here is gone, so the drive stays empty).
          this.trayOpen = false;
          return this.commandOk();
        }
        if (this.locked) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIA_REMOVAL_PREVENTED, 0x02);
        if (this.backing) this.host!.log.info('guest ejected the disc');
        this.backing?.close();
        this.backing = null;
        this.trayOpen = true;
        this.newMedia = false;
        return this.commandOk();
      }
      case GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL:
        this.locked = (c[4]! & 1) !== 0;
        return this.commandOk();
      case GPCMD_GET_EVENT_STATUS_NOTIFICATION:
        return this.eventStatus();
      case GPCMD_READ_CAPACITY: {
        if (!this.backing) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
        const buf = new Uint8Array(8);
        putBe32(buf, 0, Math.max(0, this.sectors - 1));
        putBe32(buf, 4, CD_SECTOR_SIZE);
        return this.dataIn(buf, 8);
      }
      case GPCMD_READ_10:
      case GPCMD_READ_12: {
        if (!this.backing) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
        const lba = be32(c, 2);
        const n = op === GPCMD_READ_10 ? be16(c, 7) : be32(c, 6);
        if (n === 0) return this.commandOk();
        if (lba + n > this.sectors) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
        const backing = this.backing;
        const base = lba * CD_SECTOR_SIZE;
        this.host!.metrics.sectorsRead += n;
        return this.startDataIn((pos, dst, len) => backing.readAt(base + pos, dst, 0, len), n * CD_SECTOR_SIZE);
      }
      case GPCMD_SEEK:
        if (!this.backing) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
        if (be32(c, 2) >= this.sectors) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
        return this.commandOk();
      case GPCMD_READ_TOC_PMA_ATIP:
        return this.readToc();
      default:
        this.host!.log.warn(`packet-${op}`, `unsupported packet command 0x${op.toString(16)}`);
        return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_COMMAND_OPERATION_CODE);
    }
  }

  private modeSense(ten: boolean): void {
    const c = this.cdb;
    const pc = c[2]! >> 6;
    const page = c[2]! & 0x3f;
    const alloc = ten ? be16(c, 7) : c[4]!;
    if (pc === 3) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);
    const pages: number[][] = [];
    const errorRecovery = [0x01, 0x06, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00];
    // CD capabilities and mechanical status: reads CD-R/RW media, DVD-ROM, tray, eject,
    // locking, 706 KB/s; values changeable: none (pc 1 answers zeros).
    const caps = [0x2a, 0x12, 0x3b, 0x00, 0x71, 0x00, 0x29, 0x23, 0x02, 0xc2, 0x00, 0x02, 0x02, 0x00, 0x02, 0xc2, 0x00, 0x00, 0x00, 0x00];
    if (page === 0x01 || page === 0x3f) pages.push(errorRecovery);
    if (page === 0x2a || page === 0x3f) pages.push(caps);
    if (pages.length === 0) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
    const hdr = ten ? 8 : 4;
    const body = pages.flatMap((p) => (pc === 1 ? [p[0]!, p[1]!, ...new Array<number>(p.length - 2).fill(0)] : p));
    const buf = new Uint8Array(hdr + body.length);
    const len = buf.length - (ten ? 2 : 1);
    if (ten) {
      buf[0] = len >> 8;
      buf[1] = len & 0xff;
      buf[2] = this.backing ? 0x01 : 0x70; // medium type: 120 mm data / door closed, no disc
    } else {
      buf[0] = len;
      buf[1] = this.backing ? 0x01 : 0x70;
    }
    buf.set(body, hdr);
    this.dataIn(buf, Math.min(buf.length, alloc));
  }

  /** GET EVENT STATUS NOTIFICATION, polled only (QEMU's cmd_get_event_status_notification):
   * the media class is the one supported; its descriptor says what changed and what is in. */
  private eventStatus(): void {
    const c = this.cdb;
    if (!(c[1]! & 1)) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
    const alloc = be16(c, 7);
    const buf = new Uint8Array(8);
    buf[3] = 1 << GESN_MEDIA;
    let len = 4;
    if (c[4]! & (1 << GESN_MEDIA)) {
      buf[2] = GESN_MEDIA;
      const status = this.trayOpen ? MS_TRAY_OPEN : this.backing ? MS_MEDIA_PRESENT : 0;
      let code = MEC_NO_CHANGE;
      if (!this.trayOpen && this.newMedia) {
        code = MEC_NEW_MEDIA;
        this.newMedia = false;
      }
      buf[4] = code;
      buf[5] = status;
      len = 8;
    } else buf[2] = 0x80; // no event available
    buf[1] = len - 4;
    this.dataIn(buf, Math.min(len, alloc));
  }

  private readToc(): void {
    const c = this.cdb;
    if (!this.backing) return this.checkCondition(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
    const msf = (c[1]! & 2) !== 0;
    let format = c[2]! & 0x0f;
    if (format === 0) format = c[9]! >> 6; // SFF-8020 placed it in the control byte
    const start = c[6]!;
    const alloc = be16(c, 7);
    const addr = (b: Uint8Array, o: number, lba: number) => (msf ? lbaToMsf(b, o, lba) : putBe32(b, o, lba));
    if (format === 0) {
      if (start > 1 && start !== 0xaa) return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
      const buf = new Uint8Array(4 + 8 * 2);
      let o = 4;
      if (start <= 1) {
        buf[o + 1] = 0x14; // ADR 1, data track
        buf[o + 2] = 1;
        addr(buf, o + 4, 0);
        o += 8;
      }
      buf[o + 1] = 0x16;
      buf[o + 2] = 0xaa; // lead-out
      addr(buf, o + 4, this.sectors);
      o += 8;
      buf[0] = (o - 2) >> 8;
      buf[1] = (o - 2) & 0xff;
      buf[2] = 1;
      buf[3] = 1;
      return this.dataIn(buf.subarray(0, o), Math.min(o, alloc));
    }
    if (format === 1) {
      const buf = new Uint8Array(12);
      buf[1] = 10;
      buf[2] = 1;
      buf[3] = 1;
      buf[5] = 0x14;
      buf[6] = 1;
      addr(buf, 8, 0);
      return this.dataIn(buf, Math.min(12, alloc));
    }
    return this.checkCondition(SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
  }

  // ---- responses -------------------------------------------------------------------------

  private setSense(key: number, asc: number, ascq = 0): void {
    this.senseKey = key;
    this.asc = asc;
    this.ascq = ascq;
  }

  private commandOk(): void {
    this.xfer = null;
    this.status = ATA_DRDY | ATA_DSC;
    this.error = 0;
    this.nsector = (this.nsector & ~7) | ATAPI_INT_REASON_IO | ATAPI_INT_REASON_COD;
    this.raiseIrq();
  }

  private checkCondition(key: number, asc: number, ascq = 0): void {
    this.setSense(key, asc, ascq);
    this.xfer = null;
    this.status = ATA_DRDY | ATA_ERR;
    this.error = key << 4;
    this.nsector = (this.nsector & ~7) | ATAPI_INT_REASON_IO | ATAPI_INT_REASON_COD;
    this.host!.metrics.errors++;
    this.raiseIrq();
  }

  private dataIn(buf: Uint8Array, len: number): void {
    if (len <= 0) return this.commandOk();
    this.startDataIn((pos, dst, n) => dst.set(buf.subarray(pos, pos + n)), len);
  }

  private startDataIn(src: Source, total: number): void {
    if (this.dmaPacket) {
      this.status = ATA_DRDY | ATA_DSC | ATA_DRQ;
      this.host!.requestDma(this, {
        length: total,
        toMemory: true,
        read: src,
        done: (ok, fault) => {
          if (ok) return this.commandOk();
          if (fault === 'device') return this.checkCondition(SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERROR);
          // Bus-master refusal: the command fails without meaningful sense (a host bus error).
          this.status = ATA_DRDY | ATA_ERR;
          this.error = 0x04;
          this.nsector = (this.nsector & ~7) | ATAPI_INT_REASON_IO | ATAPI_INT_REASON_COD;
          this.host!.metrics.errors++;
          this.raiseIrq();
        },
      });
      return;
    }
    this.xfer = { src, total, pos: 0 };
    this.nextPioBlock();
  }

  /** Size of the next DRQ block: the byte-count limit (even, 0 treated as 0xFFFE). */
  private blockSize(remaining: number): number {
    let limit = this.byteLimit;
    if (limit === 0 || limit === 0xffff) limit = 0xfffe;
    if (remaining <= limit) return remaining;
    return Math.min(limit & ~1, IDE_IO_BUFFER - 2) || 2;
  }

  private nextPioBlock(): void {
    const x = this.xfer!;
    const remaining = x.total - x.pos;
    if (remaining <= 0) return this.commandOk();
    const n = this.blockSize(remaining);
    try {
      x.src(x.pos, this.io, n);
    } catch (e) {
      this.host!.log.warn('cd-io', `image I/O error: ${(e as Error).message}`);
      return this.checkCondition(SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERROR);
    }
    x.pos += n;
    this.lcyl = n & 0xff;
    this.hcyl = (n >> 8) & 0xff;
    this.nsector = (this.nsector & ~7) | ATAPI_INT_REASON_IO;
    this.status = ATA_DRDY | ATA_DSC;
    this.transferStart(n, false, () => this.nextPioBlock());
    this.raiseIrq();
  }
}
