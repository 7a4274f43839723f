// The unix socket: stream reassembly, and bad input answered with Xen error names (or, for an
// oversized payload, by dropping only that connection), always with one log line and
// without disturbing other clients.
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FrameReader } from '../../drivers/xenstore/xs-framing.js';
import {
  XsType, encodeMessage, joinStrings, oneArg, readHeader, splitStrings, writeHeader,
} from '../../drivers/xenstore/xs-wire.js';
import { Xenstored } from '../../dom0/xenstored/index.js';
import { expectCode, listening, onCleanup, rawSocket, recorder, settle, socketClient, tempSocketPath } from './helpers.js';

describe('wire codec', () => {
  it('encodes the 16-byte little-endian header', () => {
    const m = encodeMessage(XsType.WRITE, 0x01020304, 7, joinStrings(['/a', 'b']));
    expect([...m.subarray(0, 16)]).toEqual([11, 0, 0, 0, 4, 3, 2, 1, 7, 0, 0, 0, 5, 0, 0, 0]);
    expect(readHeader(m)).toEqual({ type: 11, reqId: 0x01020304, txId: 7, len: 5 });
    const b = new Uint8Array(20);
    writeHeader(b, 4, { type: 0xffffffff, reqId: 1, txId: 2, len: 3 });
    expect(readHeader(b, 4)).toEqual({ type: 0xffffffff, reqId: 1, txId: 2, len: 3 });
  });

  it('splits NUL-separated strings and enforces exact one-argument payloads', () => {
    expect(splitStrings(Buffer.from('a\0bc\0\0'))).toEqual(['a', 'bc', '']);
    expect(splitStrings(Buffer.from('a\0tail'))).toEqual(['a']);
    expect(oneArg(Buffer.from('/x\0'))).toBe('/x');
    expect(oneArg(Buffer.from('/x'))).toBeNull();
    expect(oneArg(Buffer.from('/x\0y\0'))).toBeNull();
  });

  it('reassembles messages split anywhere across chunks, and rejects oversized ones', () => {
    const msgs = [
      encodeMessage(XsType.READ, 1, 0, joinStrings(['/a'])),
      encodeMessage(XsType.WRITE, 2, 0, new Uint8Array(3000)),
      encodeMessage(XsType.MKDIR, 3, 0, joinStrings(['/b'])),
    ];
    const all = Buffer.concat(msgs);
    for (const step of [1, 7, 16, 17, 1000, all.length]) {
      const got: number[] = [];
      const r = new FrameReader((h, p) => got.push(h.reqId * 10000 + p.length), () => {});
      for (let i = 0; i < all.length; i += step) r.push(all.subarray(i, i + step));
      expect(got).toEqual([10003, 23000, 30003]);
    }
    const errors: string[] = [];
    const r = new FrameReader(() => {}, (w) => errors.push(w));
    const big = encodeMessage(XsType.READ, 1, 0, new Uint8Array(0));
    new DataView(big.buffer).setUint32(12, 4097, true);
    r.push(big);
    expect(errors).toEqual(['payload length 4097 exceeds 4096']);
  });
});

describe('socket server', () => {
  it('creates parent directories, replaces a stale socket, makes it mode 0600', async () => {
    const path = tempSocketPath();
    const first = new Xenstored({ log: () => {} });
    await first.listen(path);
    // Simulate a crash: the socket file stays behind.
    const stale = statSync(path);
    expect(stale.isSocket()).toBe(true);
    const second = new Xenstored({ log: () => {} });
    onCleanup(() => second.close());
    onCleanup(() => first.close());
    await second.listen(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const c = await socketClient(path);
    expect(await c.directory('/')).toEqual(['local', 'tool', 'vm']);
  });

  it('refuses to remove a non-socket at the socket path', async () => {
    const path = tempSocketPath();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, 'x');
    const xs = new Xenstored({ log: () => {} });
    onCleanup(() => xs.close());
    await expect(xs.listen(path)).rejects.toThrow(/not a socket/);
    expect(existsSync(path)).toBe(true);
  });

  it('answers requests from real socket clients, pipelined, with watches', async () => {
    const { path } = await listening();
    const a = await socketClient(path);
    const b = await socketClient(path);
    const r = recorder();
    await b.watch('/s', 'tok', r.cb);
    await Promise.all(Array.from({ length: 100 }, (_, i) => a.write(`/s/k${i}`, `v${i}`)));
    expect(await a.read('/s/k42')).toBe('v42');
    await settle(20);
    expect(r.events.length).toBe(101);
  });

  it('unknown message types answer ENOSYS with req_id and tx_id kept; the connection goes on', async () => {
    const { path, logs } = await listening();
    const s = await rawSocket(path);
    s.send(99, ['x'], { reqId: 77, txId: 0 });
    let m = await s.next();
    expect(m.hdr).toMatchObject({ type: XsType.ERROR, reqId: 77, txId: 0 });
    expect(m.payload.toString('latin1')).toBe('ENOSYS\0');
    s.send(XsType.RESTRICT, ['1'], { reqId: 78 });
    expect((await s.next()).payload.toString('latin1')).toBe('ENOSYS\0');
    s.send(XsType.WATCH_EVENT, ['/x', 't'], { reqId: 79 });
    expect((await s.next()).payload.toString('latin1')).toBe('ENOSYS\0');
    expect(logs.some((l) => /socket client \d+: unknown message type 99/.test(l))).toBe(true);
    s.send(XsType.READ, ['/'], { reqId: 80 });
    m = await s.next();
    expect(m.hdr).toMatchObject({ type: XsType.READ, reqId: 80 });
  });

  it('payloads missing their NUL terminators answer EINVAL and are logged', async () => {
    const { path, logs } = await listening();
    const s = await rawSocket(path);
    const cases: [XsType, Uint8Array][] = [
      [XsType.READ, Buffer.from('/tool')],
      [XsType.READ, Buffer.from('/tool\0extra\0')],
      [XsType.WRITE, Buffer.from('/nonul')],
      [XsType.MKDIR, new Uint8Array(0)],
      [XsType.WATCH, Buffer.from('/only-path\0')],
      [XsType.SET_PERMS, Buffer.from('/tool\0')],
      [XsType.DIRECTORY_PART, Buffer.from('/tool\0')],
      [XsType.GET_DOMAIN_PATH, new Uint8Array(0)],
    ];
    for (const [i, [type, raw]] of cases.entries()) {
      s.send(type, [], { raw, reqId: 100 + i, txId: 0 });
      const m = await s.next();
      expect(m.hdr.reqId).toBe(100 + i);
      expect(m.payload.toString('latin1')).toBe('EINVAL\0');
    }
    expect(logs.filter((l) => l.includes('malformed')).length).toBe(cases.length);
    s.send(XsType.READ, ['/tool/xenstored'], { reqId: 1 });
    expect((await s.next()).hdr.type).toBe(XsType.READ);
  });

  it('an oversized payload drops only that connection', async () => {
    const { path, logs } = await listening();
    const other = await socketClient(path);
    const s = await rawSocket(path);
    const hdr = encodeMessage(XsType.WRITE, 1, 0, new Uint8Array(0));
    new DataView(hdr.buffer).setUint32(12, 4097, true);
    s.sock.write(hdr);
    s.sock.write(new Uint8Array(4097));
    expect(await s.closedWithin(2000)).toBe(true);
    expect(logs.some((l) => /socket client \d+: dropping connection: payload length 4097/.test(l))).toBe(true);
    await other.write('/still', 'fine');
    expect(await other.read('/still')).toBe('fine');
  });

  it('garbage split across writes is reassembled, judged and survived', async () => {
    const { path } = await listening();
    const s = await rawSocket(path);
    const m = encodeMessage(XsType.READ, 5, 0, joinStrings(['/tool']));
    for (const byte of m) {
      s.sock.write(Uint8Array.of(byte));
      await settle(0);
    }
    expect((await s.next()).hdr).toMatchObject({ type: XsType.READ, reqId: 5 });
    // A non-existent transaction id is ENOENT, not a crash.
    s.send(XsType.READ, ['/tool'], { reqId: 6, txId: 12345 });
    expect((await s.next()).payload.toString('latin1')).toBe('ENOENT\0');
  });

  it('drops a socket client that stops reading its watch events (XSA-349)', async () => {
    const { path, logs, dom0 } = await listening({ maxOutputBytes: 64 * 1024 });
    const s = await rawSocket(path);
    s.sock.pause(); // never read again
    s.send(XsType.WATCH, ['/flood', 'tok'], { reqId: 1 });
    await settle(20);
    for (let i = 0; i < 50000 && !logs.some((l) => l.includes('XSA-349')); i++) {
      await dom0.write(`/flood/node-with-a-fairly-long-name-${i}`, '');
    }
    expect(logs.some((l) => /socket client \d+: dropping connection: .*XSA-349/.test(l))).toBe(true);
    expect(await dom0.read('/tool')).toBe('');
  });

  it('reply errors over the socket client carry Xen names', async () => {
    const { path } = await listening();
    const c = await socketClient(path);
    await expectCode(c.read('/no/such'), 'ENOENT');
    await expectCode(c.write('/bad//path', ''), 'EINVAL');
  });
});
