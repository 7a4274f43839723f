// ata_piix: the PIIX3 IDE controller (8086:7010) in legacy mode, with SFF-8038i bus-master DMA,
// ATA disks and ATAPI CD-ROMs, as Linux's libata drives it (ata_piix.c, libata-sff.c).
//
// Channels: primary 0x1F0-0x1F7 + 0x3F6, IRQ 14; secondary 0x170 + 0x376, IRQ 15 (prog-if
// 0x80: compatibility mode); bus-master registers in BAR4 (8 bytes per channel). One command
// at a time per channel (a per-channel lock), the two devices of a channel share it.
//
//   probe     SRST, then per unit: select, status (0 = nobody there, 0xFF = empty cable),
//             signature (ATA 00/00, ATAPI 14/EB), IDENTIFY (PACKET) DEVICE by PIO, SET FEATURES
//             transfer mode MWDMA2 (the PIIX3 has no UDMA); ATAPI: TEST UNIT READY, READ
//             CAPACITY. The probe runs polled (nIEN), as the BIOS does; attachIrq() switches to
//             interrupts for the kernel.
//   ATA DMA   READ/WRITE DMA, or the EXT forms when the range needs LBA48 or more than 256
//             sectors (ata_build_rw_tf): task file, command, bus master START (direction with
//             it); the interrupt handler stops the engine, reads status (which acknowledges
//             the drive) and clears the bus master's INT/ERR. Data moves between the drive and
//             a PRD table in guest RAM: a 1 MiB bounce buffer per channel, or the caller's own
//             guest pages (FUSE write pages go to the disk without a copy).
//   ATA PIO   READ/WRITE SECTORS (libata.dma=0, or no bus master): rep insw/outsw of 256 words
//             per sector, one interrupt per sector.
//   FLUSH     FLUSH CACHE (EXT) on fsync.
//   ATAPI     PACKET: byte-count limit, A0h, the 12-byte CDB with one rep outsw; data by DMA
//             (READ(10)) or PIO DRQ blocks (INQUIRY, READ CAPACITY, REQUEST SENSE ...), CHECK
//             CONDITION -> sense key from the error register.
import type { Cpu } from '../cpu/io.js';
import type { InterruptController } from '../cpu/interrupts.js';
import type { DmaBuffer, PhysicalMemory } from '../cpu/ram.js';
import type { PciConfigSpace, PciDevice } from '../firmware/pci.js';

// Task file.
const REG_DATA = 0;
const REG_ERROR = 1;
const REG_FEATURE = 1;
const REG_NSECT = 2;
const REG_LBAL = 3;
const REG_LBAM = 4;
const REG_LBAH = 5;
const REG_DEVICE = 6;
const REG_STATUS = 7;
const REG_COMMAND = 7;
const ST_BSY = 0x80;
const ST_DRQ = 0x08;
const ST_ERR = 0x01;
const ST_DF = 0x20;
const DEV_LBA = 0x40;
const CTL_NIEN = 0x02;
const CTL_SRST = 0x04;
// Bus master.
const BM_CMD = 0;
const BM_STATUS = 2;
const BM_PRD = 4;
const BM_START = 0x01;
const BM_WRITE_MEM = 0x08; // device -> memory
const BM_ST_ACTIVE = 0x01;
const BM_ST_ERR = 0x02;
const BM_ST_INT = 0x04;
const BM_ST_CAPS = 0x60;
// Commands.
const CMD_READ_PIO = 0x20;
const CMD_READ_PIO_EXT = 0x24;
const CMD_READ_DMA_EXT = 0x25;
const CMD_WRITE_PIO = 0x30;
const CMD_WRITE_PIO_EXT = 0x34;
const CMD_WRITE_DMA_EXT = 0x35;
const CMD_PACKET = 0xa0;
const CMD_ID_ATAPI = 0xa1;
const CMD_READ_DMA = 0xc8;
const CMD_WRITE_DMA = 0xca;
const CMD_FLUSH = 0xe7;
const CMD_FLUSH_EXT = 0xea;
const CMD_ID_ATA = 0xec;
const CMD_SET_FEATURES = 0xef;
const SETFEATURES_XFER = 0x03;
const XFER_MW_DMA_2 = 0x22;
// Packet commands.
export const GPCMD_TEST_UNIT_READY = 0x00;
export const GPCMD_REQUEST_SENSE = 0x03;
export const GPCMD_INQUIRY = 0x12;
export const GPCMD_READ_CAPACITY = 0x25;
export const GPCMD_READ_10 = 0x28;

const LEGACY = [
  { cmd: 0x1f0, ctl: 0x3f6, irq: 14 },
  { cmd: 0x170, ctl: 0x376, irq: 15 },
] as const;
export const SECTOR = 512;
export const CD_BLOCK = 2048;
/** Bounce buffer per channel: the largest transfer one command moves here. */
export const BOUNCE_BYTES = 1 << 20;
const PRD_MAX = 512;
const POLL_LIMIT = 100_000;
const IRQ_TIMEOUT_MS = 10_000;

export class AtaError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly error: number,
  ) {
    super(message);
    this.name = 'AtaError';
  }
  /** ATAPI: the sense key of a CHECK CONDITION. */
  get senseKey(): number {
    return this.error >> 4;
  }
}

/** A piece of guest RAM a DMA transfer moves (even length, at most 64 KiB per PRD entry). */
export interface DmaSegment {
  gpa: number;
  len: number;
}

export interface IdeDevice {
  /** hda, hdb, hdc, hdd. */
  readonly name: string;
  readonly channel: 0 | 1;
  readonly unit: 0 | 1;
  readonly kind: 'ata' | 'atapi';
  readonly model: string;
  readonly serial: string;
  readonly firmware: string;
  /** ATA: 512-byte sectors. ATAPI: 2048-byte blocks of the medium (0 = no medium). */
  blocks: number;
  readonly blockSize: number;
  readonly lba48: boolean;
  readonly dma: boolean;
  readonly flushExt: boolean;
  readonly identify: Uint16Array;
}

export interface AtaCounters {
  commands: number;
  dmaCommands: number;
  pioCommands: number;
  readSectors: number;
  writeSectors: number;
  flushes: number;
  errors: number;
  interrupts: number;
  spurious: number;
}

interface Completion {
  status: number;
  bmStatus: number;
}

interface Waiter {
  dma: boolean;
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

function idString(w: Uint16Array, first: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) s += String.fromCharCode(w[first + i]! >> 8, w[first + i]! & 0xff);
  return s.trim();
}

class Channel {
  selected = -1;
  irqMode = false;
  private waiter: Waiter | null = null;
  private chain: Promise<void> = Promise.resolve();
  private prdLoaded = false;

  constructor(
    private readonly cpu: Cpu,
    readonly index: 0 | 1,
    readonly cmd: number,
    readonly ctl: number,
    readonly bm: number,
    readonly irq: number,
    readonly prd: DmaBuffer,
    readonly bounce: DmaBuffer,
    private readonly counters: AtaCounters,
  ) {}

  /** Runs `fn` with the channel to itself. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  inb(reg: number): number {
    return this.cpu.inb(this.cmd + reg);
  }
  outb(reg: number, v: number): void {
    this.cpu.outb(this.cmd + reg, v);
  }
  altStatus(): number {
    return this.cpu.inb(this.ctl);
  }
  devCtl(v: number): void {
    this.cpu.outb(this.ctl, v);
  }

  select(unit: number, lbaBits = 0): void {
    this.outb(REG_DEVICE, 0xa0 | DEV_LBA | (unit << 4) | lbaBits);
    this.selected = unit;
  }

  /** Polls until BSY clears (the device model completes commands inside the exit, so this is
   * one read in practice). */
  pollNotBusy(): number {
    for (let i = 0; i < POLL_LIMIT; i++) {
      const st = this.altStatus();
      if (!(st & ST_BSY)) return st;
    }
    throw new AtaError(`ata${this.index + 1}: device stuck busy`, ST_BSY, 0);
  }

  /** Loads the PRD table: segments -> entries (<= 64 KiB, not crossing 64 KiB), EOT last. */
  loadPrd(segs: DmaSegment[]): void {
    const dv = new DataView(this.prd.view.buffer, this.prd.view.byteOffset, this.prd.view.byteLength);
    let n = 0;
    for (const s of segs) {
      let at = s.gpa;
      let left = s.len;
      while (left > 0) {
        const room = 0x10000 - (at & 0xffff);
        const len = Math.min(left, room);
        if (n >= PRD_MAX) throw new RangeError('PRD table overflow');
        dv.setUint32(n * 8, at, true);
        dv.setUint32(n * 8 + 4, len & 0xffff, true);
        n++;
        at += len;
        left -= len;
      }
    }
    if (n === 0) throw new RangeError('empty DMA transfer');
    dv.setUint32((n - 1) * 8 + 4, dv.getUint32((n - 1) * 8 + 4, true) | 0x8000_0000, true);
    if (!this.prdLoaded) {
      this.cpu.outl(this.bm + BM_PRD, this.prd.gpa);
      this.prdLoaded = true;
    }
  }

  startDma(toMemory: boolean): void {
    this.cpu.outb(this.bm + BM_CMD, (toMemory ? BM_WRITE_MEM : 0) | BM_START);
  }

  /** Waits for the command's interrupt (or, polled, for the drive to finish). With `dma`, the
   * bus master is stopped and its INT/ERR cleared. */
  wait(dma: boolean): Promise<Completion> {
    if (!this.irqMode) return Promise.resolve(this.pollCompletion(dma));
    return new Promise<Completion>((resolve, reject) => {
      const w: Waiter = { dma, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        if (this.waiter !== w) return;
        this.waiter = null;
        reject(new AtaError(`ata${this.index + 1}: timeout waiting for the interrupt`, this.altStatus(), 0));
      }, IRQ_TIMEOUT_MS);
      this.waiter = w;
    });
  }

  private finishDma(): number {
    const bs = this.cpu.inb(this.bm + BM_STATUS);
    this.cpu.outb(this.bm + BM_CMD, 0);
    return bs;
  }

  private clearBm(bs: number): void {
    if (bs & (BM_ST_INT | BM_ST_ERR)) this.cpu.outb(this.bm + BM_STATUS, (bs & BM_ST_CAPS) | (bs & (BM_ST_INT | BM_ST_ERR)));
  }

  private pollCompletion(dma: boolean): Completion {
    this.pollNotBusy();
    let bs = 0;
    if (dma) {
      for (let i = 0; i < POLL_LIMIT; i++) {
        bs = this.finishDma();
        if (!(bs & BM_ST_ACTIVE) || bs & (BM_ST_INT | BM_ST_ERR)) break;
      }
    }
    const status = this.inb(REG_STATUS);
    if (dma) this.clearBm(bs);
    return { status, bmStatus: bs };
  }

  /** The channel's IRQ handler. */
  handleIrq(): boolean {
    const w = this.waiter;
    this.counters.interrupts++;
    if (!w) {
      // Nothing outstanding: acknowledge the drive so the line drops.
      this.counters.spurious++;
      this.inb(REG_STATUS);
      return true;
    }
    let bs = 0;
    if (w.dma) bs = this.finishDma();
    const status = this.inb(REG_STATUS);
    if (w.dma) this.clearBm(bs);
    this.waiter = null;
    if (w.timer) clearTimeout(w.timer);
    w.resolve({ status, bmStatus: bs });
    return true;
  }
}

export interface AtaPiixOptions {
  cpu: Cpu;
  cfg: PciConfigSpace;
  pci: PciDevice;
  ram: PhysicalMemory;
  log: (msg: string) => void;
  /** Use bus-master DMA when available (libata.dma=0 turns it off). Default true. */
  dma?: boolean;
  /** Quiet probe (the firmware's, which prints its own lines). */
  quiet?: boolean;
  /** Bounce buffer per channel (default 1 MiB; the firmware uses less). */
  bounceBytes?: number;
}

export class AtaPiix {
  readonly devices: IdeDevice[] = [];
  readonly counters: AtaCounters = { commands: 0, dmaCommands: 0, pioCommands: 0, readSectors: 0, writeSectors: 0, flushes: 0, errors: 0, interrupts: 0, spurious: 0 };
  private readonly channels: Channel[] = [];
  private readonly pioBuf: DmaBuffer;
  private readonly frees: (() => void)[] = [];
  private readonly bounceBytes: number;

  private constructor(private readonly o: AtaPiixOptions) {
    this.bounceBytes = o.bounceBytes ?? BOUNCE_BYTES;
    this.pioBuf = o.ram.alloc(0x10000); // PIO staging: one ATAPI DRQ block at most
  }

  static async probe(o: AtaPiixOptions): Promise<AtaPiix> {
    const a = new AtaPiix(o);
    await a.init();
    return a;
  }

  private get cpu(): Cpu {
    return this.o.cpu;
  }

  private async init(): Promise<void> {
    const { cpu, cfg, pci, ram, log } = this.o;
    const bmBar = pci.bars[4];
    const useDma = (this.o.dma ?? true) && !!bmBar && bmBar.kind === 'io' && bmBar.base !== 0;
    if (useDma) cfg.setMaster(pci);
    for (const i of [0, 1] as const) {
      const L = LEGACY[i];
      const name = `ide${i}`;
      cpu.claimPorts(name, L.cmd, 8);
      cpu.claimPorts(name, L.ctl, 1);
      if (useDma) cpu.claimPorts(name, bmBar.base + 8 * i, 8);
      const ch = new Channel(cpu, i, L.cmd, L.ctl, useDma ? bmBar.base + 8 * i : -1, L.irq, ram.alloc(PRD_MAX * 8), ram.alloc(this.bounceBytes, 0x10000), this.counters);
      this.channels.push(ch);
      if (!this.o.quiet) log(`ata${i + 1}: PATA max MWDMA2 cmd 0x${L.cmd.toString(16)} ctl 0x${L.ctl.toString(16)} ${useDma ? `bmdma 0x${(bmBar.base + 8 * i).toString(16)}` : 'no bmdma'} irq ${L.irq}`);
      await this.probeChannel(ch, useDma);
    }
  }

  private async probeChannel(ch: Channel, useDma: boolean): Promise<void> {
    if (ch.inb(REG_STATUS) === 0xff) return; // nothing on the cable: the bus floats
    // Clear the signature registers, then reset: a device that is there answers with its
    // signature (count 1, LBA low 1, then 00/00 for ATA or 14/EB for ATAPI); a missing one
    // leaves what the bus last carried. (An ATAPI device's status is 0 after reset, so the
    // status alone cannot tell.)
    ch.outb(REG_NSECT, 0);
    ch.outb(REG_LBAL, 0);
    ch.devCtl(CTL_SRST | CTL_NIEN);
    ch.devCtl(CTL_NIEN);
    for (const unit of [0, 1] as const) {
      ch.select(unit);
      if (ch.altStatus() === 0xff) continue;
      if (ch.inb(REG_NSECT) !== 1 || ch.inb(REG_LBAL) !== 1) continue;
      const lcyl = ch.inb(REG_LBAM);
      const hcyl = ch.inb(REG_LBAH);
      const kind = lcyl === 0x14 && hcyl === 0xeb ? 'atapi' : lcyl === 0 && hcyl === 0 ? 'ata' : null;
      if (!kind) continue;
      try {
        const dev = await this.identifyDevice(ch, unit, kind, useDma);
        this.devices.push(dev);
      } catch (e) {
        this.o.log(`ata${ch.index + 1}.0${unit}: failed to IDENTIFY (${(e as Error).message})`);
      }
    }
  }

  private async identifyDevice(ch: Channel, unit: 0 | 1, kind: 'ata' | 'atapi', useDma: boolean): Promise<IdeDevice> {
    const w = new Uint16Array(256);
    await this.pioIn(ch, unit, kind === 'ata' ? CMD_ID_ATA : CMD_ID_ATAPI, 512, (buf) => {
      const dv = new DataView(buf.buffer, buf.byteOffset, 512);
      for (let i = 0; i < 256; i++) w[i] = dv.getUint16(2 * i, true);
    });
    const lba48 = kind === 'ata' && (w[83]! & (1 << 10)) !== 0;
    const dma = useDma && (w[49]! & (1 << 8)) !== 0;
    const sectors = kind === 'ata' ? (lba48 ? w[100]! + w[101]! * 0x10000 + w[102]! * 0x1_0000_0000 : w[60]! + w[61]! * 0x10000) : 0;
    const dev: IdeDevice = {
      name: `hd${String.fromCharCode(97 + ch.index * 2 + unit)}`,
      channel: ch.index,
      unit,
      kind,
      model: idString(w, 27, 20),
      serial: idString(w, 10, 10),
      firmware: idString(w, 23, 4),
      blocks: sectors,
      blockSize: kind === 'ata' ? SECTOR : CD_BLOCK,
      lba48,
      dma,
      flushExt: kind === 'ata' && (w[83]! & (1 << 13)) !== 0,
      identify: w,
    };
    const tag = `ata${ch.index + 1}.0${unit}`;
    if (dma) await this.setXferMode(ch, dev, XFER_MW_DMA_2);
    if (kind === 'ata') {
      if (!this.o.quiet) {
        this.o.log(`${tag}: ATA-7: ${dev.model}, ${dev.firmware}, max MWDMA2`);
        this.o.log(`${tag}: ${sectors} sectors, multi 16: ${lba48 ? 'LBA48' : 'LBA'}`);
      }
    } else {
      if (!this.o.quiet) this.o.log(`${tag}: ATAPI: ${dev.model}, ${dev.firmware}, max MWDMA2`);
      dev.blocks = await this.cdCapacity(dev);
    }
    if (!this.o.quiet) this.o.log(`${tag}: configured for ${dma ? 'MWDMA2' : 'PIO4'}`);
    return dev;
  }

  private async setXferMode(ch: Channel, dev: IdeDevice, mode: number): Promise<void> {
    await this.nonData(ch, dev, CMD_SET_FEATURES, { feature: SETFEATURES_XFER, nsect: mode });
  }

  /** Blocks on the medium (0 if none), after clearing a pending UNIT ATTENTION. */
  async cdCapacity(dev: IdeDevice): Promise<number> {
    for (let i = 0; i < 3; i++) {
      try {
        await this.packet(dev, Uint8Array.of(GPCMD_TEST_UNIT_READY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0);
        const cap = await this.packet(dev, Uint8Array.of(GPCMD_READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 8);
        const dv = new DataView(cap.buffer, cap.byteOffset, 8);
        return dv.getUint32(0, false) + 1;
      } catch (e) {
        if (e instanceof AtaError && e.senseKey === 6) continue; // UNIT ATTENTION: once more
        if (e instanceof AtaError && e.senseKey === 2) return 0; // NOT READY: no medium
        throw e;
      }
    }
    return 0;
  }

  /** Interrupts from here on (the kernel's driver; the firmware probes polled). */
  attachIrq(intc: InterruptController): void {
    for (const ch of this.channels) {
      if (!this.devices.some((d) => d.channel === ch.index)) continue;
      ch.irqMode = true;
      this.frees.push(intc.request(ch.irq, `ata_piix.${ch.index}`, () => ch.handleIrq()));
      ch.devCtl(0); // nIEN off
    }
  }

  /** Back to polled operation (shutdown: interrupts may no longer be delivered). */
  detachIrq(): void {
    for (const f of this.frees.splice(0)) f();
    for (const ch of this.channels) {
      if (!ch.irqMode) continue;
      ch.irqMode = false;
      ch.devCtl(CTL_NIEN);
    }
  }

  device(name: string): IdeDevice | undefined {
    return this.devices.find((d) => d.name === name);
  }

  private ch(dev: IdeDevice): Channel {
    return this.channels[dev.channel]!;
  }

  /** Runs `fn` while holding the device's channel (read-modify-write sequences). */
  exclusive<T>(dev: IdeDevice, fn: () => Promise<T>): Promise<T> {
    return this.ch(dev).exclusive(fn);
  }

  /** The channel's bounce buffer: valid inside exclusive() / consume callbacks only. */
  bounce(dev: IdeDevice): DmaBuffer {
    return this.ch(dev).bounce;
  }

  private check(c: Completion, what: string, ch: Channel): void {
    if (c.status & (ST_ERR | ST_DF) || c.bmStatus & BM_ST_ERR) {
      this.counters.errors++;
      const err = c.status & ST_ERR ? ch.inb(REG_ERROR) : 0;
      throw new AtaError(`${what} failed: status 0x${c.status.toString(16)} error 0x${err.toString(16)} bmdma 0x${c.bmStatus.toString(16)}`, c.status, err);
    }
  }

  /** Loads the task file for an LBA28/LBA48 command on `unit`. */
  private taskFile(ch: Channel, unit: number, lba: number, count: number, lba48: boolean, feature?: number): void {
    if (lba48) {
      ch.outb(REG_NSECT, (count >> 8) & 0xff);
      ch.outb(REG_LBAL, Math.floor(lba / 0x100_0000) & 0xff);
      ch.outb(REG_LBAM, Math.floor(lba / 0x1_0000_0000) & 0xff);
      ch.outb(REG_LBAH, Math.floor(lba / 0x100_0000_0000) & 0xff);
    } else if (feature !== undefined) ch.outb(REG_FEATURE, feature);
    ch.outb(REG_NSECT, count & 0xff);
    ch.outb(REG_LBAL, lba & 0xff);
    ch.outb(REG_LBAM, (lba >>> 8) & 0xff);
    ch.outb(REG_LBAH, (lba >>> 16) & 0xff);
    ch.outb(REG_DEVICE, 0xa0 | DEV_LBA | (unit << 4) | (lba48 ? 0 : Math.floor(lba / 0x100_0000) & 0x0f));
    ch.selected = unit;
  }

  private async nonData(ch: Channel, dev: IdeDevice, cmd: number, tf: { feature?: number; nsect?: number } = {}): Promise<void> {
    this.counters.commands++;
    if (ch.selected !== dev.unit) ch.select(dev.unit);
    if (tf.feature !== undefined) ch.outb(REG_FEATURE, tf.feature);
    if (tf.nsect !== undefined) ch.outb(REG_NSECT, tf.nsect);
    ch.outb(REG_COMMAND, cmd);
    this.check(await ch.wait(false), `command 0x${cmd.toString(16)}`, ch);
  }

  /** A PIO data-in command of `bytes` (one DRQ block), handed to `consume`. */
  private async pioIn(ch: Channel, unit: number, cmd: number, bytes: number, consume: (b: Uint8Array) => void): Promise<void> {
    this.counters.commands++;
    this.counters.pioCommands++;
    if (ch.selected !== unit) ch.select(unit);
    ch.outb(REG_COMMAND, cmd);
    const c = await ch.wait(false);
    this.check(c, `command 0x${cmd.toString(16)}`, ch);
    if (!(c.status & ST_DRQ)) throw new AtaError(`command 0x${cmd.toString(16)}: no data`, c.status, 0);
    this.cpu.ins(ch.cmd + REG_DATA, 2, this.pioBuf.gpa, bytes / 2);
    consume(this.pioBuf.view.subarray(0, bytes));
  }

  private ataCommand(dev: IdeDevice, write: boolean, lba: number, count: number, dma: boolean): { cmd: number; lba48: boolean } {
    const lba48 = dev.lba48 && (lba + count > 0x0fff_ffff || count > 256);
    if (!dev.lba48 && (lba + count > 0x0fff_ffff || count > 256)) throw new RangeError('transfer beyond LBA28');
    const cmd = dma ? (write ? (lba48 ? CMD_WRITE_DMA_EXT : CMD_WRITE_DMA) : lba48 ? CMD_READ_DMA_EXT : CMD_READ_DMA) : write ? (lba48 ? CMD_WRITE_PIO_EXT : CMD_WRITE_PIO) : lba48 ? CMD_READ_PIO_EXT : CMD_READ_PIO;
    return { cmd, lba48 };
  }

  /** Largest sector count one call of readSectors/writeSectors takes. */
  maxSectors(dev: IdeDevice): number {
    return Math.min(dev.kind === 'ata' && !dev.lba48 ? 256 : 65535, Math.floor(this.bounceBytes / dev.blockSize));
  }

  private checkRange(dev: IdeDevice, lba: number, count: number): void {
    if (dev.kind !== 'ata') throw new Error(`${dev.name} is not an ATA disk`);
    if (!Number.isInteger(lba) || !Number.isInteger(count) || lba < 0 || count < 1 || lba + count > dev.blocks) throw new RangeError(`${dev.name}: sectors ${lba}+${count} out of range`);
    if (count > this.maxSectors(dev)) throw new RangeError(`${dev.name}: ${count} sectors in one command`);
  }

  /** Reads `count` sectors into the channel's bounce buffer and passes them to `consume`
   * (which must not keep the view). Call outside exclusive(). */
  readSectors(dev: IdeDevice, lba: number, count: number, consume: (data: Uint8Array) => void): Promise<void> {
    return this.exclusive(dev, () => this.readSectorsLocked(dev, lba, count, consume));
  }

  /** readSectors() for a caller already inside exclusive(). */
  async readSectorsLocked(dev: IdeDevice, lba: number, count: number, consume: (data: Uint8Array) => void): Promise<void> {
    this.checkRange(dev, lba, count);
    const ch = this.ch(dev);
    const bytes = count * SECTOR;
    if (dev.dma) {
      await this.dmaCommand(ch, dev, false, lba, count, [{ gpa: ch.bounce.gpa, len: bytes }]);
    } else {
      await this.pioTransfer(ch, dev, false, lba, count, ch.bounce);
    }
    this.counters.readSectors += count;
    consume(ch.bounce.view.subarray(0, bytes));
  }

  /** Writes `count` sectors from `src`: bytes (copied to the bounce buffer) or guest RAM
   * segments (DMA straight from them). */
  writeSectors(dev: IdeDevice, lba: number, count: number, src: Uint8Array | DmaSegment[]): Promise<void> {
    return this.exclusive(dev, () => this.writeSectorsLocked(dev, lba, count, src));
  }

  async writeSectorsLocked(dev: IdeDevice, lba: number, count: number, src: Uint8Array | DmaSegment[]): Promise<void> {
    this.checkRange(dev, lba, count);
    const ch = this.ch(dev);
    const bytes = count * SECTOR;
    let segs: DmaSegment[];
    if (src instanceof Uint8Array) {
      if (src.length < bytes) throw new RangeError('short write buffer');
      if (src.buffer !== ch.bounce.view.buffer || src.byteOffset !== ch.bounce.view.byteOffset) ch.bounce.view.set(src.subarray(0, bytes));
      segs = [{ gpa: ch.bounce.gpa, len: bytes }];
    } else {
      segs = src;
      if (segs.reduce((n, s) => n + s.len, 0) !== bytes) throw new RangeError('DMA segments do not match the sector count');
    }
    if (dev.dma) await this.dmaCommand(ch, dev, true, lba, count, segs);
    else {
      if (!(src instanceof Uint8Array)) {
        // PIO from pages: gather into the bounce buffer first.
        let at = 0;
        for (const s of segs) {
          ch.bounce.view.set(this.o.ram.bytes.subarray(s.gpa, s.gpa + s.len), at);
          at += s.len;
        }
      }
      await this.pioTransfer(ch, dev, true, lba, count, ch.bounce);
    }
    this.counters.writeSectors += count;
  }

  private async dmaCommand(ch: Channel, dev: IdeDevice, write: boolean, lba: number, count: number, segs: DmaSegment[]): Promise<void> {
    const { cmd, lba48 } = this.ataCommand(dev, write, lba, count, true);
    this.counters.commands++;
    this.counters.dmaCommands++;
    ch.loadPrd(segs);
    this.taskFile(ch, dev.unit, lba, count, lba48);
    ch.outb(REG_COMMAND, cmd);
    ch.startDma(!write);
    this.check(await ch.wait(true), `${write ? 'WRITE' : 'READ'} DMA${lba48 ? ' EXT' : ''} ${lba}+${count}`, ch);
  }

  /** PIO READ/WRITE SECTORS: one DRQ block (sector) per interrupt. */
  private async pioTransfer(ch: Channel, dev: IdeDevice, write: boolean, lba: number, count: number, buf: DmaBuffer): Promise<void> {
    const { cmd, lba48 } = this.ataCommand(dev, write, lba, count, false);
    this.counters.commands++;
    this.counters.pioCommands++;
    this.taskFile(ch, dev.unit, lba, count, lba48);
    ch.outb(REG_COMMAND, cmd);
    const what = `${write ? 'WRITE' : 'READ'} SECTORS ${lba}+${count}`;
    for (let i = 0; i < count; i++) {
      if (write) {
        // Data-out: the first block is requested without an interrupt.
        const st = i === 0 ? ch.pollNotBusy() : (await ch.wait(false)).status;
        this.check({ status: st, bmStatus: 0 }, what, ch);
        if (!(st & ST_DRQ)) throw new AtaError(`${what}: drive did not request data`, st, 0);
        this.cpu.outs(ch.cmd + REG_DATA, 2, buf.gpa + i * SECTOR, SECTOR / 2);
      } else {
        const c = await ch.wait(false);
        this.check(c, what, ch);
        if (!(c.status & ST_DRQ)) throw new AtaError(`${what}: drive has no data`, c.status, 0);
        this.cpu.ins(ch.cmd + REG_DATA, 2, buf.gpa + i * SECTOR, SECTOR / 2);
      }
    }
    if (write) this.check(await ch.wait(false), what, ch);
  }

  /** FLUSH CACHE (EXT). */
  flush(dev: IdeDevice): Promise<void> {
    return this.exclusive(dev, async () => {
      this.counters.flushes++;
      await this.nonData(this.ch(dev), dev, dev.flushExt && dev.lba48 ? CMD_FLUSH_EXT : CMD_FLUSH);
    });
  }

  // ---- ATAPI ----------------------------------------------------------------------------------

  /** Sends a 12-byte packet and returns up to `allocLen` bytes of data-in (PIO). */
  packet(dev: IdeDevice, cdb: Uint8Array, allocLen: number): Promise<Uint8Array> {
    return this.exclusive(dev, async () => {
      const out = new Uint8Array(allocLen);
      let got = 0;
      await this.packetLocked(dev, cdb, allocLen, false, (chunk) => {
        const n = Math.min(chunk.length, allocLen - got);
        out.set(chunk.subarray(0, n), got);
        got += n;
      });
      return out.subarray(0, got);
    });
  }

  /** Reads `count` 2048-byte blocks from the medium (DMA when available) into the bounce
   * buffer and passes them to `consume`. */
  readBlocks(dev: IdeDevice, lba: number, count: number, consume: (data: Uint8Array) => void): Promise<void> {
    if (dev.kind !== 'atapi') return Promise.reject(new Error(`${dev.name} is not an ATAPI device`));
    if (!Number.isInteger(lba) || lba < 0 || count < 1 || lba + count > dev.blocks || count > this.maxSectors(dev)) {
      return Promise.reject(new RangeError(`${dev.name}: blocks ${lba}+${count} out of range`));
    }
    return this.exclusive(dev, async () => {
      const cdb = new Uint8Array(12);
      cdb[0] = GPCMD_READ_10;
      new DataView(cdb.buffer).setUint32(2, lba, false);
      new DataView(cdb.buffer).setUint16(7, count, false);
      const ch = this.ch(dev);
      const bytes = count * CD_BLOCK;
      if (dev.dma) {
        await this.packetLocked(dev, cdb, bytes, true, () => {});
      } else {
        let at = 0;
        await this.packetLocked(dev, cdb, bytes, false, (chunk) => {
          ch.bounce.view.set(chunk, at);
          at += chunk.length;
        });
      }
      this.counters.readSectors += count * (CD_BLOCK / SECTOR);
      consume(ch.bounce.view.subarray(0, bytes));
    });
  }

  private async packetLocked(dev: IdeDevice, cdb: Uint8Array, allocLen: number, dma: boolean, chunk: (b: Uint8Array) => void): Promise<void> {
    const ch = this.ch(dev);
    this.counters.commands++;
    if (dma) this.counters.dmaCommands++;
    else this.counters.pioCommands++;
    if (dma) ch.loadPrd([{ gpa: ch.bounce.gpa, len: allocLen }]);
    if (ch.selected !== dev.unit) ch.select(dev.unit);
    const limit = Math.min(Math.max(allocLen, 2), 0xfffe) & ~1;
    ch.outb(REG_FEATURE, dma ? 1 : 0);
    ch.outb(REG_LBAM, limit & 0xff);
    ch.outb(REG_LBAH, limit >> 8);
    ch.outb(REG_COMMAND, CMD_PACKET);
    const st = ch.pollNotBusy();
    if (!(st & ST_DRQ)) {
      this.check({ status: st | ST_ERR, bmStatus: 0 }, 'PACKET', ch);
    }
    this.pioBuf.view.set(cdb.subarray(0, 12));
    this.pioBuf.view.fill(0, cdb.length, 12);
    this.cpu.outs(ch.cmd + REG_DATA, 2, this.pioBuf.gpa, 6);
    const what = `packet 0x${cdb[0]!.toString(16)}`;
    if (dma) {
      ch.startDma(true);
      this.check(await ch.wait(true), what, ch);
      return;
    }
    for (let blocks = 0; blocks < 4096; blocks++) {
      const c = await ch.wait(false);
      this.check(c, what, ch);
      if (!(c.status & ST_DRQ)) return; // command complete
      const n = this.cpu.inw(ch.cmd + REG_LBAM) & 0xffff; // byte count (LBA mid/high)
      const words = (n + 1) >> 1;
      this.cpu.ins(ch.cmd + REG_DATA, 2, this.pioBuf.gpa, words);
      chunk(this.pioBuf.view.subarray(0, n));
    }
    throw new AtaError(`${what}: too many data blocks`, 0, 0);
  }

  describe(dev: IdeDevice): string {
    if (dev.kind === 'atapi') return `${dev.name}: ATAPI CD/DVD-ROM ${dev.model}, ${dev.blocks ? `${dev.blocks} 2048-byte blocks` : 'no medium'}`;
    const bytes = dev.blocks * SECTOR;
    return `${dev.name}: ${dev.blocks} 512-byte logical blocks: (${size(bytes, 1000, ['B', 'kB', 'MB', 'GB', 'TB'])}/${size(bytes, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB'])})`;
  }
}

/** Linux's string_get_size(): three significant digits in the largest fitting unit. */
function size(bytes: number, base: number, units: string[]): string {
  let v = bytes;
  let u = 0;
  while (v >= base && u < units.length - 1) {
    v /= base;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}
