import { describe, expect, it } from 'vitest';
import {
  BufferedIoreqReader,
  BufferedIoreqWriter,
  BufferedWrite,
  BUFIOREQ_ERROR,
} from '../../drivers/wire/buffered-ioreq.js';
import {
  bufIoreq,
  createIoreq,
  decodeIoreqPciAddr,
  IOREQ_BUFFER_SLOT_NUM,
  IOREQ_READ,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_WRITE,
  ioreq,
  ioreqCompareExchangeState,
  ioreqGetState,
  ioreqPciAddr,
  ioreqSetState,
  ioreqSlotOffset,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from '../../drivers/wire/ioreq.js';
import { hex, scratch } from './helpers.js';

describe('hvm/ioreq.h constants', () => {
  it('has the header numbers', () => {
    expect([IOREQ_READ, IOREQ_WRITE]).toEqual([1, 0]);
    expect([STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS, STATE_IORESP_READY]).toEqual([0, 1, 2, 3]);
    expect([IOREQ_TYPE_PIO, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG]).toEqual([0, 1, 2]);
    expect(IOREQ_BUFFER_SLOT_NUM).toBe(511);
    expect(8 + IOREQ_BUFFER_SLOT_NUM * 8).toBe(4096);
  });
});

describe('ioreq_t layout (x86_64)', () => {
  it('addr@0 data@8 count@16 size@20 vp_eport@24 pad@28 bitfield@30 type@31, 32 bytes', () => {
    const { u8, view } = scratch(32);
    u8.fill(0xff);
    ioreq.encode(view, 0, {
      addr: 0x0102030405060708n,
      data: 0x1112131415161718n,
      count: 0x21222324,
      size: 4,
      vpEport: 0x31323334,
      state: STATE_IOREQ_READY,
      dataIsPtr: false,
      dir: IOREQ_READ,
      df: false,
      type: IOREQ_TYPE_COPY,
    });
    expect(hex(u8)).toBe(
      '0807060504030201' + '1817161514131211' + '24232221' + '04000000' + '34333231' + '0000' + '21' + '01',
    );
    expect(ioreq.size).toBe(32);
  });

  it('packs state:4 data_is_ptr:1 dir:1 df:1 from bit 0 of byte 30', () => {
    const { u8, view } = scratch(32);
    const r = createIoreq();
    r.state = 0xf;
    ioreq.encode(view, 0, r);
    expect(u8[30]).toBe(0x0f);
    r.state = 0;
    r.dataIsPtr = true;
    ioreq.encode(view, 0, r);
    expect(u8[30]).toBe(0x10);
    r.dataIsPtr = false;
    r.dir = IOREQ_READ;
    ioreq.encode(view, 0, r);
    expect(u8[30]).toBe(0x20);
    r.dir = 0;
    r.df = true;
    ioreq.encode(view, 0, r);
    expect(u8[30]).toBe(0x40);
    u8[30] = 0x73;
    const d = ioreq.decode(view, 0);
    expect([d.state, d.dataIsPtr, d.dir, d.df]).toEqual([3, true, 1, true]);
  });

  it('runs the READY -> INPROCESS -> IORESP_READY handshake on the state nibble only', () => {
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    const view = new DataView(page.buffer);
    const off = ioreqSlotOffset(2);
    expect(off).toBe(64);
    const r = createIoreq();
    r.addr = 0x3f8n;
    r.size = 1;
    r.count = 1;
    r.dir = IOREQ_WRITE;
    r.df = true;
    r.data = 0x41n;
    ioreq.encode(view, off, r);
    expect(ioreqSetState(page, off, STATE_IOREQ_READY)).toBe(true);
    expect(ioreqGetState(page, off)).toBe(STATE_IOREQ_READY);
    expect(ioreqCompareExchangeState(page, off, STATE_IORESP_READY, STATE_IOREQ_NONE)).toBe(false);
    expect(ioreqCompareExchangeState(page, off, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS)).toBe(true);
    expect(ioreqCompareExchangeState(page, off, STATE_IOREQ_INPROCESS, STATE_IORESP_READY)).toBe(true);
    const d = ioreq.decode(view, off);
    expect(d.state).toBe(STATE_IORESP_READY);
    expect(d.df).toBe(true); // other bits of the byte survived
    expect(d.addr).toBe(0x3f8n);
  });

  it('encodes PCI config addresses as SEG|BUS|DEV|FN|OFFSET', () => {
    const a = ioreqPciAddr({ segment: 1, bus: 2, dev: 3, fn: 4, reg: 0x10 });
    expect(a).toBe((1n << 48n) | (2n << 40n) | (3n << 35n) | (4n << 32n) | 0x10n);
    expect(decodeIoreqPciAddr(a)).toEqual({ segment: 1, bus: 2, dev: 3, fn: 4, reg: 0x10 });
  });
});

describe('buffered ioreq page', () => {
  it('buf_ioreq_t: type@0, dir bit 9, size bits 10-11, addr bits 12-31, data@4', () => {
    const { u8, view } = scratch(8);
    bufIoreq.encode(view, 0, { type: IOREQ_TYPE_COPY, dir: IOREQ_WRITE, sizeCode: 2, addr: 0xabcde, data: 0x11223344 });
    // word0 = 0x01 | 2 << 10 | 0xabcde << 12 = 0xabcde801
    expect(hex(u8)).toBe('01e8cdab' + '44332211');
    bufIoreq.encode(view, 0, { type: 0, dir: 1, sizeCode: 3, addr: 0, data: 0 });
    expect(u8[1]).toBe(0b0000_1110);
    expect(bufIoreq.decode(view, 0)).toEqual({ type: 0, dir: 1, sizeCode: 3, addr: 0, data: 0 });
  });

  it('moves posted writes, including 8-byte ones split over two slots', () => {
    const buf = new SharedArrayBuffer(4096);
    const w = new BufferedIoreqWriter(buf);
    const r = new BufferedIoreqReader(buf);
    const dv = new DataView(buf);
    expect(w.send(IOREQ_TYPE_COPY, 0xa0000, 1, 0x41)).toBe(true);
    expect(w.send(IOREQ_TYPE_COPY, 0xa0008, 8, 0x55667788, 0x11223344)).toBe(true);
    expect(dv.getUint32(0, true)).toBe(0); // read_pointer
    expect(dv.getUint32(4, true)).toBe(3); // write_pointer
    expect(hex(new Uint8Array(buf), 8, 8)).toBe('010000a0' + '41000000'); // 0x01 | 0xa0000 << 12
    const got: BufferedWrite = { type: 0, addr: 0, size: 0, data: 0, dataHi: 0 };
    expect(r.next(got)).toBe(1);
    expect(got).toEqual({ type: 1, addr: 0xa0000, size: 1, data: 0x41, dataHi: 0 });
    expect(r.next(got)).toBe(1);
    expect(got).toEqual({ type: 1, addr: 0xa0008, size: 8, data: 0x55667788, dataHi: 0x11223344 });
    expect(r.next(got)).toBe(0);
    // refuses what Xen would send synchronously
    expect(w.send(IOREQ_TYPE_COPY, 0x100000, 4, 0)).toBe(false);
    expect(w.send(IOREQ_TYPE_COPY, 0, 3, 0)).toBe(false);
  });

  it('fills up at 511 slots and canonicalises the pointers as the reader laps', () => {
    const buf = new SharedArrayBuffer(4096);
    const w = new BufferedIoreqWriter(buf);
    const r = new BufferedIoreqReader(buf);
    const got: BufferedWrite = { type: 0, addr: 0, size: 0, data: 0, dataHi: 0 };
    let sent = 0;
    while (w.send(IOREQ_TYPE_PIO, 0x80, 4, sent)) sent++;
    expect(sent).toBe(511);
    let seq = 0;
    for (let lap = 0; lap < 5; lap++) {
      for (let i = 0; i < 400; i++) {
        expect(r.next(got)).toBe(1);
        expect(got.data).toBe(seq++);
        expect(w.send(IOREQ_TYPE_PIO, 0x80, 4, sent++)).toBe(true);
      }
    }
    while (r.next(got) === 1) expect(got.data).toBe(seq++);
    expect(seq).toBe(sent);
    const [rp, wp] = r.pointers();
    expect(rp).toBe(wp);
    expect(rp).toBeLessThan(2 * IOREQ_BUFFER_SLOT_NUM); // kept small, never near 2^32
  });

  it('reports impossible pointers and half an 8-byte write as errors', () => {
    const buf = new SharedArrayBuffer(4096);
    const dv = new DataView(buf);
    const r = new BufferedIoreqReader(buf);
    const got: BufferedWrite = { type: 0, addr: 0, size: 0, data: 0, dataHi: 0 };
    dv.setUint32(4, 600, true);
    expect(r.next(got)).toBe(BUFIOREQ_ERROR);
    dv.setUint32(0, 10, true);
    dv.setUint32(4, 5, true);
    expect(r.next(got)).toBe(BUFIOREQ_ERROR);
    // a lone quad-word half
    dv.setUint32(0, 0, true);
    dv.setUint32(4, 1, true);
    bufIoreq.encode(dv, 8, { type: 1, dir: 0, sizeCode: 3, addr: 0, data: 0 });
    expect(r.next(got)).toBe(BUFIOREQ_ERROR);
    // a writer facing a garbage read pointer treats the page as full
    const w = new BufferedIoreqWriter(buf);
    dv.setUint32(0, 0x8000_0000, true);
    expect(w.send(IOREQ_TYPE_PIO, 0, 1, 0)).toBe(false);
  });
});
