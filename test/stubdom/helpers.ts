// A "guest CPU" for device-model tests: every port/MMIO access becomes an ioreq_t handed to the
// machine's dispatcher, exactly as the ioreq server would hand it over, so the tests drive the
// devices at register level the way a guest driver does.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIoreq, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_WRITE, type Ioreq } from '../../drivers/wire/ioreq.js';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { RecordingInterruptSink } from '../../stubdom/device-model/interrupts.js';
import { silentLogger, type DeviceLogger } from '../../stubdom/device-model/log.js';
import { PcMachine, type MachineConfig } from '../../stubdom/machine.js';
import { pciConfigAddress } from '../../stubdom/devices/pci/config-mechanism.js';

export const MiB = 1024 * 1024;

export class GuestCpu {
  constructor(readonly m: PcMachine) {}

  private io(type: number, addr: number | bigint, size: number, dir: number, data: bigint, ptr?: { count: number; df?: boolean }): bigint {
    const r: Ioreq = createIoreq();
    r.type = type;
    r.addr = BigInt(addr);
    r.size = size;
    r.dir = dir;
    r.data = data;
    r.count = ptr?.count ?? 1;
    r.dataIsPtr = !!ptr;
    r.df = ptr?.df ?? false;
    return this.m.dispatcher.handle(r);
  }

  inb(port: number): number {
    return Number(this.io(IOREQ_TYPE_PIO, port, 1, IOREQ_READ, 0n));
  }
  inw(port: number): number {
    return Number(this.io(IOREQ_TYPE_PIO, port, 2, IOREQ_READ, 0n));
  }
  inl(port: number): number {
    return Number(this.io(IOREQ_TYPE_PIO, port, 4, IOREQ_READ, 0n));
  }
  outb(port: number, v: number): void {
    this.io(IOREQ_TYPE_PIO, port, 1, IOREQ_WRITE, BigInt(v & 0xff));
  }
  outw(port: number, v: number): void {
    this.io(IOREQ_TYPE_PIO, port, 2, IOREQ_WRITE, BigInt(v & 0xffff));
  }
  outl(port: number, v: number): void {
    this.io(IOREQ_TYPE_PIO, port, 4, IOREQ_WRITE, BigInt(v >>> 0));
  }
  /** rep insw/insl into guest memory. */
  ins(port: number, size: number, gpa: number, count: number, df = false): void {
    this.io(IOREQ_TYPE_PIO, port, size, IOREQ_READ, BigInt(gpa), { count, df });
  }
  /** rep outsw/outsl from guest memory. */
  outs(port: number, size: number, gpa: number, count: number, df = false): void {
    this.io(IOREQ_TYPE_PIO, port, size, IOREQ_WRITE, BigInt(gpa), { count, df });
  }

  readb(gpa: number): number {
    return Number(this.io(IOREQ_TYPE_COPY, gpa, 1, IOREQ_READ, 0n));
  }
  readw(gpa: number): number {
    return Number(this.io(IOREQ_TYPE_COPY, gpa, 2, IOREQ_READ, 0n));
  }
  readl(gpa: number): number {
    return Number(this.io(IOREQ_TYPE_COPY, gpa, 4, IOREQ_READ, 0n));
  }
  writeb(gpa: number, v: number): void {
    this.io(IOREQ_TYPE_COPY, gpa, 1, IOREQ_WRITE, BigInt(v & 0xff));
  }
  writew(gpa: number, v: number): void {
    this.io(IOREQ_TYPE_COPY, gpa, 2, IOREQ_WRITE, BigInt(v & 0xffff));
  }
  writel(gpa: number, v: number): void {
    this.io(IOREQ_TYPE_COPY, gpa, 4, IOREQ_WRITE, BigInt(v >>> 0));
  }

  /** Config read through mechanism #1, as Linux's pci_conf1_read does. */
  pciRead(dev: number, fn: number, reg: number, size: 1 | 2 | 4): number {
    this.outl(0xcf8, pciConfigAddress(0, dev, fn, reg));
    const port = 0xcfc + (reg & 3);
    return size === 1 ? this.inb(port) : size === 2 ? this.inw(port) : this.inl(port);
  }

  pciWrite(dev: number, fn: number, reg: number, size: 1 | 2 | 4, v: number): void {
    this.outl(0xcf8, pciConfigAddress(0, dev, fn, reg));
    const port = 0xcfc + (reg & 3);
    if (size === 1) this.outb(port, v);
    else if (size === 2) this.outw(port, v);
    else this.outl(port, v);
  }

  /** BAR base as the guest sees it. */
  bar(dev: number, fn: number, i: number): number {
    const v = this.pciRead(dev, fn, 0x10 + 4 * i, 4);
    return v & 1 ? v & 0xfffffffc : (v & 0xfffffff0) >>> 0;
  }

  /** pci_set_master(). */
  enableBusMaster(dev: number, fn: number): void {
    this.pciWrite(dev, fn, 0x04, 2, this.pciRead(dev, fn, 0x04, 2) | 0x4);
  }
}

export interface TestMachine {
  m: PcMachine;
  cpu: GuestCpu;
  mem: GuestMemory;
  sink: RecordingInterruptSink;
}

export function makeMachine(opts: Partial<MachineConfig> & { ramBytes?: number; log?: DeviceLogger } = {}): TestMachine {
  const mem = opts.memory ?? new GuestMemory(new SharedArrayBuffer(opts.ramBytes ?? 16 * MiB));
  const sink = new RecordingInterruptSink();
  const m = new PcMachine({ ...opts, memory: mem, irqSink: opts.irqSink ?? sink, log: opts.log ?? silentLogger });
  return { m, cpu: new GuestCpu(m), mem, sink };
}

/** A scratch directory removed by the returned cleanup. */
export function scratchDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-stubdom-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes an image whose every 512-byte sector starts with "SECT" + its number. */
export function makeImage(path: string, bytes: number, sectorSize = 512): Buffer {
  const b = Buffer.alloc(bytes);
  for (let s = 0; s * sectorSize < bytes; s++) {
    b.write(`SECT${s}`, s * sectorSize, 'latin1');
    for (let i = 16; i < sectorSize && s * sectorSize + i < bytes; i++) b[s * sectorSize + i] = (s + i) & 0xff;
  }
  writeFileSync(path, b);
  return b;
}
