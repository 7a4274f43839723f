// The 8250 driver as the HVM guest's console, against the machine's 16550A: polled output,
// then interrupt-driven output (THRE) and input (received data / character timeout).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Serial8250 } from '../../guest/hvm/drivers/serial8250.js';
import { TestPlatform } from './harness.js';

let p: TestPlatform;
let com1: Serial8250;

function serialText(): string {
  return Buffer.concat(p.messages.filter((m) => m.type === 'serial').map((m) => Buffer.from(m.data))).toString('latin1');
}

beforeAll(async () => {
  p = await TestPlatform.start({ serial: true });
});
afterAll(async () => {
  await p?.stop();
});

describe('8250 console driver', () => {
  it('finds the 16550A on COM1 and none on COM2', () => {
    com1 = Serial8250.probe(p.cpu, 0x3f8, 4, p.ram.alloc(4096), 'com1')!;
    expect(com1).not.toBeNull();
    expect(com1.describe()).toMatch(/ttyS0 at I\/O 0x3f8 \(irq = 4, base_baud = 115200\) is a 16550A/);
    expect(Serial8250.probe(p.cpu, 0x2f8, 3, p.ram.alloc(4096), 'com2')).toBeNull();
  });

  it('writes polled before interrupts are wired, 16 bytes per exit', async () => {
    const before = p.cpu.exitCounters().byDevice['com1']!.exits;
    com1.write(Buffer.from('SeaBIOS (version xenode)\r\n'));
    await p.until(() => serialText().includes('SeaBIOS (version xenode)\r\n'), 5000, 'polled output');
    const used = p.cpu.exitCounters().byDevice['com1']!.exits - before;
    expect(used).toBeLessThanOrEqual(4); // 2 x (LSR + rep outsb) for 26 bytes
  });

  it('carries bytes both ways with interrupts', async () => {
    p.intc.request(4, 'serial', () => com1.handleIrq());
    com1.enableInterrupts();
    const got: Buffer[] = [];
    com1.onInput = (b) => got.push(Buffer.from(b));
    const big = Buffer.from('x'.repeat(3000) + 'END\n');
    com1.write(big);
    await p.until(() => serialText().includes('END\n'), 5000, 'interrupt-driven output');
    expect(serialText()).toContain('x'.repeat(3000) + 'END\n');
    p.post({ type: 'serial-in', data: Buffer.from('ls -l /dev\r') });
    const input = 'a'.repeat(200) + '\r';
    p.post({ type: 'serial-in', data: Buffer.from(input) });
    await p.until(() => Buffer.concat(got).toString('latin1') === 'ls -l /dev\r' + input, 5000, 'console input');
    expect(com1.counters.interrupts).toBeGreaterThan(0);
    expect(com1.counters.thre).toBeGreaterThan(3000 / 16 - 1);
    expect(com1.counters.rxBytes).toBe(11 + 201);
    const m = (await p.metrics()).metrics;
    expect(m.serial[0].rxBytes).toBe(11 + 201);
    expect(m.serial[0].interrupts).toBeGreaterThan(0);
    expect(p.intc.counters().lines[4]!.handled).toBeGreaterThan(0);
    // The interrupt-driven output costs about two exits per 16 bytes (IIR + rep outsb).
    const ex = p.cpu.exitCounters().byDevice['com1']!;
    expect(ex.rep).toBeGreaterThan(180);
  });
});
