// The guest's port and memory-mapped I/O, as the vCPU executes it: every IN/OUT/INS/OUTS to a
// port and every load/store to an MMIO address is a VM exit that becomes one synchronous
// ioreq_t in this vCPU's slot of the shared ioreq page (drivers/ioreq/ioreq-vcpu.ts):
// publish, ring the device model's doorbell, futex-wait for IORESP_READY. A rep string
// instruction is ONE exit that moves `count` elements between the port and guest RAM
// (data_is_ptr), as Xen forwards it.
//
// PCI configuration mechanism #1 is forwarded as Xen does: a 32-bit write to 0xCF8 goes to
// the device model (which latches CONFIG_ADDRESS) and is latched here too; accesses to
// 0xCFC-0xCFF while the enable bit is set become IOREQ_TYPE_PCI_CONFIG requests (Xen's
// hvm_select_ioreq_server does exactly this), one exit per config access.
//
// Every exit is counted, by device: drivers and firmware claim port and MMIO ranges under a
// name ("rtl8139.0", "ide0", "com1" ...). A device model that does not answer within the
// timeout is gone: the exit fails with a MachineCheck and the runtime crashes the domain.
import {
  IOREQ_READ,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_WRITE,
  ioreqPciAddr,
  type Ioreq,
} from '../../../drivers/wire/ioreq.js';
import { IoreqTimeoutError } from '../../../drivers/ioreq/ioreq-vcpu.js';

/** What issues one ioreq and returns the response's data (IoreqVcpuPort.call). */
export interface IoreqIssuer {
  call(req: Partial<Ioreq> & Pick<Ioreq, 'type' | 'addr' | 'size' | 'dir'>, timeoutMs?: number): bigint;
}

/** The device model did not answer: on a real machine, a machine check / triple fault. */
export class MachineCheck extends Error {
  override name = 'MachineCheck';
}

export interface DeviceExitCounters {
  exits: number;
  reads: number;
  writes: number;
  /** rep ins/outs (and rep movs to MMIO) requests, and the elements they moved. */
  rep: number;
  repElements: number;
}

export interface ExitCounters {
  total: number;
  pio: number;
  mmio: number;
  pciConfig: number;
  rep: number;
  /** Time spent blocked in exits, microseconds. */
  waitUs: number;
  byDevice: Record<string, DeviceExitCounters>;
}

const PCI_CF8 = 0xcf8;
const MAX_REP = 65536;
const UNCLAIMED = 'unclaimed';

function newDevCounters(): DeviceExitCounters {
  return { exits: 0, reads: 0, writes: 0, rep: 0, repElements: 0 };
}

export interface CpuOptions {
  /** How long an exit may take before the device model counts as gone (default 5000 ms). */
  timeoutMs?: number;
  /** Called once when the device model stopped answering, before the MachineCheck is thrown. */
  onMachineCheck?: (e: MachineCheck) => void;
  /** Forward CF8/CFC as Xen does (PCI_CONFIG ioreqs). Default true. */
  pciConfigIoreqs?: boolean;
}

export class Cpu {
  private readonly portOwner = new Int16Array(0x10000).fill(-1);
  private readonly mmioOwners: { base: number; end: number; idx: number }[] = [];
  private readonly names: string[] = [];
  private readonly devCounters: DeviceExitCounters[] = [];
  private readonly unclaimed = newDevCounters();
  private readonly pciCounters: DeviceExitCounters;
  private readonly timeoutMs: number;
  private readonly pciIoreqs: boolean;
  private cf8 = 0;
  private dead = false;
  readonly counters: Omit<ExitCounters, 'byDevice'> = { total: 0, pio: 0, mmio: 0, pciConfig: 0, rep: 0, waitUs: 0 };

  constructor(
    private readonly port: IoreqIssuer,
    private readonly opts: CpuOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.pciIoreqs = opts.pciConfigIoreqs ?? true;
    const pci = this.claimPorts('pci-config', PCI_CF8, 8);
    this.pciCounters = this.devCounters[pci]!;
  }

  // ---- accounting -------------------------------------------------------------------------

  private nameIndex(name: string): number {
    let i = this.names.indexOf(name);
    if (i < 0) {
      i = this.names.length;
      this.names.push(name);
      this.devCounters.push(newDevCounters());
    }
    return i;
  }

  /** Exits to ports [base, base+len) are counted under `name`. Returns the name's index. */
  claimPorts(name: string, base: number, len: number): number {
    const i = this.nameIndex(name);
    for (let p = base; p < base + len && p < 0x10000; p++) this.portOwner[p] = i;
    return i;
  }

  /** Releases a port range (a device went away). */
  releasePorts(base: number, len: number): void {
    for (let p = base; p < base + len && p < 0x10000; p++) this.portOwner[p] = -1;
  }

  /** Exits to MMIO [base, base+len) are counted under `name`. */
  claimMmio(name: string, base: number, len: number): void {
    const idx = this.nameIndex(name);
    for (let k = this.mmioOwners.length - 1; k >= 0; k--) {
      const o = this.mmioOwners[k]!;
      if (o.base < base + len && base < o.end) this.mmioOwners.splice(k, 1);
    }
    this.mmioOwners.push({ base, end: base + len, idx });
  }

  private portCounters(port: number): DeviceExitCounters {
    const i = this.portOwner[port]!;
    return i < 0 ? this.unclaimed : this.devCounters[i]!;
  }

  private mmioCounters(addr: number): DeviceExitCounters {
    for (const o of this.mmioOwners) if (addr >= o.base && addr < o.end) return this.devCounters[o.idx]!;
    return this.unclaimed;
  }

  /** A snapshot of the exit counters. */
  exitCounters(): ExitCounters {
    const byDevice: Record<string, DeviceExitCounters> = {};
    this.names.forEach((n, i) => {
      if (this.devCounters[i]!.exits > 0) byDevice[n] = { ...this.devCounters[i]! };
    });
    if (this.unclaimed.exits > 0) byDevice[UNCLAIMED] = { ...this.unclaimed };
    return { ...this.counters, waitUs: Math.round(this.counters.waitUs), byDevice };
  }

  // ---- the exit -----------------------------------------------------------------------------

  private exit(req: Partial<Ioreq> & Pick<Ioreq, 'type' | 'addr' | 'size' | 'dir'>, c: DeviceExitCounters): bigint {
    if (this.dead) throw new MachineCheck('the device model is gone');
    const k = this.counters;
    k.total++;
    c.exits++;
    if (req.dir === IOREQ_READ) c.reads++;
    else c.writes++;
    if (req.dataIsPtr) {
      k.rep++;
      c.rep++;
      c.repElements += req.count ?? 1;
    }
    const t0 = process.hrtime.bigint();
    try {
      return this.port.call(req, this.timeoutMs);
    } catch (e) {
      if (e instanceof IoreqTimeoutError) {
        this.dead = true;
        const mc = new MachineCheck(`no answer from the device model within ${this.timeoutMs} ms (${e.message})`);
        this.opts.onMachineCheck?.(mc);
        throw mc;
      }
      throw e;
    } finally {
      k.waitUs += Number(process.hrtime.bigint() - t0) / 1000;
    }
  }

  private pio(port: number, size: 1 | 2 | 4, dir: number, value: number): number {
    port &= 0xffff;
    if (this.pciIoreqs && port >= 0xcfc && port <= 0xcff && this.cf8 & 0x8000_0000) {
      const a = this.cf8;
      this.counters.pciConfig++;
      const addr = ioreqPciAddr({ segment: 0, bus: (a >>> 16) & 0xff, dev: (a >>> 11) & 0x1f, fn: (a >>> 8) & 7, reg: (a & 0xfc) | (port & 3) });
      return Number(this.exit({ type: IOREQ_TYPE_PCI_CONFIG, addr, size, dir, data: BigInt(value >>> 0) }, this.pciCounters));
    }
    if (port === PCI_CF8 && size === 4 && dir === IOREQ_WRITE) this.cf8 = value >>> 0;
    this.counters.pio++;
    return Number(this.exit({ type: IOREQ_TYPE_PIO, addr: BigInt(port), size, dir, data: BigInt(value >>> 0) }, this.portCounters(port)));
  }

  inb(port: number): number {
    return this.pio(port, 1, IOREQ_READ, 0) & 0xff;
  }
  inw(port: number): number {
    return this.pio(port, 2, IOREQ_READ, 0) & 0xffff;
  }
  inl(port: number): number {
    return this.pio(port, 4, IOREQ_READ, 0) >>> 0;
  }
  outb(port: number, v: number): void {
    this.pio(port, 1, IOREQ_WRITE, v & 0xff);
  }
  outw(port: number, v: number): void {
    this.pio(port, 2, IOREQ_WRITE, v & 0xffff);
  }
  outl(port: number, v: number): void {
    this.pio(port, 4, IOREQ_WRITE, v >>> 0);
  }

  /** rep ins{b,w,l}: `count` elements from `port` into guest RAM at `gpa` (one exit per 64Ki). */
  ins(port: number, size: 1 | 2 | 4, gpa: number, count: number): void {
    this.rep(port, size, gpa, count, IOREQ_READ);
  }

  /** rep outs{b,w,l}: `count` elements from guest RAM at `gpa` to `port`. */
  outs(port: number, size: 1 | 2 | 4, gpa: number, count: number): void {
    this.rep(port, size, gpa, count, IOREQ_WRITE);
  }

  private rep(port: number, size: 1 | 2 | 4, gpa: number, count: number, dir: number): void {
    port &= 0xffff;
    while (count > 0) {
      const n = Math.min(count, MAX_REP);
      this.counters.pio++;
      this.exit({ type: IOREQ_TYPE_PIO, addr: BigInt(port), size, dir, data: BigInt(gpa), count: n, dataIsPtr: true }, this.portCounters(port));
      gpa += n * size;
      count -= n;
    }
  }

  /** rep movs{b,w,l} from guest RAM at `gpa` to MMIO at `addr` (a framebuffer): one exit per
   * 64Ki elements, as one rep instruction makes one exit. */
  movsToMmio(addr: number, size: 1 | 2 | 4, gpa: number, count: number): void {
    while (count > 0) {
      const n = Math.min(count, MAX_REP);
      this.counters.mmio++;
      this.exit({ type: IOREQ_TYPE_COPY, addr: BigInt(addr), size, dir: IOREQ_WRITE, data: BigInt(gpa), count: n, dataIsPtr: true }, this.mmioCounters(addr));
      addr += n * size;
      gpa += n * size;
      count -= n;
    }
  }

  private mmio(addr: number, size: 1 | 2 | 4, dir: number, value: number): number {
    this.counters.mmio++;
    return Number(this.exit({ type: IOREQ_TYPE_COPY, addr: BigInt(addr), size, dir, data: BigInt(value >>> 0) }, this.mmioCounters(addr)));
  }

  readb(addr: number): number {
    return this.mmio(addr, 1, IOREQ_READ, 0) & 0xff;
  }
  readw(addr: number): number {
    return this.mmio(addr, 2, IOREQ_READ, 0) & 0xffff;
  }
  readl(addr: number): number {
    return this.mmio(addr, 4, IOREQ_READ, 0) >>> 0;
  }
  writeb(addr: number, v: number): void {
    this.mmio(addr, 1, IOREQ_WRITE, v & 0xff);
  }
  writew(addr: number, v: number): void {
    this.mmio(addr, 2, IOREQ_WRITE, v & 0xffff);
  }
  writel(addr: number, v: number): void {
    this.mmio(addr, 4, IOREQ_WRITE, v >>> 0);
  }
}

/** A device's register window, in I/O space or MMIO space: drivers are written once for both
 * (8139too's PIO and MMIO builds). */
export interface RegisterWindow {
  readonly kind: 'io' | 'mem';
  readonly base: number;
  r8(off: number): number;
  r16(off: number): number;
  r32(off: number): number;
  w8(off: number, v: number): void;
  w16(off: number, v: number): void;
  w32(off: number, v: number): void;
}

export function ioWindow(cpu: Cpu, base: number): RegisterWindow {
  return {
    kind: 'io',
    base,
    r8: (o) => cpu.inb(base + o),
    r16: (o) => cpu.inw(base + o),
    r32: (o) => cpu.inl(base + o),
    w8: (o, v) => cpu.outb(base + o, v),
    w16: (o, v) => cpu.outw(base + o, v),
    w32: (o, v) => cpu.outl(base + o, v),
  };
}

export function mmioWindow(cpu: Cpu, base: number): RegisterWindow {
  return {
    kind: 'mem',
    base,
    r8: (o) => cpu.readb(base + o),
    r16: (o) => cpu.readw(base + o),
    r32: (o) => cpu.readl(base + o),
    w8: (o, v) => cpu.writeb(base + o, v),
    w16: (o, v) => cpu.writew(base + o, v),
    w32: (o, v) => cpu.writel(base + o, v),
  };
}
