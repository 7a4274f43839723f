// RTL8139 driven the way Linux's 8139too drives it (MMIO BAR1 by default, PIO where noted):
// probe (HltClk, TxConfig chip ID, reset, 93C46 EEPROM bit-banging for the MAC), hw_start,
// transmit through TSD/TSAD, receive from the ring with header/length/CRC, CAPR handling,
// ISR/IMR and the INTA line; then the hostile cases.
import { describe, expect, it } from 'vitest';
import { crc32le, multicastHashIndex } from '../../stubdom/devices/rtl8139/crc32.js';
import { CollectingNetBackend } from '../../stubdom/devices/rtl8139/net-backend.js';
import { GuestCpu, makeMachine, MiB } from './helpers.js';

const MAC = '00:16:3e:5a:01:02';
const MAC_BYTES = [0x00, 0x16, 0x3e, 0x5a, 0x01, 0x02];
const RX_RING = 0x10_0000;
const RX_LEN = 32768;
const TX_BUF = 0x20_0000;
const INTR_MASK = 0xc07f; // PCIErr | PCSTimeout | RxUnderrun | RxOverflow | RxFIFOOver | TxErr | TxOK | RxErr | RxOK
const RX_CONFIG = (1 << 12) | (1 << 7) | (7 << 13) | (7 << 8); // 32K | NoWrap | FIFO none | DMA unlimited

/** A register window: MMIO (8139too's default) or PIO. */
class Regs {
  constructor(
    readonly cpu: GuestCpu,
    readonly base: number,
    readonly mmio: boolean,
  ) {}
  r8(o: number) {
    return this.mmio ? this.cpu.readb(this.base + o) : this.cpu.inb(this.base + o);
  }
  r16(o: number) {
    return this.mmio ? this.cpu.readw(this.base + o) : this.cpu.inw(this.base + o);
  }
  r32(o: number) {
    return this.mmio ? this.cpu.readl(this.base + o) : this.cpu.inl(this.base + o);
  }
  w8(o: number, v: number) {
    if (this.mmio) this.cpu.writeb(this.base + o, v);
    else this.cpu.outb(this.base + o, v);
  }
  w16(o: number, v: number) {
    if (this.mmio) this.cpu.writew(this.base + o, v);
    else this.cpu.outw(this.base + o, v);
  }
  w32(o: number, v: number) {
    if (this.mmio) this.cpu.writel(this.base + o, v);
    else this.cpu.outl(this.base + o, v);
  }
}

/** 8139too's read_eeprom(), bit for bit (including the eeprom_delay() 32-bit reads). */
function readEeprom(r: Regs, location: number, addrLen: number): number {
  const EE_CS = 0x08, EE_SHIFT_CLK = 0x04, EE_DATA_WRITE = 0x02, EE_ENB = 0x80 | EE_CS;
  const readCmd = location | (6 << addrLen);
  r.w8(0x50, EE_ENB & ~EE_CS);
  r.w8(0x50, EE_ENB);
  r.r32(0x50);
  for (let i = 4 + addrLen; i >= 0; i--) {
    const d = readCmd & (1 << i) ? EE_DATA_WRITE : 0;
    r.w8(0x50, EE_ENB | d);
    r.r32(0x50);
    r.w8(0x50, EE_ENB | d | EE_SHIFT_CLK);
    r.r32(0x50);
  }
  r.w8(0x50, EE_ENB);
  let ret = 0;
  for (let i = 16; i > 0; i--) {
    r.w8(0x50, EE_ENB | EE_SHIFT_CLK);
    r.r32(0x50);
    ret = (ret << 1) | (r.r8(0x50) & 1);
    r.w8(0x50, EE_ENB);
    r.r32(0x50);
  }
  r.w8(0x50, ~EE_CS & 0xff);
  return ret;
}

function setup(opts: { mmio?: boolean; ram?: number } = {}) {
  const backend = new CollectingNetBackend();
  const t = makeMachine({ nics: [{ devid: 0, mac: MAC, backend }], ramBytes: opts.ram ?? 16 * MiB });
  const cpu = t.cpu;
  cpu.enableBusMaster(4, 0);
  const mmio = opts.mmio ?? true;
  const r = new Regs(cpu, cpu.bar(4, 0, mmio ? 1 : 0), mmio);
  return { ...t, backend, r, nic: t.m.nic(0)! };
}

/** rtl8139_init_board + rtl8139_hw_start + rtl8139_init_ring. */
function bringUp(r: Regs, rxConfig = RX_CONFIG | 0x08 | 0x02) {
  r.w8(0x5b, 'R'.charCodeAt(0));
  r.w8(0x37, 0x10);
  for (let i = 0; i < 1000 && r.r8(0x37) & 0x10; i++);
  r.w8(0x50, 0xc0);
  r.w32(0x00, MAC_BYTES[0]! | (MAC_BYTES[1]! << 8) | (MAC_BYTES[2]! << 16) | (MAC_BYTES[3]! << 24));
  r.w32(0x04, MAC_BYTES[4]! | (MAC_BYTES[5]! << 8));
  r.w32(0x30, RX_RING);
  r.w8(0x37, 0x0c);
  r.w32(0x44, rxConfig);
  r.w32(0x40, (3 << 24) | (6 << 8) | (8 << 4));
  r.w8(0x50, 0x00);
  r.w32(0x4c, 0);
  r.w32(0x08, 0);
  r.w32(0x0c, 0);
  for (let i = 0; i < 4; i++) r.w32(0x20 + 4 * i, TX_BUF + i * 1536);
  r.w16(0x3c, INTR_MASK);
}

function frame(dst: number[], len: number, seed = 1): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(MAC_BYTES.map((b) => b ^ 0xff), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < len; i++) f[i] = (i * seed) & 0xff;
  return f;
}

/** 8139too's rtl8139_rx loop body: returns the frames read and moves CAPR. */
function driverRx(r: Regs, cpu: GuestCpu, mem: ReturnType<typeof setup>['mem'], state: { cur: number }) {
  const out: { status: number; data: Uint8Array; crcOk: boolean }[] = [];
  while (!(r.r8(0x37) & 0x01)) {
    const off = state.cur % RX_LEN;
    const hdr = mem.readU32(RX_RING + off)!;
    const size = hdr >>> 16;
    const pkt = new Uint8Array(size);
    mem.read(RX_RING + off + 4, pkt);
    const data = pkt.subarray(0, size - 4);
    const crc = new DataView(pkt.buffer).getUint32(size - 4, true);
    out.push({ status: hdr & 0xffff, data: new Uint8Array(data), crcOk: crc === crc32le(data) });
    state.cur = (state.cur + size + 4 + 3) & ~3;
    r.w16(0x38, (state.cur - 16) & 0xffff);
    r.w16(0x3e, 0x51); // RxAckBits
    if (out.length > 1000) throw new Error('runaway ring');
  }
  void cpu;
  return out;
}

describe('RTL8139 as 8139too drives it', () => {
  it('probes: HltClk, 8139C chip id, reset, MAC from the 93C46 EEPROM', () => {
    const { r } = setup();
    r.w8(0x5b, 'R'.charCodeAt(0));
    expect(r.r32(0x40) & 0x7cc00000).toBe(0x74000000); // RTL-8139C
    r.w8(0x37, 0x10);
    expect(r.r8(0x37) & 0x10).toBe(0);
    // 8-bit probe of word 0 comes back shifted -> 93C46 with 6 address bits.
    expect(readEeprom(r, 0, 8)).not.toBe(0x8129);
    expect(readEeprom(r, 0, 6)).toBe(0x8129);
    const words = [7, 8, 9].map((l) => readEeprom(r, l, 6));
    expect(words.flatMap((w) => [w & 0xff, w >> 8])).toEqual(MAC_BYTES);
    // IDR0-5 hold the MAC after reset too; the reserved bytes read 0.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => r.r8(i))).toEqual([...MAC_BYTES, 0, 0]);
    expect(r.r16(0x64) & 0x04).toBe(0x04); // BMSR link up
  });

  it('transmits through TSAD/TSD round-robin, sets OWN|TOK and raises TxOK on INTA', () => {
    const { r, mem, backend, sink, nic } = setup();
    bringUp(r);
    const line = 11;
    for (let i = 0; i < 6; i++) {
      const d = i % 4;
      const f = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 60 + i * 100, i + 3);
      mem.write(TX_BUF + d * 1536, f);
      r.w32(0x10 + 4 * d, (256 << 11) & 0x003f0000 | f.length); // tx_flag | len, OWN = 0
      expect(r.r32(0x10 + 4 * d) & 0xe000).toBe(0xa000); // TOK | OWN
      expect(r.r16(0x3e) & 0x04).toBe(0x04);
      expect(sink.level(line)).toBe(true);
      r.w16(0x3e, 0x04); // ack TxOK
      expect(sink.level(line)).toBe(false);
      expect(Buffer.from(backend.frames[i]!).equals(Buffer.from(f))).toBe(true);
    }
    expect(r.r16(0x60) & 0xf00f).toBe(0xf00f); // TSAD: TOK and OWN for all four
    expect(nic.metrics.tx_packets).toBe(6);
    expect(nic.metrics.interrupts).toBe(6);
    expect(nic.metrics.exits).toBeGreaterThan(0);
  });

  it('receives into the ring: header, length, CRC, CBR/CAPR and RxBufEmpty', () => {
    const { r, mem, cpu, nic, sink } = setup();
    bringUp(r);
    expect(r.r8(0x37) & 0x01).toBe(1); // empty
    const short = frame(MAC_BYTES, 42);
    expect(nic.receive(short)).toBe(true);
    expect(r.r8(0x37) & 0x01).toBe(0);
    expect(r.r16(0x3e) & 0x01).toBe(0x01);
    expect(sink.level(11)).toBe(true);
    const hdr = mem.readU32(RX_RING)!;
    expect(hdr & 0xffff).toBe(0x4001); // PAM | ROK
    expect(hdr >>> 16).toBe(64); // padded to 60 + CRC
    expect(r.r16(0x3a)).toBe(4 + 60 + 4); // CBR after a 4-aligned packet
    const state = { cur: 0 };
    const got = driverRx(r, cpu, mem, state);
    expect(got.length).toBe(1);
    expect(got[0]!.crcOk).toBe(true);
    expect(Buffer.from(got[0]!.data.subarray(0, 42)).equals(Buffer.from(short))).toBe(true);
    expect([...got[0]!.data.subarray(42)]).toEqual(new Array(18).fill(0));
    expect(r.r16(0x38)).toBe((68 - 16) & 0xffff);
    expect(sink.level(11)).toBe(false);
    // Broadcast accepted (BAR), other unicast rejected, multicast only through the MAR hash.
    expect(nic.receive(frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 100))).toBe(true);
    expect(nic.receive(frame([0x00, 0x16, 0x3e, 0x00, 0x00, 0x09], 100))).toBe(false);
    const mc = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    expect(nic.receive(frame(mc, 100))).toBe(false);
    r.w32(0x44, RX_CONFIG | 0x0e); // + AcceptMulticast
    const idx = multicastHashIndex(new Uint8Array(mc));
    r.w8(0x08 + (idx >> 3), 1 << (idx & 7));
    expect(nic.receive(frame(mc, 100))).toBe(true);
    const more = driverRx(r, cpu, mem, state);
    expect(more.map((p) => p.status)).toEqual([0x2001, 0x8001]);
    expect(more.every((p) => p.crcOk)).toBe(true);
    // Promiscuous: everything, and the RCR write did not disturb the ring pointers.
    r.w32(0x44, RX_CONFIG | 0x0f);
    expect(nic.receive(frame([0x02, 0, 0, 0, 0, 1], 1514))).toBe(true);
    const p = driverRx(r, cpu, mem, state);
    expect(p.length).toBe(1);
    expect(p[0]!.data.length).toBe(1514);
    expect(nic.metrics.rx_packets).toBe(4);
  });

  it('wraps: linear overrun into the slack with RCR.WRAP, split at the ring end without', () => {
    for (const noWrap of [true, false]) {
      const { r, mem, cpu, nic } = setup();
      bringUp(r, (noWrap ? RX_CONFIG : RX_CONFIG & ~0x80) | 0x0a);
      const state = { cur: 0 };
      let n = 0;
      // Push frames until one crosses the end of the 32 KiB ring.
      while (state.cur < RX_LEN - 1600) {
        expect(nic.receive(frame(MAC_BYTES, 1000, n++))).toBe(true);
        driverRx(r, cpu, mem, state);
      }
      const big = frame(MAC_BYTES, 1514, 77);
      const at = state.cur;
      expect(nic.receive(big)).toBe(true);
      const cross = at + 4 + 1514 + 4 > RX_LEN;
      expect(cross).toBe(true);
      if (noWrap) {
        // 8139too reads the whole frame linearly past the end of the ring.
        const got = driverRx(r, cpu, mem, state);
        expect(got[0]!.crcOk).toBe(true);
        expect(Buffer.from(got[0]!.data).equals(Buffer.from(big))).toBe(true);
      } else {
        // Without WRAP the tail went to the start of the ring.
        const whole = new Uint8Array(4 + 1514 + 4);
        const first = RX_LEN - at;
        mem.read(RX_RING + at, whole, 0, first);
        mem.read(RX_RING, whole, first, whole.length - first);
        expect(Buffer.from(whole.subarray(4, 4 + 1514)).equals(Buffer.from(big))).toBe(true);
      }
      expect(r.r16(0x3a)).toBe(((at + 4 + 1514 + 4 + 3) & ~3) % RX_LEN);
    }
  });

  it('overflows the ring when the driver stops consuming: RxOverflow, MPC, frames dropped', () => {
    const { r, nic, sink } = setup();
    bringUp(r);
    let accepted = 0;
    for (let i = 0; i < 40; i++) if (nic.receive(frame(MAC_BYTES, 1514, i))) accepted++;
    expect(accepted).toBe(21); // 32 KiB / 1524 bytes per frame, minus the 8-byte guard
    expect(r.r16(0x3e) & 0x10).toBe(0x10);
    expect(r.r32(0x4c)).toBe(19);
    expect(sink.level(11)).toBe(true);
    r.w32(0x4c, 0);
    expect(r.r32(0x4c)).toBe(0);
    expect(nic.metrics.rx_overflows).toBe(19);
  });

  it('works the same through the I/O BAR, and in loopback mode', () => {
    const { r, mem, cpu, nic, backend } = setup({ mmio: false });
    bringUp(r);
    r.w32(0x40, (r.r32(0x40) & ~0x60000) | 0x60000); // TxLoopBack
    const f = frame(MAC_BYTES, 200);
    mem.write(TX_BUF, f);
    r.w32(0x10, f.length);
    expect(backend.frames.length).toBe(0);
    const got = driverRx(r, cpu, mem, { cur: 0 });
    expect(Buffer.from(got[0]!.data).equals(Buffer.from(f))).toBe(true);
    expect(nic.metrics.tx_packets).toBe(1);
  });
});

describe('RTL8139 against a hostile guest', () => {
  it('a Tx buffer outside guest RAM: master abort, PCIErr, engines stopped, nothing sent', () => {
    const { r, mem, backend, cpu, sink } = setup();
    bringUp(r);
    r.w32(0x20, 16 * MiB - 100); // runs off the end of RAM
    r.w32(0x10, 1000);
    expect(backend.frames.length).toBe(0);
    expect(r.r16(0x3e) & 0x8000).toBe(0x8000);
    expect(r.r8(0x37) & 0x0c).toBe(0);
    expect(cpu.pciRead(4, 0, 0x06, 2) & 0x2000).toBe(0x2000); // received master abort
    expect(sink.level(11)).toBe(true);
    // The driver's recovery (reset + hw_start) brings it back.
    bringUp(r);
    mem.write(TX_BUF, frame(MAC_BYTES, 64));
    r.w32(0x10, 64);
    expect(backend.frames.length).toBe(1);
  });

  it('an Rx ring in the MMIO hole (over its own registers) or past the end of RAM is refused', () => {
    const { r, nic, cpu, mem } = setup();
    const mmio = cpu.bar(4, 0, 1);
    for (const bad of [mmio, 16 * MiB - 1024]) {
      bringUp(r);
      r.w32(0x30, bad);
      const before = Buffer.from(mem.bytes.subarray(16 * MiB - 1024)).toString('hex');
      expect(nic.receive(frame(MAC_BYTES, 1514))).toBe(false);
      expect(r.r16(0x3e) & 0x8000).toBe(0x8000);
      expect(r.r8(0x37) & 0x08).toBe(0); // receiver stopped
      expect(Buffer.from(mem.bytes.subarray(16 * MiB - 1024)).toString('hex')).toBe(before);
      // Registers still read sanely (the ring did not land on them).
      expect(r.r8(0)).toBe(MAC_BYTES[0]);
      expect(nic.receive(frame(MAC_BYTES, 100))).toBe(false); // stays off until reset
    }
    expect(nic.metrics.dma_errors).toBe(2);
  });

  it('no DMA at all without PCI bus mastering', () => {
    const { r, nic, cpu, mem, backend } = setup();
    bringUp(r);
    cpu.pciWrite(4, 0, 0x04, 2, cpu.pciRead(4, 0, 0x04, 2) & ~0x4);
    const snapshot = Buffer.from(mem.bytes).toString('base64');
    expect(nic.receive(frame(MAC_BYTES, 100))).toBe(false);
    expect(r.r16(0x3e) & 0x40).toBe(0x40); // Rx FIFO overflow: the frame could not leave the chip
    mem.write(TX_BUF, frame(MAC_BYTES, 64));
    r.w32(0x10, 64);
    expect(backend.frames.length).toBe(0);
    expect(r.r16(0x3e) & 0x8000).toBe(0x8000);
    mem.write(TX_BUF, Buffer.from(snapshot, 'base64').subarray(TX_BUF, TX_BUF + 64)); // undo our own write
    expect(Buffer.from(mem.bytes).toString('base64')).toBe(snapshot);
  });

  it('an oversized Tx descriptor is aborted (TABT, TxErr)', () => {
    const { r, backend } = setup();
    bringUp(r);
    r.w32(0x10, 0x1fff);
    expect(r.r32(0x10) & 0x40002000).toBe(0x40002000);
    expect(r.r16(0x3e) & 0x08).toBe(0x08);
    expect(backend.frames.length).toBe(0);
  });

  it('survives garbage written to every register at every width, then works after reset', () => {
    const { r, nic, mem, cpu, backend } = setup();
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    for (let round = 0; round < 20; round++) {
      for (let off = 0; off < 256; off++) {
        const v = rnd();
        const w = 1 << (v & 3) % 3;
        if (off + w > 256) continue;
        if (w === 1) r.w8(off, v >>> 8);
        else if (w === 2) r.w16(off, v >>> 8);
        else r.w32(off, v);
        r.r32(off & ~3);
      }
      // Frames keep arriving while the registers are garbage.
      nic.receive(frame(MAC_BYTES, 60 + (rnd() % 1400)));
    }
    // Nothing threw. (Rx DMA may have written inside RAM wherever the garbage RBSTART
    // pointed, as a real chip would; GuestMemory keeps it from going anywhere else.)
    expect(nic.metrics.exits).toBeGreaterThan(5000);
    // Reset and the normal path works again.
    bringUp(r);
    mem.write(TX_BUF, frame(MAC_BYTES, 64));
    const sent = backend.frames.length;
    r.w32(0x10, 64);
    expect(backend.frames.length).toBe(sent + 1);
    expect(nic.receive(frame(MAC_BYTES, 64))).toBe(true);
    expect(driverRx(r, cpu, mem, { cur: 0 }).length).toBe(1);
  });
});
