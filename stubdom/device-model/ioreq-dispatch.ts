// Performs one ioreq against the machine: the part of a device model that is the same whether
// the request came from Xen's shared ioreq page (ioreq-server.ts) or from a KVM vCPU exit that
// an embedder turned into an Ioreq. It never trusts the request: sizes, counts, addresses and
// the data pointer are validated on the private copy it is given; anything impossible is
// refused (reads answer all ones, writes are dropped) with a rate-limited log line.
//
// Semantics follow qemu-xen's cpu_ioreq_pio / cpu_ioreq_move / cpu_ioreq_config:
//   PIO,  !data_is_ptr: one in/out of `size` bytes at port `addr`; a read answers in `data`.
//   PIO,   data_is_ptr: rep ins/outs, `count` times at the same port, guest RAM at
//                       data + i*size (data - i*size when df) receives/supplies each element.
//   COPY, !data_is_ptr: one MMIO load/store of `size` (1, 2, 4 or 8) bytes at gpa `addr`.
//   COPY,  data_is_ptr: rep movs between MMIO at addr +/- i*size and RAM at data +/- i*size.
//   PCI_CONFIG:         a config-space access (addr = SBDF << 32 | register), size <= 4.
//   TIMEOFFSET, INVALIDATE and unknown types are acknowledged and ignored.
import { decodeIoreqPciAddr, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO, type Ioreq } from '../../drivers/wire/ioreq.js';
import type { BufferedWrite } from '../../drivers/wire/buffered-ioreq.js';
import { AddressBus, sizeMask } from './address-bus.js';
import { GuestMemory, gpaFromBigint } from './guest-memory.js';
import { LimitedLog, type DeviceLogger, defaultLogger } from './log.js';

/** Config-space target for IOREQ_TYPE_PCI_CONFIG (the PCI bus). */
export interface PciConfigTarget {
  configRead(bus: number, dev: number, fn: number, reg: number, size: number): number;
  configWrite(bus: number, dev: number, fn: number, reg: number, size: number, value: number): void;
}

/** Largest rep count accepted in one request (Xen clips reps at page boundaries, so real
 * requests stay far below this; anything larger is a broken or hostile producer). */
export const IOREQ_MAX_REPS = 65536;

export interface DispatchMetrics {
  pio: number;
  mmio: number;
  pciConfig: number;
  /** Requests with data_is_ptr (rep string ops). */
  rep: number;
  /** Elements moved by rep requests. */
  repElements: number;
  buffered: number;
  ignored: number;
  refused: number;
}

export interface DispatcherOptions {
  pio: AddressBus;
  mmio: AddressBus;
  memory: GuestMemory;
  pci?: PciConfigTarget;
  log?: DeviceLogger;
}

const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

export class IoreqDispatcher {
  readonly pio: AddressBus;
  readonly mmio: AddressBus;
  readonly memory: GuestMemory;
  pci: PciConfigTarget | undefined;
  readonly metrics: DispatchMetrics = { pio: 0, mmio: 0, pciConfig: 0, rep: 0, repElements: 0, buffered: 0, ignored: 0, refused: 0 };
  private readonly log: LimitedLog;
  private readonly el = new Uint8Array(8);
  private readonly elView = new DataView(this.el.buffer);

  constructor(opts: DispatcherOptions) {
    this.pio = opts.pio;
    this.mmio = opts.mmio;
    this.memory = opts.memory;
    this.pci = opts.pci;
    this.log = new LimitedLog(opts.log ?? defaultLogger('stubdom'), 'ioreq');
  }

  /**
   * Performs `req` (a private, already-copied request). Returns the value for the response's
   * `data` field: the value read for a read without data_is_ptr, otherwise `req.data`
   * unchanged (as qemu-xen leaves it).
   */
  handle(req: Ioreq): bigint {
    switch (req.type) {
      case IOREQ_TYPE_PIO:
        return this.doPio(req);
      case IOREQ_TYPE_COPY:
        return this.doCopy(req);
      case IOREQ_TYPE_PCI_CONFIG:
        return this.doPciConfig(req);
      default:
        this.metrics.ignored++;
        return req.data;
    }
  }

  private refuse(req: Ioreq, why: string): bigint {
    this.metrics.refused++;
    this.log.warn(why, `refused type=${req.type} addr=0x${req.addr.toString(16)} size=${req.size} count=${req.count} ptr=${req.dataIsPtr}: ${why}`);
    if (req.dir === IOREQ_READ && !req.dataIsPtr) return req.size === 8 ? ALL_ONES_64 : BigInt(sizeMask(req.size > 0 && req.size < 8 ? req.size : 4) >>> 0);
    return req.data;
  }

  private doPio(req: Ioreq): bigint {
    this.metrics.pio++;
    const size = req.size;
    if (size !== 1 && size !== 2 && size !== 4) return this.refuse(req, 'bad PIO size');
    if (req.addr < 0n || req.addr + BigInt(size) > 0x10000n) return this.refuse(req, 'port out of range');
    const port = Number(req.addr);
    this.pio.noteExit(port);
    if (!req.dataIsPtr) {
      if (req.dir === IOREQ_READ) return BigInt(this.pio.read(port, size) >>> 0);
      this.pio.write(port, size, Number(req.data & 0xffff_ffffn));
      return req.data;
    }
    const count = req.count;
    if (count === 0) return req.data;
    if (count > IOREQ_MAX_REPS) return this.refuse(req, 'rep count too large');
    const base = gpaFromBigint(req.data);
    if (base === undefined) return this.refuse(req, 'data pointer out of range');
    this.metrics.rep++;
    const step = req.df ? -size : size;
    // The whole span must be RAM before the first element moves (Xen translates it up front).
    const lo = req.df ? base - (count - 1) * size : base;
    if (!this.memory.isRam(lo, count * size)) return this.refuse(req, 'rep buffer not in guest RAM');
    for (let i = 0; i < count; i++) {
      const gpa = base + i * step;
      if (req.dir === IOREQ_READ) {
        this.elView.setUint32(0, this.pio.read(port, size) >>> 0, true);
        this.memory.write(gpa, this.el, 0, size);
      } else {
        this.memory.read(gpa, this.el, 0, size);
        this.pio.write(port, size, this.elView.getUint32(0, true) & sizeMask(size));
      }
    }
    this.metrics.repElements += count;
    return req.data;
  }

  private mmioRead(addr: number, size: number): bigint {
    if (size === 8) {
      const lo = this.mmio.read(addr, 4) >>> 0;
      const hi = this.mmio.read(addr + 4, 4) >>> 0;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
    return BigInt(this.mmio.read(addr, size) >>> 0);
  }

  private mmioWrite(addr: number, size: number, v: bigint): void {
    if (size === 8) {
      this.mmio.write(addr, 4, Number(v & 0xffff_ffffn));
      this.mmio.write(addr + 4, 4, Number((v >> 32n) & 0xffff_ffffn));
      return;
    }
    this.mmio.write(addr, size, Number(v & BigInt(sizeMask(size) >>> 0)));
  }

  private doCopy(req: Ioreq): bigint {
    this.metrics.mmio++;
    const size = req.size;
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) return this.refuse(req, 'bad MMIO size');
    const addr = gpaFromBigint(req.addr);
    if (addr === undefined) return this.refuse(req, 'MMIO address out of range');
    this.mmio.noteExit(addr);
    if (!req.dataIsPtr) {
      if (req.dir === IOREQ_READ) return this.mmioRead(addr, size);
      this.mmioWrite(addr, size, req.data);
      return req.data;
    }
    const count = req.count;
    if (count === 0) return req.data;
    if (count > IOREQ_MAX_REPS) return this.refuse(req, 'rep count too large');
    const base = gpaFromBigint(req.data);
    if (base === undefined) return this.refuse(req, 'data pointer out of range');
    const span = count * size;
    const ramLo = req.df ? base - span + size : base;
    const mmioLo = req.df ? addr - span + size : addr;
    if (mmioLo < 0) return this.refuse(req, 'MMIO address out of range');
    if (!this.memory.isRam(ramLo, span)) return this.refuse(req, 'rep buffer not in guest RAM');
    this.metrics.rep++;
    const step = req.df ? -size : size;
    for (let i = 0; i < count; i++) {
      const gpa = base + i * step;
      const m = addr + i * step;
      if (req.dir === IOREQ_READ) {
        this.elView.setBigUint64(0, this.mmioRead(m, size), true);
        this.memory.write(gpa, this.el, 0, size);
      } else {
        this.elView.setBigUint64(0, 0n, true);
        this.memory.read(gpa, this.el, 0, size);
        this.mmioWrite(m, size, this.elView.getBigUint64(0, true));
      }
    }
    this.metrics.repElements += count;
    return req.data;
  }

  private doPciConfig(req: Ioreq): bigint {
    this.metrics.pciConfig++;
    const size = req.size;
    if (size !== 1 && size !== 2 && size !== 4) return this.refuse(req, 'bad PCI config size');
    if (req.dataIsPtr) return this.refuse(req, 'PCI config access with data_is_ptr');
    const a = decodeIoreqPciAddr(req.addr);
    if (a.segment !== 0 || a.reg + size > 256 || (a.reg & (size - 1)) !== 0 || !this.pci) {
      // Extended config space, other segments, misaligned: nothing answers.
      if (req.dir === IOREQ_READ) return BigInt(sizeMask(size) >>> 0);
      return req.data;
    }
    if (req.dir === IOREQ_READ) return BigInt(this.pci.configRead(a.bus, a.dev, a.fn, a.reg, size) >>> 0);
    this.pci.configWrite(a.bus, a.dev, a.fn, a.reg, size, Number(req.data & 0xffff_ffffn));
    return req.data;
  }

  /** A posted write from the buffered ioreq page (PIO or COPY; no answer). */
  handleBuffered(w: BufferedWrite): void {
    this.metrics.buffered++;
    if (w.type === IOREQ_TYPE_PIO) {
      if ((w.size !== 1 && w.size !== 2 && w.size !== 4) || w.addr + w.size > 0x10000) {
        this.metrics.refused++;
        this.log.warn('buffered', `refused buffered PIO write port=0x${w.addr.toString(16)} size=${w.size}`);
        return;
      }
      this.pio.noteExit(w.addr);
      this.pio.write(w.addr, w.size, w.data >>> 0);
    } else if (w.type === IOREQ_TYPE_COPY) {
      this.mmio.noteExit(w.addr);
      if (w.size === 8) this.mmioWrite(w.addr, 8, (BigInt(w.dataHi >>> 0) << 32n) | BigInt(w.data >>> 0));
      else this.mmio.write(w.addr, w.size, w.data >>> 0);
    } else {
      this.metrics.ignored++;
    }
  }
}
