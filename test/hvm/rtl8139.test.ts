// 8139too against the machine's RTL8139C: frames sent by the driver come out of the NIC's
// NetBackend; frames the backend delivers reach the driver through the RX ring (including
// ring wrap-around and CAPR), with the NIC's INTx routed by the firmware.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFirmware, type FirmwareResult } from '../../guest/hvm/firmware/firmware.js';
import { Rtl8139 } from '../../guest/hvm/drivers/rtl8139.js';
import { TestPlatform } from './harness.js';

const MAC = '00:16:3e:5a:00:01';
let p: TestPlatform;
let fw: FirmwareResult;

function frame(dst: string, len: number, seq: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst.split(':').map((h) => parseInt(h, 16)), 0);
  f.set([0x00, 0x16, 0x3e, 0x99, 0x99, 0x99], 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < len; i++) f[i] = (seq + i) & 0xff;
  new DataView(f.buffer).setUint32(14, seq);
  return f;
}

beforeAll(async () => {
  p = await TestPlatform.start({ nics: [{ devid: 0, mac: MAC }], serial: false });
  fw = await runFirmware({ cpu: p.cpu, ram: p.ramBuf, log: () => {}, noBoot: true });
});
afterAll(async () => {
  await p?.stop();
});

describe.each([{ mmio: false }, { mmio: true }])('8139too driver (mmio: $mmio)', ({ mmio }) => {
  let nic: Rtl8139;
  const received: Uint8Array[] = [];
  let free: () => void = () => {};

  it('probes: reset, MAC from IDR, INTx line from the firmware', () => {
    const pci = fw.devices.find((d) => d.vendor === 0x10ec)!;
    nic = new Rtl8139({ cpu: p.cpu, cfg: fw.cfg, pci, ram: p.ram, name: 'eth0', mmio, log: () => {} });
    expect(nic.macString).toBe(MAC);
    expect(nic.irq).toBe(11);
    nic.onReceive = (f) => received.push(f.slice());
    nic.open();
    free = p.intc.request(nic.irq!, 'eth0', () => nic.handleIrq());
    expect(nic.link()).toBe(true);
  });

  it('transmits through the four descriptors and retires them on TxOK', async () => {
    const start = p.messages.filter((m) => m.type === 'tx').length;
    const frames = Array.from({ length: 40 }, (_, i) => frame('ff:ff:ff:ff:ff:ff', 42 + i * 37, i));
    for (const f of frames) expect(nic.xmit(f)).toBe(true);
    await p.until(() => p.messages.filter((m) => m.type === 'tx').length - start === 40, 5000, 'tx frames');
    const tx = p.messages.filter((m) => m.type === 'tx').slice(start);
    tx.forEach((m, i) => {
      const f = frames[i]!;
      // Short frames are padded to 60 bytes by the driver.
      expect(Buffer.from(m.frame).subarray(0, f.length).equals(Buffer.from(f))).toBe(true);
      expect(m.frame.length).toBe(Math.max(60, f.length));
    });
    await p.until(() => nic.counters.txQueued === 0 || nic.txReady(), 2000, 'tx queue drained');
    expect(nic.counters.txFrames).toBe(40);
  });

  it('receives frames through the ring, across its wrap-around', async () => {
    received.length = 0;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 120; i++) frames.push(frame(i % 3 === 0 ? 'ff:ff:ff:ff:ff:ff' : MAC, 60 + ((i * 97) % 1400), i));
    // Not for us and not broadcast/multicast: filtered by the chip.
    p.post({ type: 'rx', devid: 0, frame: frame('00:16:3e:00:00:77', 100, 999) });
    for (const f of frames) {
      const r = await p.request('rx', { devid: 0, frame: f });
      expect(r.ok).toBe(true);
      await p.until(() => received.length === frames.indexOf(f) + 1, 5000, 'rx frame');
    }
    received.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(frames[i]!))).toBe(true));
    expect(nic.counters.rxErrors).toBe(0);
    expect(nic.counters.rxFrames).toBeGreaterThanOrEqual(120);
    // A burst: many frames per interrupt, one CAPR write per batch.
    received.length = 0;
    for (let i = 0; i < 15; i++) p.post({ type: 'rx', devid: 0, frame: frame(MAC, 1000, 5000 + i) });
    await p.until(() => received.length === 15, 5000, 'burst');
    const m = (await p.metrics()).metrics;
    expect(m.nics[0].metrics.rx_overflows).toBe(0);
    free();
    nic.close();
  });
});

describe('8139too exit accounting', () => {
  it('counts exits and interrupts per packet (ping-pong: one frame out, one in)', async () => {
    const pci = fw.devices.find((d) => d.vendor === 0x10ec)!;
    const nic = new Rtl8139({ cpu: p.cpu, cfg: fw.cfg, pci, ram: p.ram, name: 'eth0', log: () => {} });
    let rx = 0;
    nic.onReceive = () => void rx++;
    nic.open();
    const free = p.intc.request(nic.irq!, 'eth0', () => nic.handleIrq());
    await p.until(() => p.intc.pending() === 0, 2000, 'quiet line');
    const N = 100;
    const ex0 = p.cpu.exitCounters().byDevice['eth0']!.exits;
    const irq0 = p.intc.counters().lines[11]!.handled;
    for (let i = 0; i < N; i++) {
      const tx0 = nic.counters.txFrames;
      nic.xmit(frame('ff:ff:ff:ff:ff:ff', 98, i));
      expect(nic.counters.txFrames).toBe(tx0 + 1);
      await p.request('rx', { devid: 0, frame: frame(MAC, 98, i) });
      await p.until(() => rx === i + 1, 5000, 'rx');
    }
    await p.until(() => p.intc.pending() === 0, 2000, 'quiet line');
    const exits = (p.cpu.exitCounters().byDevice['eth0']!.exits - ex0) / N;
    const irqs = (p.intc.counters().lines[11]!.handled - irq0) / N;
    console.log(`rtl8139 ping-pong: ${exits.toFixed(1)} exits and ${irqs.toFixed(2)} interrupts per (tx + rx) packet pair`);
    expect(exits).toBeLessThan(12);
    expect(irqs).toBeLessThanOrEqual(2.1);
    free();
    nic.close();
  });
});
