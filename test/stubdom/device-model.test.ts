// The machine a device model emulates: guest memory bounds, the address buses, interrupt line
// sharing, the ioreq dispatcher's validation, and the ioreq server in step mode (slots and the
// buffered page), all without threads.
import { describe, expect, it } from 'vitest';
import {
  createIoreq,
  ioreq,
  ioreqGetState,
  ioreqPciAddr,
  ioreqSetState,
  IOREQ_READ,
  IOREQ_SIZE,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_WRITE,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
  type Ioreq,
} from '../../drivers/wire/ioreq.js';
import { BufferedIoreqWriter } from '../../drivers/wire/buffered-ioreq.js';
import { AddressBus, BusConflictError, type IoHandler } from '../../stubdom/device-model/address-bus.js';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { IrqLines, RecordingInterruptSink } from '../../stubdom/device-model/interrupts.js';
import { IoreqDispatcher } from '../../stubdom/device-model/ioreq-dispatch.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { silentLogger } from '../../stubdom/device-model/log.js';
import { makeMachine } from './helpers.js';

class Regs implements IoHandler {
  readonly bytes = new Uint8Array(16);
  reads = 0;
  writes: [number, number, number][] = [];
  read(off: number, size: number): number {
    this.reads++;
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.bytes[off + i]! << (8 * i);
    return v >>> 0;
  }
  write(off: number, size: number, v: number): void {
    this.writes.push([off, size, v]);
    for (let i = 0; i < size; i++) this.bytes[off + i] = (v >>> (8 * i)) & 0xff;
  }
}

function req(f: Partial<Ioreq>): Ioreq {
  return Object.assign(createIoreq(), { count: 1, size: 1 }, f);
}

describe('guest memory', () => {
  it('refuses anything outside guest RAM and copies nothing then', () => {
    const buf = new SharedArrayBuffer(3 * 4096);
    // Two regions with a hole between them (gpa 0x2000..0x10000 is not RAM).
    const mem = new GuestMemory(buf, [
      { gpa: 0, size: 0x2000, offset: 0 },
      { gpa: 0x10000, size: 0x1000, offset: 0x2000 },
    ]);
    const b = new Uint8Array([1, 2, 3, 4]);
    expect(mem.write(0x1ffc, b)).toBe(true);
    expect(mem.write(0x1ffe, b)).toBe(false); // runs into the hole
    expect(mem.bytes[0x1ffe]).toBe(3); // untouched by the refused write
    expect(mem.write(0x10000, b)).toBe(true);
    expect(mem.bytes[0x2000]).toBe(1);
    expect(mem.write(0x10ffe, b)).toBe(false); // past the end
    expect(mem.write(-4, b)).toBe(false);
    expect(mem.write(2 ** 60, b)).toBe(false);
    expect(mem.write(0.5, b)).toBe(false);
    expect(mem.read(0x5000, new Uint8Array(4))).toBe(false);
    expect(mem.readU32(0x1ffc)).toBe(0x04030201);
    expect(mem.readU32(0x1ffe)).toBeUndefined();
    expect(mem.isRam(0, 0x2000)).toBe(true);
    expect(mem.isRam(0, 0x2001)).toBe(false);
    expect(() => new GuestMemory(buf, [{ gpa: 0, size: 5 * 4096, offset: 0 }])).toThrow(RangeError);
    expect(() => new GuestMemory(buf, [{ gpa: 0, size: 4096, offset: 0 }, { gpa: 100, size: 4096, offset: 4096 }])).toThrow(RangeError);
  });

  it('spans adjacent regions that are contiguous in guest-physical space', () => {
    const buf = new ArrayBuffer(8192);
    const mem = new GuestMemory(buf, [
      { gpa: 0x1000, size: 0x1000, offset: 0x1000 }, // mapped in reverse order in the buffer
      { gpa: 0x2000, size: 0x1000, offset: 0 },
    ]);
    expect(mem.write(0x1ffe, new Uint8Array([9, 8, 7, 6]))).toBe(true);
    expect([...mem.bytes.subarray(0x1ffe, 0x2000)]).toEqual([9, 8]);
    expect([...mem.bytes.subarray(0, 2)]).toEqual([7, 6]);
    const back = new Uint8Array(4);
    expect(mem.read(0x1ffe, back)).toBe(true);
    expect([...back]).toEqual([9, 8, 7, 6]);
  });
});

describe('address bus', () => {
  it('refuses overlapping registrations and reads open bus as all ones', () => {
    const bus = new AddressBus('pio', 0x10000);
    const a = new Regs();
    bus.register(0x100, 8, a, 'a');
    expect(() => bus.register(0x104, 8, new Regs(), 'b')).toThrow(BusConflictError);
    expect(() => bus.register(0xfffc, 8, new Regs(), 'c')).toThrow(RangeError);
    expect(bus.read(0x200, 1)).toBe(0xff);
    expect(bus.read(0x200, 2)).toBe(0xffff);
    expect(bus.read(0x200, 4)).toBe(0xffffffff);
    bus.write(0x200, 4, 0x12345678); // vanishes
    bus.write(0x100, 4, 0xdeadbeef);
    expect(bus.read(0x100, 4)).toBe(0xdeadbeef);
    expect(bus.read(0x102, 2)).toBe(0xdead);
  });

  it('splits an access that straddles a range boundary into bytes', () => {
    const bus = new AddressBus('pio', 0x10000);
    const a = new Regs();
    bus.register(0x100, 4, a, 'a');
    a.bytes.set([1, 2, 3, 4]);
    expect(bus.read(0x102, 4)).toBe(0xffff0403);
    bus.write(0x103, 2, 0xaabb);
    expect(a.writes.at(-1)).toEqual([3, 1, 0xbb]);
  });
});

describe('interrupt lines', () => {
  it('ORs shared sources and reports only transitions', () => {
    const sink = new RecordingInterruptSink();
    const lines = new IrqLines(sink);
    const a = lines.source(10, 'a');
    const b = lines.source(10, 'b');
    a.raise();
    b.raise();
    expect(sink.log).toEqual(['+10']);
    a.lower();
    expect(sink.level(10)).toBe(true);
    b.lower();
    expect(sink.log).toEqual(['+10', '-10']);
    b.raise();
    b.moveTo(11); // re-routed while asserted
    expect(sink.log).toEqual(['+10', '-10', '+10', '-10', '+11']);
    const c = lines.source(99, 'bad line'); // not connected, never reaches the sink
    c.raise();
    expect(sink.log.length).toBe(5);
    expect(c.edges).toBe(1);
  });
});

describe('ioreq dispatcher', () => {
  function setup() {
    const mem = new GuestMemory(new SharedArrayBuffer(64 * 1024));
    const pio = new AddressBus('pio', 0x10000);
    const mmio = new AddressBus('mmio', 2 ** 52);
    const port = new Regs();
    const dev = new Regs();
    const counter = { exits: 0 };
    pio.register(0x300, 16, port, 'port', counter);
    mmio.register(0xf000_0000, 16, dev, 'dev', counter);
    const d = new IoreqDispatcher({ pio, mmio, memory: mem, log: silentLogger });
    return { mem, port, dev, d, counter };
  }

  it('does single PIO and MMIO accesses and answers reads in data', () => {
    const { d, port, dev, counter } = setup();
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 2, dir: IOREQ_WRITE, data: 0x1234n }));
    expect(d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 2, dir: IOREQ_READ }))).toBe(0x1234n);
    d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_0000n, size: 8, dir: IOREQ_WRITE, data: 0x1122334455667788n }));
    expect(d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_0004n, size: 4, dir: IOREQ_READ }))).toBe(0x11223344n);
    expect(d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_0000n, size: 8, dir: IOREQ_READ }))).toBe(0x1122334455667788n);
    expect(port.bytes[0]).toBe(0x34);
    expect(dev.bytes[7]).toBe(0x11);
    expect(counter.exits).toBe(5);
    // Unknown types are acknowledged and ignored.
    expect(d.handle(req({ type: IOREQ_TYPE_INVALIDATE, data: 7n }))).toBe(7n);
  });

  it('does rep ins/outs with the direction flag, through guest RAM', () => {
    const { d, mem, port, dev, counter } = setup();
    mem.bytes.set([1, 0, 2, 0, 3, 0], 0x1000);
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x302n, size: 2, dir: IOREQ_WRITE, data: 0x1000n, count: 3, dataIsPtr: true }));
    expect(port.writes.map((w) => w[2])).toEqual([1, 2, 3]);
    expect(counter.exits).toBe(1); // one exit for the whole rep
    port.writes.length = 0;
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x302n, size: 2, dir: IOREQ_WRITE, data: 0x1004n, count: 3, dataIsPtr: true, df: true }));
    expect(port.writes.map((w) => w[2])).toEqual([3, 2, 1]);
    port.bytes.set([0xaa, 0xbb], 4);
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x304n, size: 2, dir: IOREQ_READ, data: 0x2000n, count: 4, dataIsPtr: true }));
    expect([...mem.bytes.subarray(0x2000, 0x2008)]).toEqual([0xaa, 0xbb, 0xaa, 0xbb, 0xaa, 0xbb, 0xaa, 0xbb]);
    // rep movs from RAM into MMIO and back
    mem.bytes.set([9, 9, 9, 9, 8, 8, 8, 8], 0x3000);
    d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_0008n, size: 4, dir: IOREQ_WRITE, data: 0x3000n, count: 2, dataIsPtr: true }));
    expect([...dev.bytes.subarray(8, 16)]).toEqual([9, 9, 9, 9, 8, 8, 8, 8]);
    d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_000cn, size: 4, dir: IOREQ_READ, data: 0x4004n, count: 2, dataIsPtr: true, df: true }));
    expect([...mem.bytes.subarray(0x4000, 0x4008)]).toEqual([9, 9, 9, 9, 8, 8, 8, 8]);
  });

  it('refuses impossible requests: answers all ones, touches nothing', () => {
    const { d, mem, port } = setup();
    const before = Buffer.from(mem.bytes).toString('hex');
    expect(d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 3, dir: IOREQ_READ }))).toBe(0xffffffn);
    expect(d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 8, dir: IOREQ_READ }))).toBe(0xffffffffffffffffn);
    expect(d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0xffffn, size: 2, dir: IOREQ_READ }))).toBe(0xffffn);
    expect(d.handle(req({ type: IOREQ_TYPE_COPY, addr: 1n << 62n, size: 4, dir: IOREQ_READ }))).toBe(0xffffffffn);
    // rep buffer partly outside RAM (64 KiB of RAM): nothing moves at all
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 2, dir: IOREQ_READ, data: 0xfff0n, count: 100, dataIsPtr: true }));
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 2, dir: IOREQ_READ, data: 0x10n, count: 100, dataIsPtr: true, df: true }));
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 4, dir: IOREQ_READ, data: 0n, count: 1 << 30, dataIsPtr: true }));
    d.handle(req({ type: IOREQ_TYPE_PIO, addr: 0x300n, size: 4, dir: IOREQ_READ, data: 1n << 63n, count: 2, dataIsPtr: true }));
    d.handle(req({ type: IOREQ_TYPE_COPY, addr: 0xf000_0000n, size: 4, dir: IOREQ_READ, data: 0xfffcn, count: 2, dataIsPtr: true }));
    expect(Buffer.from(mem.bytes).toString('hex')).toBe(before);
    expect(port.reads).toBe(0);
    expect(d.metrics.refused).toBe(9);
    // PCI config with data_is_ptr, or without a PCI bus: refused / all ones.
    expect(d.handle(req({ type: IOREQ_TYPE_PCI_CONFIG, addr: 0n, size: 4, dir: IOREQ_READ }))).toBe(0xffffffffn);
  });

  it('routes IOREQ_TYPE_PCI_CONFIG to the PCI bus', () => {
    const { m } = makeMachine();
    const d = m.dispatcher;
    const id = d.handle(req({ type: IOREQ_TYPE_PCI_CONFIG, addr: ioreqPciAddr({ segment: 0, bus: 0, dev: 1, fn: 1, reg: 0 }), size: 4, dir: IOREQ_READ }));
    expect(id).toBe(0x70108086n);
    const absent = d.handle(req({ type: IOREQ_TYPE_PCI_CONFIG, addr: ioreqPciAddr({ segment: 0, bus: 0, dev: 9, fn: 0, reg: 0 }), size: 2, dir: IOREQ_READ }));
    expect(absent).toBe(0xffffn);
    const otherSeg = d.handle(req({ type: IOREQ_TYPE_PCI_CONFIG, addr: ioreqPciAddr({ segment: 1, bus: 0, dev: 0, fn: 0, reg: 0 }), size: 4, dir: IOREQ_READ }));
    expect(otherSeg).toBe(0xffffffffn);
    const ext = d.handle(req({ type: IOREQ_TYPE_PCI_CONFIG, addr: ioreqPciAddr({ segment: 0, bus: 0, dev: 0, fn: 0, reg: 0x100 }), size: 4, dir: IOREQ_READ }));
    expect(ext).toBe(0xffffffffn);
  });
});

describe('ioreq server, step mode', () => {
  it('serves READY slots, answers in place and leaves other states alone', () => {
    const { m, cpu } = makeMachine({ serial: [{}] });
    void cpu;
    const page = new SharedArrayBuffer(4096);
    const view = new DataView(page);
    const u8 = new Uint8Array(page);
    const server = m.createIoreqServer({ page, vcpus: 4, log: silentLogger });
    // vCPU 0: write the UART scratch register; vCPU 2: read it; vCPU 1 idle; vCPU 3 INPROCESS garbage.
    const publish = (v: number, r: Partial<Ioreq>) => {
      ioreq.encode(view, v * IOREQ_SIZE, req({ ...r, state: STATE_IOREQ_NONE }));
      ioreqSetState(u8, v * IOREQ_SIZE, STATE_IOREQ_READY);
    };
    publish(0, { type: IOREQ_TYPE_PIO, addr: 0x3ffn, size: 1, dir: IOREQ_WRITE, data: 0x5an, vpEport: 7 });
    ioreq.encode(view, 3 * IOREQ_SIZE, req({ type: IOREQ_TYPE_PIO, addr: 0x3ffn, size: 1, dir: IOREQ_WRITE, data: 0x11n, state: STATE_IOREQ_INPROCESS }));
    expect(server.step()).toBe(1);
    expect(ioreqGetState(u8, 0)).toBe(STATE_IORESP_READY);
    expect(ioreqGetState(u8, 3 * IOREQ_SIZE)).toBe(STATE_IOREQ_INPROCESS);
    publish(2, { type: IOREQ_TYPE_PIO, addr: 0x3ffn, size: 1, dir: IOREQ_READ, data: 0xdeadn });
    expect(server.step()).toBe(1);
    const answer = ioreq.decode(view, 2 * IOREQ_SIZE);
    expect(answer.state).toBe(STATE_IORESP_READY);
    expect(answer.data).toBe(0x5an);
    // Fields the vCPU owns are untouched.
    expect(answer.addr).toBe(0x3ffn);
    expect(answer.type).toBe(IOREQ_TYPE_PIO);
    expect(server.step()).toBe(0);
    expect(server.metrics.served).toBe(2);
  });

  it('answers slots full of random bytes without faulting', () => {
    const { m } = makeMachine({ serial: [{}], nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }] });
    const page = new SharedArrayBuffer(4096);
    const u8 = new Uint8Array(page);
    const server = m.createIoreqServer({ page, vcpus: 128, log: silentLogger });
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    let served = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 4096; i++) u8[i] = rnd() >>> 24;
      // Make every slot READY (keeping the random flag bits) and the type mostly valid.
      for (let v = 0; v < 128; v++) {
        u8[v * IOREQ_SIZE + 30] = (u8[v * IOREQ_SIZE + 30]! & 0xf0) | STATE_IOREQ_READY;
        u8[v * IOREQ_SIZE + 31] = rnd() % 4;
        if (rnd() & 1) u8[v * IOREQ_SIZE + 20] = [1, 2, 4, 8][rnd() % 4]!; // plausible size
        for (let b = 21; b < 24; b++) u8[v * IOREQ_SIZE + b] = 0;
      }
      served += server.step();
      for (let v = 0; v < 128; v++) expect(ioreqGetState(u8, v * IOREQ_SIZE)).toBe(STATE_IORESP_READY);
    }
    expect(served).toBe(50 * 128);
    expect(server.metrics.faults).toBe(0);
  });

  it('drains the buffered ioreq page before the synchronous slots', () => {
    const { m } = makeMachine({ serial: [{}] });
    const page = new SharedArrayBuffer(4096);
    const bufPage = new SharedArrayBuffer(4096);
    const server = m.createIoreqServer({ page, vcpus: 1, bufferedPage: bufPage, log: silentLogger });
    const w = new BufferedIoreqWriter(bufPage);
    expect(w.send(IOREQ_TYPE_PIO, 0x3ff, 1, 0x33)).toBe(true); // UART scratch
    const view = new DataView(page);
    ioreq.encode(view, 0, req({ type: IOREQ_TYPE_PIO, addr: 0x3ffn, size: 1, dir: IOREQ_READ }));
    ioreqSetState(new Uint8Array(page), 0, STATE_IOREQ_READY);
    expect(server.step()).toBe(2);
    expect(ioreq.decode(view, 0).data).toBe(0x33n);
    expect(server.metrics.buffered).toBe(1);
    // Impossible pointers stop the buffered page, not the device model.
    new DataView(bufPage).setUint32(4, 9999, true);
    expect(server.step()).toBe(0);
    expect(server.step()).toBe(0);
  });
});
