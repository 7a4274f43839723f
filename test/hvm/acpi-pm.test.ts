// The stub domain's PIIX4 ACPI PM function as a guest's ACPI code drives it: hvmloader's setup
// (PMBA 0xB000, decode on, SCI on IRQ 9), the power and sleep buttons latched in PM1a_STS and
// raising the SCI only while enabled, write-1-to-clear, S5 soft-off through PM1a_CNT, the PM
// timer counting; and a guest moving or disabling the block, or asking for S3.
import { describe, expect, it } from 'vitest';
import { makeMachine } from '../stubdom/helpers.js';

const BASE = 0xb000;
const STS = BASE;
const EN = BASE + 2;
const CNT = BASE + 4;
const TMR = BASE + 8;
const PWRBTN = 1 << 8;
const SLPBTN = 1 << 9;

describe('PIIX4 ACPI PM (00:01.3)', () => {
  it('is set up as hvmloader leaves it: 8086:7113 class 0680, PMBA 0xB001, decode on, IRQ 9', () => {
    const { cpu } = makeMachine();
    expect(cpu.pciRead(1, 3, 0x00, 4)).toBe(0x71138086);
    expect(cpu.pciRead(1, 3, 0x08, 4) >>> 8).toBe(0x068000);
    expect(cpu.pciRead(1, 3, 0x40, 4)).toBe(0xb001);
    expect(cpu.pciRead(1, 3, 0x80, 1)).toBe(1);
    expect(cpu.pciRead(1, 3, 0x3c, 1)).toBe(9);
  });

  it('a power button press: latched, SCI only once enabled, cleared by writing 1', () => {
    const { m, cpu, sink } = makeMachine();
    m.acpi.pressPowerButton();
    expect(cpu.inw(STS) & PWRBTN).toBe(PWRBTN); // latched even while disabled (Xen's pmtimer)
    expect(sink.level(9)).toBe(false);
    cpu.outw(EN, PWRBTN | SLPBTN);
    expect(sink.level(9)).toBe(true); // the pending press raises the SCI when enabled
    cpu.outw(STS, SLPBTN); // clearing another bit leaves it
    expect(sink.level(9)).toBe(true);
    cpu.outw(STS, PWRBTN);
    expect(cpu.inw(STS) & PWRBTN).toBe(0);
    expect(sink.level(9)).toBe(false);
    m.acpi.pressSleepButton();
    expect(cpu.inw(STS)).toBe(SLPBTN);
    expect(sink.level(9)).toBe(true);
    cpu.outb(STS + 1, SLPBTN >> 8); // byte access to the high half
    expect(sink.level(9)).toBe(false);
    expect(m.acpi.metrics).toMatchObject({ powerButtonPresses: 1, sleepButtonPresses: 1, scis: 2 });
  });

  it('powerButtonEnabled follows PWRBTN_EN and SCI_EN, as the toolstack asks before saying done', () => {
    const { m, cpu } = makeMachine();
    expect(m.acpi.powerButtonEnabled).toBe(false);
    cpu.outw(EN, PWRBTN);
    expect(m.acpi.powerButtonEnabled).toBe(false);
    cpu.outw(CNT, 1);
    expect(m.acpi.powerButtonEnabled).toBe(true);
  });

  it('S5 through SLP_TYP 0 | SLP_EN is soft-off; S3 is refused and the guest keeps running', () => {
    let off = 0;
    const warnings: string[] = [];
    const { cpu } = makeMachine({ onSoftOff: () => off++, log: { info() {}, warn: (w) => warnings.push(w), error() {} } });
    cpu.outw(CNT, (5 << 10) | (1 << 13) | 1); // S3 (hvmloader's \_S3 is 5 on qemu-xen)
    cpu.outw(CNT, (5 << 10) | (1 << 13) | 1);
    expect(off).toBe(0);
    expect(warnings.filter((w) => /cannot suspend/.test(w))).toHaveLength(1); // logged once
    expect(cpu.inw(CNT) & (1 << 13)).toBe(0); // SLP_EN reads 0
    cpu.outw(CNT, (1 << 13) | 1);
    expect(off).toBe(1);
  });

  it('the PM timer counts at 3.58 MHz in 24 bits', async () => {
    const { cpu } = makeMachine();
    const a = cpu.inl(TMR);
    await new Promise((r) => setTimeout(r, 20));
    const b = cpu.inl(TMR);
    expect(a).toBeLessThan(1 << 24);
    const ticks = (b - a + (1 << 24)) % (1 << 24);
    expect(ticks).toBeGreaterThan(3_579_545 * 0.015);
    expect(ticks).toBeLessThan(3_579_545 * 0.5);
  });

  it('follows PMBA and PMREGMISC: moved, dark when disabled, refused over another device', () => {
    const warnings: string[] = [];
    const { cpu } = makeMachine({ log: { info() {}, warn: (w) => warnings.push(w), error() {} } });
    cpu.outw(EN, PWRBTN);
    cpu.pciWrite(1, 3, 0x40, 4, 0xb100);
    expect(cpu.inw(EN)).toBe(0xffff); // old place: nothing there
    expect(cpu.inw(0xb102)).toBe(PWRBTN);
    expect(cpu.pciRead(1, 3, 0x40, 4)).toBe(0xb101); // bit 0 stays 1 (I/O space)
    cpu.pciWrite(1, 3, 0x80, 1, 0);
    expect(cpu.inw(0xb102)).toBe(0xffff);
    // Over COM1's ports: the block stays dark and COM1 keeps its registers.
    cpu.pciWrite(1, 3, 0x40, 4, 0x3c0);
    cpu.pciWrite(1, 3, 0x80, 1, 1);
    expect(warnings.some((w) => /ACPI PM block at 0x3c0/.test(w))).toBe(true);
  });
});
