// Saving and restoring the stub domain's device models (stubdom/machine-state.ts): a machine
// saved in the middle of things (an IDE read half transferred by PIO, a DMA read issued but not
// started, UART registers and received bytes, PIRQ routes, BARs) goes on from there when the
// state is loaded into a fresh machine built from the same config; and a damaged, truncated,
// newer or foreign state is refused naming what is wrong.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { DeviceStateError, StateReader, StateWriter, packPages, unpackPages } from '../../stubdom/device-model/device-state.js';
import { loadMachine, saveMachine } from '../../stubdom/machine-state.js';
import { VgaState } from '../../stubdom/devices/vga/vga-shared.js';
import { makeImage, makeMachine, MiB, scratchDir, type TestMachine } from './helpers.js';

const PRI = 0x1f0;
const COM1 = 0x3f8;

describe('device model save and restore', () => {
  let dir = '';
  let cleanup = () => {};
  let disk = '';
  let data: Buffer;
  const build = (memory?: GuestMemory): TestMachine =>
    makeMachine({ memory, disks: [{ index: 0, path: disk }], nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }], serial: [{}], vga: VgaState.create(1 * MiB) });

  beforeEach(() => {
    ({ dir, cleanup } = scratchDir());
    disk = `${dir}/disk.img`;
    data = makeImage(disk, 1 * MiB);
  });
  afterEach(() => cleanup());

  it('a PIO read half transferred goes on in the restored machine from the word it stopped at', () => {
    const a = build();
    a.cpu.outb(PRI + 2, 2); // two sectors
    a.cpu.outb(PRI + 3, 5);
    a.cpu.outb(PRI + 4, 0);
    a.cpu.outb(PRI + 5, 0);
    a.cpu.outb(PRI + 6, 0xe0);
    a.cpu.outb(PRI + 7, 0x20); // READ SECTORS
    const got: number[] = [];
    for (let i = 0; i < 100; i++) got.push(a.cpu.inw(PRI));
    const state = saveMachine(a.m);
    const b = build();
    loadMachine(b.m, state);
    expect(b.cpu.inb(PRI + 7) & 0x08).toBe(0x08); // DRQ: data still waiting
    for (let i = 100; i < 512; i++) got.push(b.cpu.inw(PRI));
    const bytes = Buffer.from(Uint16Array.from(got).buffer);
    expect(bytes.equals(data.subarray(5 * 512, 7 * 512))).toBe(true);
    expect(b.cpu.inb(PRI + 7) & 0x88).toBe(0); // done: neither BSY nor DRQ
  });

  it('a DMA read issued but not started is issued again and completes after the restore', () => {
    const a = build();
    const bm = a.cpu.bar(1, 1, 4);
    a.cpu.enableBusMaster(1, 1);
    const PRD = 0x10000;
    const BUF = 0x20000;
    a.mem.writeU32(PRD, BUF);
    a.mem.writeU32(PRD + 4, 1024 | 0x8000_0000);
    a.cpu.outl(bm + 4, PRD);
    a.cpu.outb(bm, 0x08); // direction: to memory, not started
    a.cpu.outb(PRI + 2, 2);
    a.cpu.outb(PRI + 3, 9);
    a.cpu.outb(PRI + 4, 0);
    a.cpu.outb(PRI + 5, 0);
    a.cpu.outb(PRI + 6, 0xe0);
    a.cpu.outb(PRI + 7, 0xc8); // READ DMA
    const state = saveMachine(a.m);
    // The guest's RAM travels separately: the new machine gets a copy of it.
    const ram = new SharedArrayBuffer(16 * MiB);
    new Uint8Array(ram).set(a.mem.bytes);
    const b = build(new GuestMemory(ram));
    loadMachine(b.m, state);
    expect(b.m.ide.channels[0]!.bm.hasPending()).toBe(true);
    b.cpu.outb(bm, 0x09); // START
    expect(b.cpu.inb(bm + 2) & 0x02).toBe(0);
    const got = Buffer.from(new Uint8Array(ram, BUF, 1024));
    expect(got.equals(data.subarray(9 * 512, 11 * 512))).toBe(true);
    expect(b.cpu.inb(bm + 2) & 0x04).toBe(0x04); // the interrupt bit
    expect(b.sink.level(14)).toBe(true);
  });

  it('UART registers, received bytes and its interrupt line come back', () => {
    const a = build();
    a.cpu.outb(COM1 + 7, 0x5a); // scratch
    a.cpu.outb(COM1 + 3, 0x03); // 8N1
    a.cpu.outb(COM1 + 2, 0x01); // FIFO on
    a.cpu.outb(COM1 + 4, 0x08); // OUT2: interrupts reach the line
    a.cpu.outb(COM1 + 1, 0x01); // RX interrupts
    a.m.serials[0]!.receive(Buffer.from('hi'));
    expect(a.sink.level(4)).toBe(true);
    const b = build();
    loadMachine(b.m, saveMachine(a.m));
    expect(b.sink.level(4)).toBe(true);
    expect(b.cpu.inb(COM1 + 7)).toBe(0x5a);
    expect(b.cpu.inb(COM1 + 3)).toBe(0x03);
    expect(String.fromCharCode(b.cpu.inb(COM1), b.cpu.inb(COM1))).toBe('hi');
    expect(b.sink.level(4)).toBe(false);
  });

  it('refuses a truncated state, flipped bytes in a section, a newer format and a machine of another shape', () => {
    const a = build();
    a.cpu.outb(COM1 + 7, 0x11);
    const state = saveMachine(a.m);
    expect(() => loadMachine(build().m, state.subarray(0, state.length - 3))).toThrow(DeviceStateError);
    const newer = state.slice();
    newer[4] = 2;
    expect(() => loadMachine(build().m, newer)).toThrow(/format version 2, this xenode reads version 1/);
    // A byte of the PCI host bridge's vendor id: refused as config for another device.
    const r = new StateReader(state);
    expect(r.has('pci.host')).toBe(true);
    const flipped = state.slice();
    const at = Buffer.from(flipped).indexOf(Buffer.from([0x86, 0x80, 0x37, 0x12])); // i440FX 8086:1237
    flipped[at] = flipped[at]! ^ 0xff;
    expect(() => loadMachine(build().m, flipped)).toThrow(/pci.host: config byte 0x0 is 0x79/);
    const other = makeMachine({ disks: [{ index: 0, path: disk }], serial: [{}] });
    expect(() => loadMachine(other.m, state)).toThrow(/emulated NICs/);
  });

  it('the field codec: names, types, ranges and leftovers are checked', () => {
    const w = new StateWriter();
    w.section('dev', 3, (f) => f.u8('a', 7).bool('b', true).bytes('c', Uint8Array.of(1, 2)));
    const blob = w.finish();
    const ok = new StateReader(blob).section('dev', 3);
    expect([ok.u8('a'), ok.bool('b'), Array.from(ok.bytes('c', 2))]).toEqual([7, true, [1, 2]]);
    ok.end();
    expect(() => new StateReader(blob).section('dev', 4)).toThrow(/version 3, this device model reads version 4/);
    expect(() => new StateReader(blob).section('dev', 3).u8('a', 5)).toThrow(/a = 7 is outside 0..5/);
    expect(() => new StateReader(blob).section('dev', 3).bool('a')).toThrow(/a is a u8, expected a bool/);
    const left = new StateReader(blob).section('dev', 3);
    left.u8('a');
    expect(() => left.end()).toThrow(/unexpected field b/);
    const bad = blob.slice();
    bad[bad.length - 3] = 200; // the byte field's length now runs past its section
    expect(() => new StateReader(bad)).toThrow(/runs past/);
    const mem = new Uint8Array(16384);
    mem[5000] = 9;
    const packed = packPages(mem);
    expect(packed.length).toBe(4 + 4096);
    const back = new Uint8Array(16384);
    unpackPages(packed, back, 'vram');
    expect(back[5000]).toBe(9);
    expect(() => unpackPages(packed, new Uint8Array(4096), 'vram')).toThrow(/page 1 is outside its 1 pages/);
  });
});
