import { describe, expect, it } from 'vitest';
import {
  CONSOLE_RING_ERROR,
  ConsoleBackendEnd,
  ConsoleGuestEnd,
  XENCONS_CONNECTION_OFFSET,
  XENCONSOLE_CONNECTED,
  XENCONSOLE_DISCONNECTED,
} from '../../drivers/wire/console-ring.js';
import { hex } from './helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

function page(offset = 0): { buf: SharedArrayBuffer; u8: Uint8Array; idx: DataView; guest: ConsoleGuestEnd; back: ConsoleBackendEnd } {
  const buf = new SharedArrayBuffer(offset + 4096);
  return {
    buf,
    u8: new Uint8Array(buf, offset, 4096),
    idx: new DataView(buf, offset, 4096),
    guest: new ConsoleGuestEnd(buf, offset),
    back: new ConsoleBackendEnd(buf, offset),
  };
}

describe('console.h page layout', () => {
  it('puts out[] at 1024 and out_prod at 3084; in[] at 0 and in_prod at 3076', () => {
    const p = page();
    expect(p.guest.write(enc('hi'))).toBe(2);
    expect(hex(p.u8, 1024, 2)).toBe('6869');
    expect(p.idx.getUint32(3084, true)).toBe(2); // out_prod
    expect(p.idx.getUint32(3080, true)).toBe(0); // out_cons
    const out = new Uint8Array(16);
    expect(p.back.readOutput(out)).toBe(2);
    expect(p.idx.getUint32(3080, true)).toBe(2);

    expect(p.back.writeInput(enc('ls\n'))).toBe(3);
    expect(hex(p.u8, 0, 3)).toBe('6c730a');
    expect(p.idx.getUint32(3076, true)).toBe(3); // in_prod
    const inp = new Uint8Array(8);
    expect(p.guest.read(inp)).toBe(3);
    expect(dec(inp.subarray(0, 3))).toBe('ls\n');
    expect(p.idx.getUint32(3072, true)).toBe(3); // in_cons
  });

  it('has the connection flag at 3088 (XENCONSOLE_CONNECTED = 0)', () => {
    const p = page();
    p.u8[XENCONS_CONNECTION_OFFSET] = XENCONSOLE_DISCONNECTED;
    expect(p.guest.backendConnected).toBe(false);
    p.back.connect();
    expect(p.u8[3088]).toBe(XENCONSOLE_CONNECTED);
    expect(p.guest.backendConnected).toBe(true);
  });
});

describe('console ring engine', () => {
  it('wraps around the 2048-byte out ring and the u32 indices', () => {
    const p = page(4096);
    const start = 0xffff_ffff - 100;
    p.idx.setUint32(3080, start, true);
    p.idx.setUint32(3084, start, true);
    let written = '';
    let read = '';
    const chunk = new Uint8Array(700);
    for (let round = 0; round < 20; round++) {
      const s = `round ${round} `.repeat(40).slice(0, 500);
      const n = p.guest.write(enc(s));
      written += s.slice(0, n);
      const r = p.back.readOutput(chunk);
      read += dec(chunk.subarray(0, r));
    }
    let r: number;
    while ((r = p.back.readOutput(chunk)) > 0) read += dec(chunk.subarray(0, r));
    expect(read).toBe(written);
    expect(written.length).toBeGreaterThan(3 * 2048);
    expect(p.idx.getUint32(3084, true)).toBe((start + written.length) >>> 0);
    expect(p.idx.getUint32(3084, true)).toBeLessThan(start); // the index wrapped
  });

  it('writes only what fits and reports a full ring as 0', () => {
    const p = page();
    expect(p.guest.write(new Uint8Array(3000).fill(65))).toBe(2048);
    expect(p.guest.write(enc('x'))).toBe(0);
    expect(p.back.writeInput(new Uint8Array(1500))).toBe(1024);
  });

  it('bounds copies by the caller buffer and its range', () => {
    const p = page();
    p.guest.write(enc('abcdefgh'));
    const dst = new Uint8Array(4);
    expect(p.back.readOutput(dst, 1, 99)).toBe(3);
    expect(dec(dst.subarray(1))).toBe('abc');
    expect(p.back.readOutput(dst, -5, 2)).toBe(2);
    expect(dec(dst.subarray(0, 2))).toBe('de');
    expect(p.guest.write(enc('xyz'), 2, 100)).toBe(1);
  });

  it('reports garbage indices instead of copying', () => {
    const p = page();
    // guest claims 4000 bytes of output in a 2048-byte ring
    p.idx.setUint32(3084, 4000, true);
    const dst = new Uint8Array(8192);
    expect(p.back.readOutput(dst)).toBe(CONSOLE_RING_ERROR);
    expect(p.idx.getUint32(3080, true)).toBe(0); // nothing consumed
    // consumer index ahead of producer
    p.idx.setUint32(3084, 10, true);
    p.idx.setUint32(3080, 20, true);
    expect(p.back.readOutput(dst)).toBe(CONSOLE_RING_ERROR);
    // backend scribbles in_cons far away: guest refuses to read; backend refuses to write
    p.idx.setUint32(3072, 0x8000_0000, true);
    expect(p.guest.read(dst)).toBe(CONSOLE_RING_ERROR);
    expect(p.back.writeInput(enc('x'))).toBe(CONSOLE_RING_ERROR);
    expect(p.guest.write(enc('x'))).toBe(CONSOLE_RING_ERROR);
  });
});
