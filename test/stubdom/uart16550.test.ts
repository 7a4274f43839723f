// 16550A UART at COM1 driven like Linux's 8250 driver: autoconfig (scratch, loopback MSR test,
// FIFO detection, no EFR/UUE extras), the THRE interrupt probe at startup, transmit to the
// backend, receive from the backend with FIFO trigger/timeout interrupts, divisor latch, line
// status errors, OUT2 gating, and garbage.
import { describe, expect, it } from 'vitest';
import { CollectingSerialBackend } from '../../stubdom/devices/uart16550/uart16550.js';
import { makeMachine } from './helpers.js';

const COM1 = 0x3f8;

function setup() {
  const backend = new CollectingSerialBackend();
  const t = makeMachine({ serial: [{ backend }] });
  return { ...t, backend, uart: t.m.serials[0]! };
}

describe('16550A UART (COM1)', () => {
  it('passes 8250 autoconfig as a 16550A', () => {
    const { cpu } = setup();
    // Scratch register test.
    cpu.outb(COM1 + 7, 0xa5);
    expect(cpu.inb(COM1 + 7)).toBe(0xa5);
    // IER test: writes of 0 and 0x0f read back; bits 4-7 (UUE etc.) do not exist.
    cpu.outb(COM1 + 1, 0);
    expect(cpu.inb(COM1 + 1)).toBe(0);
    cpu.outb(COM1 + 1, 0xff);
    expect(cpu.inb(COM1 + 1)).toBe(0x0f);
    cpu.outb(COM1 + 1, 0);
    // Loopback test: MCR = LOOP | OUT2 | RTS -> MSR status bits = DCD | CTS (0x90).
    cpu.outb(COM1 + 4, 0x10 | 0x0a);
    expect(cpu.inb(COM1 + 6) & 0xf0).toBe(0x90);
    cpu.outb(COM1 + 4, 0x00);
    // FIFO detection: IIR bits 7:6 = 11 after enabling the FIFOs.
    cpu.outb(COM1 + 2, 0x01);
    expect(cpu.inb(COM1 + 2) >> 6).toBe(3);
    // EFR probe at LCR=0xBF reads IIR, not 0 (not a 16650).
    cpu.outb(COM1 + 3, 0xbf);
    expect(cpu.inb(COM1 + 2)).not.toBe(0);
    // 16750 probe: the 64-byte FIFO bit does not stick.
    cpu.outb(COM1 + 3, 0x80);
    cpu.outb(COM1 + 2, 0x21);
    expect((cpu.inb(COM1 + 2) >> 5) & 7).toBe(6);
    cpu.outb(COM1 + 3, 0);
  });

  it('programs the divisor latch through DLAB', () => {
    const { cpu, uart } = setup();
    cpu.outb(COM1 + 3, 0x83);
    cpu.outb(COM1 + 0, 0x01);
    cpu.outb(COM1 + 1, 0x00);
    expect(cpu.inb(COM1 + 0)).toBe(1);
    cpu.outb(COM1 + 3, 0x03);
    expect(uart.divisor).toBe(1); // 115200 baud
    expect(cpu.inb(COM1 + 1)).toBe(0); // IER again
  });

  it('transmits THR bytes to the backend and raises THRE interrupts (gated by OUT2)', () => {
    const { cpu, backend, sink, uart } = setup();
    cpu.outb(COM1 + 4, 0x0b); // DTR | RTS | OUT2
    cpu.outb(COM1 + 1, 0x02); // ETBEI: THR is empty -> interrupt at once (8250's THRE probe)
    expect(sink.level(4)).toBe(true);
    expect(cpu.inb(COM1 + 2) & 0x0f).toBe(0x02);
    expect(sink.level(4)).toBe(false); // reading IIR acknowledged it
    for (const c of Buffer.from('hello\r\n')) {
      expect(cpu.inb(COM1 + 5) & 0x60).toBe(0x60); // THRE | TEMT
      cpu.outb(COM1, c);
      expect(sink.level(4)).toBe(true);
    }
    expect(backend.text()).toBe('hello\r\n');
    // OUT2 low: the line is gated off even with an interrupt pending.
    cpu.outb(COM1 + 4, 0x03);
    expect(sink.level(4)).toBe(false);
    cpu.outb(COM1 + 4, 0x0b);
    expect(sink.level(4)).toBe(true);
    expect(uart.metrics.txBytes).toBe(7);
  });

  it('receives with FIFO trigger level and character-timeout interrupts, and flow control', () => {
    const { cpu, uart, sink, backend } = setup();
    cpu.outb(COM1 + 4, 0x0b);
    cpu.outb(COM1 + 2, 0xc7); // FIFO on, clear, trigger 14
    cpu.outb(COM1 + 1, 0x01); // ERBFI
    expect(uart.receive(Buffer.from('abc'))).toBe(3);
    expect(sink.level(4)).toBe(true);
    expect(cpu.inb(COM1 + 2)).toBe(0xcc); // character timeout (below the trigger)
    expect(uart.receive(Buffer.from('0123456789abcdefXYZ'))).toBe(13); // 16-byte FIFO
    expect(cpu.inb(COM1 + 2)).toBe(0xc4); // received data available
    let got = '';
    while (cpu.inb(COM1 + 5) & 0x01) got += String.fromCharCode(cpu.inb(COM1));
    expect(got).toBe('abc0123456789abc');
    expect(sink.level(4)).toBe(false);
    expect(backend.spaceNotifications).toBeGreaterThan(0);
    // FIFOs off: a one-byte holding register.
    cpu.outb(COM1 + 2, 0x00);
    expect(uart.receive(Buffer.from('xy'))).toBe(1);
    expect(cpu.inb(COM1 + 2)).toBe(0x04);
    expect(cpu.inb(COM1)).toBe(0x78);
  });

  it('loopback: THR comes back on RBR, overruns set LSR.OE which clears on read', () => {
    const { cpu, backend, uart } = setup();
    cpu.outb(COM1 + 2, 0x07);
    cpu.outb(COM1 + 4, 0x1f); // LOOP with all outputs
    expect(cpu.inb(COM1 + 6) & 0xf0).toBe(0xf0);
    for (let i = 0; i < 20; i++) cpu.outb(COM1, 0x41 + i);
    expect(backend.chunks.length).toBe(0);
    expect(uart.receive(Buffer.from('ignored'))).toBe(0);
    cpu.outb(COM1 + 1, 0x04); // line status interrupts
    const lsr = cpu.inb(COM1 + 5);
    expect(lsr & 0x03).toBe(0x03); // DR | OE
    expect(cpu.inb(COM1 + 5) & 0x02).toBe(0); // OE cleared by the read
    let got = '';
    while (cpu.inb(COM1 + 5) & 0x01) got += String.fromCharCode(cpu.inb(COM1));
    expect(got).toBe('ABCDEFGHIJKLMNOP');
    expect(uart.metrics.overruns).toBe(4);
    // Leaving loopback: modem lines back to a connected pty, with delta bits.
    cpu.outb(COM1 + 4, 0x00);
    expect(cpu.inb(COM1 + 6) & 0xf0).toBe(0xb0);
  });

  it('survives garbage on all registers at all widths', () => {
    const { cpu, uart } = setup();
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let i = 0; i < 20000; i++) {
      const v = rnd();
      const port = COM1 + (v & 7);
      if (v & 0x100) cpu.outb(port, v >>> 16);
      else if (v & 0x200) cpu.outw(port, v >>> 12);
      else cpu.inl(port);
      if ((v & 0xff) === 0) uart.receive(Buffer.from('junk'));
    }
    uart.reset();
    cpu.outb(COM1 + 7, 0x11);
    expect(cpu.inb(COM1 + 7)).toBe(0x11);
    expect(cpu.inb(COM1 + 5)).toBe(0x60);
  });
});
