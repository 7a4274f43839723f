// One channel of the PIIX3 bus-master IDE engine (SFF-8038i), 8 bytes in the controller's
// BAR4 (primary at +0, secondary at +8):
//   +0 command (byte): bit 0 start/stop, bit 3 direction (1 = bus master WRITES memory, i.e.
//      a device read); other bits read 0.
//   +2 status (byte): bit 0 active (RO), bit 1 error (R/WC), bit 2 interrupt (R/WC),
//      bits 5/6 drive 0/1 DMA capable (R/W), bit 7 simplex (RO, 0).
//   +4 PRD table address (dword, bits 1:0 read 0).
// A PRD entry is 8 bytes: u32 physical address, u16 byte count (bit 0 ignored, 0 = 64 KiB),
// u16 with bit 15 = end of table. The engine walks the table while the device transfers; the
// transfer itself is synchronous (it happens inside the exit that set START, or the one that
// issued the command when START was already set).
//
// Refusals, as the chip would signal them:
//  - PRD table or buffer not in guest RAM, or PCI bus mastering disabled: master abort ->
//    status.error, active cleared, PCI status "received master abort"; the command fails.
//  - PRD table shorter than the transfer (EOT before the byte count is met): status.error,
//    command fails.
//  - No EOT: a table cannot cross a 64 KiB boundary, so at most 8192 entries are read; a
//    table that runs (or "loops") past that is a failed transfer, never an endless walk.
//  - Direction bit contrary to the command: failed transfer (no data moved).
import { DeviceStateError, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import type { GuestMemory } from '../../device-model/guest-memory.js';
import type { LimitedLog } from '../../device-model/log.js';

export const BM_CMD_START = 0x01;
export const BM_CMD_WRITE = 0x08; // bus master writes to memory (device -> memory)
export const BM_STATUS_ACTIVE = 0x01;
export const BM_STATUS_ERROR = 0x02;
export const BM_STATUS_INT = 0x04;
export const BM_STATUS_DRV0_DMA = 0x20;
export const BM_STATUS_DRV1_DMA = 0x40;

export const PRD_MAX_ENTRIES = 8192;
const PRD_EOT = 0x8000_0000;
const CHUNK = 65536;

/** What a device moves by DMA. */
export interface DmaStream {
  /** Bytes the command transfers. */
  readonly length: number;
  /** true for device -> memory (READ DMA, ATAPI data-in). */
  readonly toMemory: boolean;
  /** Produce stream bytes [pos, pos+len) into dst[0..len). May throw (device I/O error). */
  read?(pos: number, dst: Uint8Array, len: number): void;
  /** Consume stream bytes [pos, pos+len) from src[0..len). May throw. */
  write?(pos: number, src: Uint8Array, len: number): void;
  /** End of transfer. `fault` tells why it failed: 'bus' (the engine refused) or 'device'. */
  done(ok: boolean, fault?: 'bus' | 'device'): void;
}

/** What the engine needs from the PCI function that owns it. */
export interface BusMasterOwner {
  busMasterEnabled(): boolean;
  signalMasterAbort(): void;
}

export interface BusMasterMetrics {
  dmaTransfers: number;
  dmaBytes: number;
  dmaErrors: number;
  prdEntries: number;
}

export class BusMasterChannel {
  cmd = 0;
  status = 0;
  prdAddr = 0;
  private pending: DmaStream | null = null;
  private readonly tmp = new Uint8Array(CHUNK);

  constructor(
    private readonly memory: GuestMemory,
    private readonly owner: BusMasterOwner,
    private readonly metrics: BusMasterMetrics,
    private readonly log: LimitedLog,
    readonly name: string,
  ) {}

  reset(): void {
    this.cmd = 0;
    this.status &= BM_STATUS_DRV0_DMA | BM_STATUS_DRV1_DMA;
    this.prdAddr = 0;
    this.pending = null;
  }

  private byteAt(off: number): number {
    switch (off) {
      case 0:
        return this.cmd;
      case 2:
        return this.status;
      case 4:
      case 5:
      case 6:
      case 7:
        return (this.prdAddr >>> (8 * (off - 4))) & 0xff;
      default:
        return 0;
    }
  }

  /** Register read within this channel's 8 bytes (no side effects). */
  read(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.byteAt((offset + i) & 7) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    let prd = this.prdAddr;
    let prdTouched = false;
    for (let i = 0; i < size; i++) {
      const off = (offset + i) & 7;
      const b = (value >>> (8 * i)) & 0xff;
      if (off === 0) this.writeCommand(b);
      else if (off === 2) this.status = (b & 0x60) | (this.status & BM_STATUS_ACTIVE) | (this.status & ~b & (BM_STATUS_ERROR | BM_STATUS_INT));
      else if (off >= 4) {
        const sh = 8 * (off - 4);
        prd = ((prd & ~(0xff << sh)) | (b << sh)) >>> 0;
        prdTouched = true;
      }
    }
    if (prdTouched) this.prdAddr = (prd & ~3) >>> 0;
  }

  private writeCommand(b: number): void {
    const was = this.cmd & BM_CMD_START;
    this.cmd = b & (BM_CMD_START | BM_CMD_WRITE);
    if (!was && this.cmd & BM_CMD_START) {
      this.status |= BM_STATUS_ACTIVE;
      if (this.pending) this.run();
    } else if (was && !(this.cmd & BM_CMD_START)) {
      // Stop: a transfer that has not started is abandoned; the device keeps waiting.
      this.status &= ~BM_STATUS_ACTIVE;
    }
  }

  /** Registers, and whether a device's transfer waits for START (the device re-issues it). */
  saveState(f: FieldWriter): void {
    f.u8('bmCmd', this.cmd).u8('bmStatus', this.status).u32('bmPrd', this.prdAddr).bool('bmPending', this.pending !== null);
  }

  readState(r: FieldReader): { apply: () => void; pending: boolean } {
    const cmd = r.u8('bmCmd', BM_CMD_START | BM_CMD_WRITE);
    const status = r.u8('bmStatus');
    const prd = r.u32('bmPrd');
    if (prd & 3) throw new DeviceStateError(`${r.section}: PRD table address 0x${prd.toString(16)} is not 4-byte aligned`);
    const pending = r.bool('bmPending');
    return {
      pending,
      apply: () => {
        this.cmd = cmd;
        this.status = status;
        this.prdAddr = prd;
        this.pending = null;
      },
    };
  }

  hasPending(): boolean {
    return this.pending !== null;
  }

  /** Called when the device sets its interrupt (the PIIX latches it in status bit 2). */
  noteInterrupt(): void {
    this.status |= BM_STATUS_INT;
  }

  /** A device is ready to transfer: runs now if the engine is started, else when it is. */
  request(stream: DmaStream): void {
    this.pending = stream;
    if (this.cmd & BM_CMD_START) this.run();
  }

  /** Drops a transfer the device no longer wants (reset). */
  cancel(): void {
    this.pending = null;
  }

  private fail(s: DmaStream, why: string, masterAbort: boolean): void {
    this.status = (this.status & ~BM_STATUS_ACTIVE) | BM_STATUS_ERROR;
    if (masterAbort) this.owner.signalMasterAbort();
    this.metrics.dmaErrors++;
    this.log.warn(`bm-${why.split(' ')[0]}`, `${this.name}: DMA refused: ${why}`);
    s.done(false, 'bus');
  }

  private run(): void {
    const s = this.pending;
    if (!s) return;
    this.pending = null;
    if (((this.cmd & BM_CMD_WRITE) !== 0) !== s.toMemory) return this.fail(s, 'direction bit contradicts the command', false);
    if (!this.owner.busMasterEnabled()) return this.fail(s, 'bus mastering disabled in PCI command', true);
    let table = this.prdAddr;
    let moved = 0;
    let entries = 0;
    let exhausted = false;
    while (moved < s.length) {
      if (entries >= PRD_MAX_ENTRIES) return this.fail(s, `no end-of-table within ${PRD_MAX_ENTRIES} PRD entries`, false);
      const base0 = this.memory.readU32(table);
      const ctl = this.memory.readU32(table + 4);
      if (base0 === undefined || ctl === undefined) return this.fail(s, `PRD table at 0x${table.toString(16)} is not guest RAM`, true);
      entries++;
      this.metrics.prdEntries++;
      table += 8;
      const cnt = ctl & 0xfffe || 0x10000; // bit 0 of the count is reserved
      const base = (base0 & ~1) >>> 0; // so is bit 0 of the address
      const eot = (ctl & PRD_EOT) !== 0;
      const n = Math.min(cnt, s.length - moved);
      if (!this.memory.isRam(base, n)) return this.fail(s, `PRD buffer 0x${base.toString(16)}+${n} is not guest RAM`, true);
      for (let done = 0; done < n; ) {
        const k = Math.min(CHUNK, n - done);
        try {
          if (s.toMemory) {
            s.read!(moved + done, this.tmp, k);
            this.memory.write(base + done, this.tmp, 0, k);
          } else {
            this.memory.read(base + done, this.tmp, 0, k);
            s.write!(moved + done, this.tmp, k);
          }
        } catch (e) {
          this.status &= ~BM_STATUS_ACTIVE;
          this.metrics.dmaErrors++;
          this.log.warn('bm-device', `${this.name}: device error during DMA: ${(e as Error).message}`);
          s.done(false, 'device');
          return;
        }
        done += k;
      }
      moved += n;
      if (moved === s.length) {
        exhausted = eot && n === cnt;
        break;
      }
      if (eot) return this.fail(s, `PRD table ends after ${moved} of ${s.length} bytes`, false);
    }
    if (exhausted) this.status &= ~BM_STATUS_ACTIVE;
    this.metrics.dmaTransfers++;
    this.metrics.dmaBytes += moved;
    s.done(true);
  }
}
