// Shared fixtures for the xenstored tests: a server with captured log lines, in-process and
// socket clients, a guest ring over a SharedArrayBuffer, raw socket access for bad input,
// and a cleanup list that runs even when a test fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport, type RingTransport } from '../../drivers/xenstore/ring-transport.js';
import { FrameReader } from '../../drivers/xenstore/xs-framing.js';
import { encodeMessage, joinStrings, type XsHeader } from '../../drivers/xenstore/xs-wire.js';
import { Xenstored, type XenstoredOptions } from '../../dom0/xenstored/index.js';

const cleanups: (() => unknown)[] = [];
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      // keep cleaning
    }
  }
});

export interface Fixture {
  xs: Xenstored;
  logs: string[];
  /** Privileged in-process client (dom0's toolstack). */
  dom0: XsClient;
  /** In-process client acting as unprivileged domain `domid`. */
  as(domid: number): XsClient;
}

export function server(opts: XenstoredOptions = {}): Fixture {
  const logs: string[] = [];
  const xs = new Xenstored({ log: (l) => logs.push(l), ...opts });
  onCleanup(() => xs.close());
  const as = (domid: number) => {
    const c = new XsClient(xs.connectLocal(domid));
    onCleanup(() => c.close());
    return c;
  };
  return { xs, logs, dom0: as(0), as };
}

export function tempSocketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-xs-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'run', 'socket');
}

export async function listening(opts: XenstoredOptions = {}): Promise<Fixture & { path: string }> {
  const f = server(opts);
  const path = tempSocketPath();
  await f.xs.listen(path);
  return { ...f, path };
}

export async function socketClient(path: string): Promise<XsClient> {
  const c = await XsClient.connect(path);
  onCleanup(() => c.close());
  return c;
}

/** A guest: a fresh 4 KiB shared page, introduced to xenstored, with an XsClient on it. */
export function guest(xs: Xenstored, domid: number) {
  const page = new Uint8Array(new SharedArrayBuffer(4096));
  let serverSide: { onEvent(): void } | undefined;
  // Event channels deliver asynchronously; a microtask hop models that.
  const transport: RingTransport = ringTransport(page, () => queueMicrotask(() => serverSide?.onEvent()));
  serverSide = xs.introduceDomain(domid, { page, notify: () => queueMicrotask(() => transport.onEvent()) });
  const client = new XsClient(transport);
  onCleanup(() => client.close());
  return { page, client, transport, server: serverSide };
}

/** A raw socket to xenstored for sending malformed bytes and reading exact replies. */
export async function rawSocket(path: string) {
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
  onCleanup(() => sock.destroy());
  const replies: { hdr: XsHeader; payload: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  let closed = false;
  const reader = new FrameReader(
    (hdr, payload) => {
      replies.push({ hdr, payload: Buffer.from(payload) });
      waiters.splice(0).forEach((w) => w());
    },
    () => {},
  );
  sock.on('data', (d) => reader.push(d));
  sock.on('close', () => {
    closed = true;
    waiters.splice(0).forEach((w) => w());
  });
  sock.on('error', () => {});
  return {
    sock,
    send(type: number, strings: string[], opts: { reqId?: number; txId?: number; raw?: Uint8Array } = {}) {
      const payload = opts.raw ?? joinStrings(strings);
      sock.write(encodeMessage(type, opts.reqId ?? 1, opts.txId ?? 0, payload));
    },
    async next(timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (replies.length === 0) {
        if (closed) throw new Error('socket closed');
        if (Date.now() > deadline) throw new Error('no reply');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return replies.shift()!;
    },
    async closedWithin(ms: number) {
      const deadline = Date.now() + ms;
      while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return closed;
    },
  };
}

/** Collects watch events on a client. */
export function recorder() {
  const events: string[] = [];
  return { events, cb: (path: string, token: string) => events.push(`${path} ${token}`) };
}

/** Let queued microtasks and I/O callbacks run. */
export const settle = (ms = 0) => new Promise((r) => setTimeout(r, ms));

export async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    if ((e as { code?: string }).code === code) return;
    throw new Error(`expected ${code}, got ${(e as { code?: string }).code ?? e}`);
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
