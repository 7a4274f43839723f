// The display adapter and the keyboard controller at register level, driven as a guest's
// drivers drive them (vgacon, bochs-drm, atkbd/i8042): QEMU's standard VGA (PCI 1234:1111,
// text mode at 0xB8000, CRTC, the attribute flip-flop, Bochs dispi, LFB in BAR 0) and the
// i8042 with its PS/2 keyboard and mouse. Then what a hostile guest does: absurd VBE modes, a
// BAR moved over RAM, register storms, a keyboard nobody reads.
import { describe, expect, it } from 'vitest';
import { makeMachine, MiB } from './helpers.js';
import { VgaState, W } from '../../stubdom/devices/vga/vga-shared.js';
import { VgaCore } from '../../stubdom/devices/vga/vga.js';
import { InputQueue, INPUT_QUEUE_EVENTS } from '../../stubdom/devices/i8042/input-queue.js';

const VGA_SLOT = 2;
const dispi = (cpu: { outw(p: number, v: number): void }, index: number, value: number) => {
  cpu.outw(0x1ce, index);
  cpu.outw(0x1cf, value);
};
const dispiRead = (cpu: { outw(p: number, v: number): void; inw(p: number): number }, index: number) => {
  cpu.outw(0x1ce, index);
  return cpu.inw(0x1cf);
};

function setup(vram = 16 * MiB) {
  const state = VgaState.create(vram);
  const t = makeMachine({ vga: state, ramBytes: 64 * MiB });
  return { ...t, state };
}

/** Read all bytes the controller has for the guest (as a polling driver does). */
function drain(cpu: { inb(p: number): number }): number[] {
  const out: number[] = [];
  for (let i = 0; i < 64 && cpu.inb(0x64) & 1; i++) out.push(cpu.inb(0x60));
  return out;
}

describe('standard VGA (1234:1111)', () => {
  it('sits at 00:02.0 as a VGA-compatible controller with the framebuffer in BAR 0', () => {
    const { cpu } = setup();
    expect(cpu.pciRead(VGA_SLOT, 0, 0x00, 4)).toBe(0x1111_1234);
    expect(cpu.pciRead(VGA_SLOT, 0, 0x08, 4) >>> 8).toBe(0x030000);
    // BAR 0 sizing: 16 MiB, prefetchable memory.
    cpu.pciWrite(VGA_SLOT, 0, 0x10, 4, 0xffff_ffff);
    expect(cpu.pciRead(VGA_SLOT, 0, 0x10, 4) >>> 0).toBe((~(16 * MiB - 1) | 0x8) >>> 0);
  });

  it('comes up in 80x25 colour text: cells at 0xB8000, cursor and start address in the CRTC', () => {
    const { cpu, state } = setup();
    expect(cpu.inb(0x3cc) & 1).toBe(1); // colour: CRTC at 0x3D4
    cpu.writew(0xb8000, 0x1f41); // 'A' white on blue
    cpu.writel(0xb8002, 0x0742_0743);
    expect([...state.vram.subarray(0, 6)]).toEqual([0x41, 0x1f, 0x43, 0x07, 0x42, 0x07]);
    expect(cpu.readw(0xb8000)).toBe(0x1f41);
    cpu.outb(0x3d4, 0x0e);
    cpu.outb(0x3d5, 0x01);
    cpu.outb(0x3d4, 0x0f);
    cpu.outb(0x3d5, 0x90); // row 5, column 0
    cpu.outw(0x3d4, 0x500c); // start address high byte 0x50 (word write: index + data)
    const g = VgaCore.textGeometry(state.regs);
    expect(g).toMatchObject({ cols: 80, rows: 25, cursor: 0x190, cursorOn: true, start: 0x5000 });
    cpu.outb(0x3d4, 0x0a);
    cpu.outb(0x3d5, 0x20); // cursor off
    expect(VgaCore.textGeometry(state.regs).cursorOn).toBe(false);
    // The mono window (0xB0000) does not decode in colour mode.
    expect(cpu.readb(0xb0000)).toBe(0xff);
  });

  it('resets the attribute controller flip-flop on a read of 0x3DA', () => {
    const { cpu, state } = setup();
    cpu.outb(0x3c0, 0x05); // index 5 (flip-flop now at data)
    cpu.inb(0x3da); // reset: the next write is an index again
    cpu.outb(0x3c0, 0x01);
    cpu.outb(0x3c0, 0x3a); // palette entry 1 = 0x3a
    cpu.outb(0x3c0, 0x20); // PAS on
    expect(state.regs[0x40 + 1]).toBe(0x3a);
    expect(state.regs[0x40 + 5]).toBe(0x05);
    // The retrace bit moves, so a wait-for-retrace loop ends.
    const seen = new Set([0, 1, 2, 3].map(() => cpu.inb(0x3da) & 8));
    expect(seen).toEqual(new Set([0, 8]));
  });

  it('sets a Bochs VBE mode and shows the linear framebuffer', () => {
    const { cpu, state } = setup();
    expect(dispiRead(cpu, 0)).toBe(0xb0c5);
    dispi(cpu, 4, 0x02); // GETCAPS
    expect([dispiRead(cpu, 1), dispiRead(cpu, 2), dispiRead(cpu, 3)]).toEqual([2560, 1600, 32]);
    dispi(cpu, 4, 0);
    dispi(cpu, 1, 1024);
    dispi(cpu, 2, 768);
    dispi(cpu, 3, 32);
    dispi(cpu, 4, 0x41); // enabled + LFB
    expect([state.words[W.VBE_ENABLED], state.words[W.VBE_XRES], state.words[W.VBE_YRES], state.words[W.VBE_BPP], state.words[W.VBE_PITCH]]).toEqual([1, 1024, 768, 32, 4096]);
    const lfb = (cpu.bar(VGA_SLOT, 0, 0) & ~0xf) >>> 0;
    expect(lfb).toBeGreaterThanOrEqual(0xe000_0000);
    cpu.writel(lfb + 4096 + 8, 0x00ff8000);
    expect(new DataView(state.vram.buffer).getUint32(4096 + 8, true)).toBe(0x00ff8000);
    expect(dispiRead(cpu, 10)).toBe(256); // 16 MiB in 64 KiB units
  });

  it('clamps absurd modes: 65535x65535, an unknown depth, offsets and banks past the end', () => {
    const { cpu, state, m } = setup();
    dispi(cpu, 1, 65535);
    dispi(cpu, 2, 65535);
    dispi(cpu, 3, 7);
    dispi(cpu, 4, 0x41);
    expect([state.words[W.VBE_XRES], state.words[W.VBE_YRES], state.words[W.VBE_BPP]]).toEqual([2560, 1600, 8]);
    dispi(cpu, 3, 32);
    // 2560 x 4 bytes x 1600 lines fits 16 MiB; a start far past the end does not.
    dispi(cpu, 9, 60000);
    dispi(cpu, 8, 60000);
    const w = state.words;
    expect(w[W.VBE_START]! + w[W.VBE_PITCH]! * (w[W.VBE_YRES]! - 1) + w[W.VBE_XRES]! * 4).toBeLessThanOrEqual(state.vram.length);
    dispi(cpu, 5, 9999);
    expect(dispiRead(cpu, 5)).toBe(255);
    // A 4 MiB card cannot hold 2560x1600x32: the height is cut to what fits.
    const small = setup(4 * MiB);
    dispi(small.cpu, 1, 2560);
    dispi(small.cpu, 2, 1600);
    dispi(small.cpu, 3, 32);
    dispi(small.cpu, 4, 0x41);
    expect(small.state.words[W.VBE_YRES]).toBe(Math.floor((4 * MiB) / (2560 * 4)));
    expect(m.metrics().vga!.clamped).toBeGreaterThan(0);
  });

  it('leaves a BAR moved over guest RAM dark, and maps it again when moved back', () => {
    const { cpu, state } = setup();
    const lfb = (cpu.bar(VGA_SLOT, 0, 0) & ~0xf) >>> 0;
    cpu.pciWrite(VGA_SLOT, 0, 0x10, 4, 0x0100_0000); // 16 MiB: inside the 64 MiB of RAM
    cpu.writel(0x0100_0000, 0x12345678);
    expect(state.vram[0]).not.toBe(0x78);
    cpu.pciWrite(VGA_SLOT, 0, 0x10, 4, lfb);
    cpu.writel(lfb, 0x12345678);
    expect(state.vram[0]).toBe(0x78);
  });

  it('survives register storms: every VGA and dispi port hammered with garbage', () => {
    const { cpu, state, m } = setup();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 8);
    const t0 = Date.now();
    for (let i = 0; i < 100_000; i++) {
      const port = i & 1 ? 0x3b0 + (rnd() % 0x30) : 0x1ce + (rnd() & 1);
      if (rnd() & 1) cpu.outw(port, rnd() & 0xffff);
      else cpu.inb(port);
    }
    expect(Date.now() - t0).toBeLessThan(20_000);
    const g = VgaCore.textGeometry(state.regs);
    expect(g.cols).toBeLessThanOrEqual(132);
    expect(g.rows).toBeLessThanOrEqual(60);
    const w = state.words;
    expect(w[W.VBE_XRES]).toBeLessThanOrEqual(2560);
    expect(w[W.VBE_START]! + w[W.VBE_PITCH]! * Math.max(0, w[W.VBE_YRES]! - 1)).toBeLessThanOrEqual(state.vram.length);
    // The rest of the machine still answers.
    expect(cpu.pciRead(0, 0, 0, 4)).toBe(0x1237_8086);
    expect(m.metrics().dispatch).toBeDefined();
  });

  it('vga = "none": no adapter, slot 2 empty, the ports float', () => {
    const { cpu } = makeMachine();
    expect(cpu.pciRead(VGA_SLOT, 0, 0, 4) >>> 0).toBe(0xffff_ffff);
    expect(cpu.inb(0x3cc)).toBe(0xff);
  });
});

describe('i8042 keyboard controller', () => {
  it('passes the self tests and resets and identifies the keyboard (translated, as on a PC)', () => {
    const { cpu } = setup();
    cpu.outb(0x64, 0xaa);
    expect(drain(cpu)).toEqual([0x55]);
    cpu.outb(0x64, 0xab);
    expect(drain(cpu)).toEqual([0x00]);
    cpu.outb(0x64, 0x20);
    expect(drain(cpu)).toEqual([0x47]);
    cpu.outb(0x60, 0xff);
    expect(drain(cpu)).toEqual([0xfa, 0xaa]);
    cpu.outb(0x60, 0xf2);
    expect(drain(cpu)).toEqual([0xfa, 0xab, 0x41]); // 0x83 comes out translated
  });

  it('sends set 2 keys as set 1 with translation, raw set 2 without, and raises IRQ 1', () => {
    const { cpu, m, sink } = setup();
    const k = m.i8042!;
    k.key(0x1e, true); // 'a'
    expect(sink.levels.get(1)).toBe(true);
    k.key(0x1e, false);
    k.key(0x14d, true); // right arrow (E0 4D)
    k.key(0x14d, false);
    expect(drain(cpu)).toEqual([0x1e, 0x9e, 0xe0, 0x4d, 0xe0, 0xcd]);
    expect(sink.levels.get(1)).toBe(false);
    cpu.outb(0x64, 0x60);
    cpu.outb(0x60, 0x07); // translation off
    k.key(0x1e, true);
    k.key(0x1e, false);
    expect(drain(cpu)).toEqual([0x1c, 0xf0, 0x1c]);
  });

  it('delivers mouse packets on IRQ 12 once reporting is on', () => {
    const { cpu, m, sink } = setup();
    cpu.outb(0x64, 0xd4);
    cpu.outb(0x60, 0xf4);
    expect(drain(cpu)).toEqual([0xfa]);
    m.i8042!.pointer(100, 100, 0);
    m.i8042!.pointer(110, 90, 1);
    expect(sink.levels.get(12)).toBe(true);
    expect(drain(cpu).slice(-3)).toEqual([0x09, 10, 10]);
  });

  it('drops keys a guest never reads instead of growing', () => {
    const { cpu, m } = setup();
    for (let i = 0; i < 10_000; i++) m.i8042!.key(0x1e, i % 2 === 0);
    expect(m.metrics().i8042!.dropped).toBeGreaterThan(0);
    expect(drain(cpu).length).toBeLessThanOrEqual(64);
  });

  it('carries viewer input across threads in a bounded queue', () => {
    const q = new InputQueue();
    let accepted = 0;
    for (let i = 0; i < INPUT_QUEUE_EVENTS + 100; i++) if (q.key(0x1e, true)) accepted++;
    expect(accepted).toBe(INPUT_QUEUE_EVENTS);
    expect(q.dropped).toBe(100);
    const got: string[] = [];
    const peer = new InputQueue(q.buffer);
    expect(peer.drain({ key: (k, d) => got.push(`${k}${d}`), pointer: () => {} }, 1000)).toBe(INPUT_QUEUE_EVENTS);
    expect(got[0]).toBe('30true');
    expect(q.pointer(640, 480, 5)).toBe(true);
    peer.drain({ key: () => {}, pointer: (x, y, b) => got.push(`${x},${y},${b}`) });
    expect(got.at(-1)).toBe('640,480,5');
  });
});
