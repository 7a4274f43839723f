// The host ends of the emulated devices: a NIC's TAP (stood in for by a SOCK_SEQPACKET pair,
// which keeps frame boundaries like a TAP does) and a UART's pty (a real one from the addon).
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { emuTapName, TapNetBackend } from '../../stubdom/devices/rtl8139/tap-backend.js';
import { PtySerialBackend } from '../../stubdom/devices/uart16550/pty-backend.js';
import { makeMachine } from './helpers.js';

const n = native();
const fds: number[] = [];
afterEach(() => {
  while (fds.length) n.close(fds.pop()!);
});

describe('TAP backend', () => {
  it('names the HVM tap like xl and moves frames both ways with flow control', () => {
    expect(emuTapName(7, 0)).toBe('vif7.0-emu');
    const [dm, host] = n.seqpacketPair();
    fds.push(dm, host);
    let resumed = 0;
    const tap = new TapNetBackend(dm, n, () => resumed++);
    const { m, cpu, mem } = makeMachine({ nics: [{ devid: 0, mac: '00:16:3e:00:00:01', backend: tap }] });
    const nic = m.nic(0)!;
    tap.nic = nic;
    cpu.enableBusMaster(4, 0);
    const io = cpu.bar(4, 0, 0);
    cpu.outl(io + 0x30, 0x10000); // RBSTART
    cpu.outb(io + 0x37, 0x0c);
    cpu.outl(io + 0x44, 0x0f); // promiscuous, 8 KiB ring
    // Guest -> TAP.
    const f = new Uint8Array(100).fill(0x42);
    mem.write(0x20000, f);
    cpu.outl(io + 0x20, 0x20000);
    cpu.outl(io + 0x10, 100);
    const got = new Uint8Array(2048);
    expect(n.read(host, got, 0, got.length)).toBe(100);
    expect(got[99]).toBe(0x42);
    // TAP -> guest until the 8 KiB ring is full: the pump pauses and leaves frames queued.
    const frame = new Uint8Array(1500).fill(0x33);
    for (let i = 0; i < 8; i++) expect(n.write(host, frame, 0, frame.length)).toBe(1500);
    tap.pump();
    expect(tap.paused).toBe(true);
    const inRing = nic.metrics.rx_packets;
    expect(inRing).toBeGreaterThan(0);
    expect(inRing).toBeLessThan(8);
    // The guest consumes everything (CAPR = CBR - 16): the pump resumes.
    cpu.outw(io + 0x38, (cpu.inw(io + 0x3a) - 16) & 0xffff);
    expect(resumed).toBe(1);
    while (tap.pump() > 0 && !tap.paused);
    expect(tap.metrics.framesIn).toBeGreaterThan(inRing);
  });
});

describe('pty backend', () => {
  it('carries guest output to the pty and pty input into the FIFO as room allows', () => {
    const pty = n.openpty(true);
    fds.push(pty.master, pty.slave);
    const ser = new PtySerialBackend(pty.master, n);
    const { m, cpu } = makeMachine({ serial: [{ backend: ser }] });
    ser.uart = m.serials[0]!;
    cpu.outb(0x3fa, 0x07); // FIFO on
    for (const c of Buffer.from('login: ')) cpu.outb(0x3f8, c);
    const buf = new Uint8Array(64);
    let out = '';
    for (let i = 0; i < 50 && out.length < 7; i++) {
      n.pollReadable(pty.slave, 20);
      const k = n.read(pty.slave, buf, 0, 64);
      if (k) out += Buffer.from(buf.subarray(0, k)).toString();
    }
    expect(out).toBe('login: ');
    const input = Buffer.from('root\npassword-that-is-longer-than-16\n');
    n.write(pty.slave, input, 0, input.length);
    n.pollReadable(pty.master, 1000);
    expect(ser.pump()).toBe(16); // the FIFO is full
    let typed = '';
    for (let i = 0; i < 10; i++) {
      while (cpu.inb(0x3fd) & 1) typed += String.fromCharCode(cpu.inb(0x3f8));
      ser.pump();
    }
    expect(typed).toBe(input.toString());
  });
});
