// XsClient: the xenstore client library (libxenstore's job) over any Transport. Used by dom0's
// toolstack and backends (socket or in-process) and by guest kernels (ring), so it holds no
// dom0 knowledge. Requests are pipelined; replies are matched by req_id.
import type { Transport } from './transport.js';
import { socketTransport } from './socket-transport.js';
import {
  XENSTORE_PAYLOAD_MAX, XS_HEADER_SIZE, XsError, XsType, bytesToLatin1, formatPerm,
  parsePerm, readHeader, splitStrings, toPerm, type XsPerm,
} from './xs-wire.js';

export type XsValue = string | Uint8Array;
export type WatchCallback = (path: string, token: string) => void;

interface Pending {
  type: XsType;
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
}

interface WatchEntry {
  path: string;
  cb: WatchCallback;
}

const utf8 = new TextDecoder();

export class XsClient {
  private nextReqId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Watches by token; a token may (rarely) be shared by several paths. */
  private readonly watches = new Map<string, WatchEntry[]>();
  private dead: Error | null = null;

  constructor(private readonly transport: Transport) {
    transport.onMessage((m) => this.receive(m));
    transport.onClose?.((err) => this.fail(err ?? new XsError('EIO', 'xenstore connection closed')));
  }

  /** Connect to xenstored's unix socket (XENSTORED_PATH, else /var/run/xenstored/socket). */
  static async connect(path?: string): Promise<XsClient> {
    return new XsClient(await socketTransport(path));
  }

  close(): void {
    this.transport.close();
    this.fail(new XsError('EIO', 'xenstore client closed'));
  }

  // ---- node operations (tx = 0 outside a transaction) ----

  async read(path: string, tx = 0): Promise<string> {
    return utf8.decode(await this.request(XsType.READ, [path], tx));
  }

  readBytes(path: string, tx = 0): Promise<Uint8Array> {
    return this.request(XsType.READ, [path], tx);
  }

  async write(path: string, value: XsValue, tx = 0): Promise<void> {
    // WRITE is "<path>\0<value>" with no NUL after the value.
    await this.request(XsType.WRITE, [path], tx, typeof value === 'string' ? Buffer.from(value) : value);
  }

  async mkdir(path: string, tx = 0): Promise<void> {
    await this.request(XsType.MKDIR, [path], tx);
  }

  async rm(path: string, tx = 0): Promise<void> {
    await this.request(XsType.RM, [path], tx);
  }

  async exists(path: string, tx = 0): Promise<boolean> {
    try {
      await this.request(XsType.READ, [path], tx);
      return true;
    } catch (e) {
      if ((e as XsError).code === 'ENOENT') return false;
      throw e;
    }
  }

  async directory(path: string, tx = 0): Promise<string[]> {
    try {
      return splitStrings(await this.request(XsType.DIRECTORY, [path], tx));
    } catch (e) {
      // Child lists longer than one payload need DIRECTORY_PART (as libxenstore does).
      if ((e as XsError).code !== 'E2BIG') throw e;
      return this.directoryPart(path, tx);
    }
  }

  async getPerms(path: string, tx = 0): Promise<XsPerm[]> {
    const strs = splitStrings(await this.request(XsType.GET_PERMS, [path], tx));
    return strs.map((s) => {
      const p = parsePerm(s);
      if (!p) throw new XsError('EIO', `xenstored sent a bad permission ${JSON.stringify(s)}`);
      return p;
    });
  }

  async setPerms(path: string, perms: readonly (XsPerm | string)[], tx = 0): Promise<void> {
    await this.request(XsType.SET_PERMS, [path, ...perms.map((p) => formatPerm(toPerm(p)))], tx);
  }

  // ---- watches ----

  /** Resolves once xenstored acknowledged; `cb` also gets the initial event Xen fires at once. */
  async watch(path: string, token: string, cb: WatchCallback): Promise<void> {
    const list = this.watches.get(token) ?? [];
    const entry = { path, cb };
    list.push(entry);
    this.watches.set(token, list); // before sending: the first event follows the ack at once
    try {
      await this.request(XsType.WATCH, [path, token], 0);
    } catch (e) {
      this.dropWatch(path, token, entry);
      throw e;
    }
  }

  async unwatch(path: string, token: string): Promise<void> {
    this.dropWatch(path, token);
    await this.request(XsType.UNWATCH, [path, token], 0);
  }

  async resetWatches(): Promise<void> {
    this.watches.clear();
    await this.request(XsType.RESET_WATCHES, [''], 0);
  }

  // ---- transactions ----

  async transactionStart(): Promise<number> {
    const id = Number(bytesToLatin1(stripNul(await this.request(XsType.TRANSACTION_START, [''], 0))));
    if (!Number.isInteger(id) || id <= 0) throw new XsError('EIO', 'xenstored sent a bad transaction id');
    return id;
  }

  async transactionEnd(tx: number, commit: boolean): Promise<void> {
    await this.request(XsType.TRANSACTION_END, [commit ? 'T' : 'F'], tx);
  }

  /**
   * Run `fn` inside a transaction and commit; a commit answered EAGAIN (a node it touched
   * changed meanwhile) reruns `fn` from scratch. Any error from `fn` aborts the transaction.
   */
  async transaction<T>(fn: (t: XsTransaction) => Promise<T>, maxAttempts = 32): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const id = await this.transactionStart();
      let result: T;
      try {
        result = await fn(new XsTransaction(this, id));
      } catch (e) {
        await this.transactionEnd(id, false).catch(() => {});
        throw e;
      }
      try {
        await this.transactionEnd(id, true);
        return result;
      } catch (e) {
        if ((e as XsError).code !== 'EAGAIN' || attempt >= maxAttempts) throw e;
      }
    }
  }

  // ---- domain management (privileged callers only) ----

  async getDomainPath(domid: number): Promise<string> {
    return bytesToLatin1(stripNul(await this.request(XsType.GET_DOMAIN_PATH, [String(domid)], 0)));
  }

  async introduce(domid: number, mfn: number | bigint, port: number): Promise<void> {
    await this.request(XsType.INTRODUCE, [String(domid), String(mfn), String(port)], 0);
  }

  async release(domid: number): Promise<void> {
    await this.request(XsType.RELEASE, [String(domid)], 0);
  }

  async isDomainIntroduced(domid: number): Promise<boolean> {
    return bytesToLatin1(stripNul(await this.request(XsType.IS_DOMAIN_INTRODUCED, [String(domid)], 0))) === 'T';
  }

  async resume(domid: number): Promise<void> {
    await this.request(XsType.RESUME, [String(domid)], 0);
  }

  async setTarget(domid: number, target: number): Promise<void> {
    await this.request(XsType.SET_TARGET, [String(domid), String(target)], 0);
  }

  /** CONTROL <cmd> [args...]: returns the reply text ("OK" for most commands). */
  async control(cmd: string, ...args: string[]): Promise<string> {
    return utf8.decode(stripNul(await this.request(XsType.CONTROL, [cmd, ...args], 0)));
  }

  // ---- plumbing ----

  /**
   * Send `strings` each followed by NUL, then `tail` raw (WRITE's value). Resolves with a
   * copy of the reply payload; an ERROR reply rejects with XsError(code).
   */
  request(type: XsType, strings: readonly string[], tx: number, tail?: Uint8Array): Promise<Uint8Array> {
    if (this.dead) return Promise.reject(this.dead);
    let len = tail ? tail.length : 0;
    for (const s of strings) len += Buffer.byteLength(s) + 1;
    if (len > XENSTORE_PAYLOAD_MAX) {
      // Sending it would get the whole connection killed; libxenstore refuses the same way.
      return Promise.reject(new XsError('E2BIG', `xenstore payload of ${len} bytes exceeds ${XENSTORE_PAYLOAD_MAX}`));
    }
    const reqId = this.allocReqId();
    const msg = Buffer.allocUnsafe(XS_HEADER_SIZE + len);
    msg.writeUInt32LE(type, 0);
    msg.writeUInt32LE(reqId, 4);
    msg.writeUInt32LE(tx >>> 0, 8);
    msg.writeUInt32LE(len, 12);
    let off = XS_HEADER_SIZE;
    for (const s of strings) {
      off += msg.write(s, off);
      msg[off++] = 0;
    }
    if (tail) msg.set(tail, off);
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(reqId, { type, resolve, reject });
      this.transport.send(msg);
    });
  }

  private allocReqId(): number {
    // req_id is a u32 echoed back; skip ids still in flight after wrap-around.
    let id = this.nextReqId;
    while (this.pending.has(id)) id = (id + 1) >>> 0;
    this.nextReqId = (id + 1) >>> 0;
    return id;
  }

  private receive(msg: Uint8Array): void {
    if (msg.length < XS_HEADER_SIZE) return;
    const hdr = readHeader(msg);
    const payload = msg.slice(XS_HEADER_SIZE, XS_HEADER_SIZE + hdr.len); // copy: the view is reused
    if (hdr.type === XsType.WATCH_EVENT) {
      this.deliverEvent(payload);
      return;
    }
    const p = this.pending.get(hdr.reqId);
    if (!p) return; // a reply nobody waits for (e.g. after close); nothing sensible to do
    this.pending.delete(hdr.reqId);
    if (hdr.type === XsType.ERROR) {
      const code = bytesToLatin1(stripNul(payload));
      p.reject(new XsError(code, `xenstore ${XsType[p.type] ?? p.type}: ${code}`));
    } else if (hdr.type !== p.type) {
      p.reject(new XsError('EIO', `xenstored answered ${XsType[p.type]} with type ${hdr.type}`));
    } else {
      p.resolve(payload);
    }
  }

  private deliverEvent(payload: Uint8Array): void {
    // Decoded as UTF-8, the way watch() encoded the token (paths are ASCII either way).
    const nul1 = payload.indexOf(0);
    const nul2 = nul1 < 0 ? -1 : payload.indexOf(0, nul1 + 1);
    if (nul2 < 0) return;
    const path = utf8.decode(payload.subarray(0, nul1));
    const token = utf8.decode(payload.subarray(nul1 + 1, nul2));
    const list = this.watches.get(token);
    if (!list) return;
    for (const w of list.slice()) {
      if (watchCovers(w.path, path)) {
        try {
          w.cb(path, token);
        } catch {
          // A throwing watcher must not break delivery to the others.
        }
      }
    }
  }

  private dropWatch(path: string, token: string, only?: WatchEntry): void {
    const list = this.watches.get(token);
    if (!list) return;
    const keep = list.filter((w) => (only ? w !== only : w.path !== path));
    if (keep.length) this.watches.set(token, keep);
    else this.watches.delete(token);
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private async directoryPart(path: string, tx: number): Promise<string[]> {
    for (let restarts = 0; restarts < 16; restarts++) {
      const names: string[] = [];
      let gen: string | null = null;
      let off = 0;
      for (;;) {
        const reply = await this.request(XsType.DIRECTORY_PART, [path, String(off)], tx);
        const nul = reply.indexOf(0);
        if (nul < 0) throw new XsError('EIO', 'bad DIRECTORY_PART reply');
        const g = bytesToLatin1(reply.subarray(0, nul));
        if (gen !== null && g !== gen) break; // node changed between parts: start over
        gen = g;
        const rest = reply.subarray(nul + 1);
        // The list is complete when it ends with an empty string (an extra NUL).
        const done = rest.length === 1 || (rest.length >= 2 && rest[rest.length - 2] === 0);
        names.push(...splitStrings(done ? rest.subarray(0, rest.length - 1) : rest));
        if (done) return names;
        off += rest.length;
      }
    }
    throw new XsError('EAGAIN', `directory ${path} kept changing`);
  }
}

/** The client view of one open transaction: the node operations with tx_id bound. */
export class XsTransaction {
  constructor(
    private readonly c: XsClient,
    readonly id: number,
  ) {}
  read(path: string) {
    return this.c.read(path, this.id);
  }
  readBytes(path: string) {
    return this.c.readBytes(path, this.id);
  }
  write(path: string, value: XsValue) {
    return this.c.write(path, value, this.id);
  }
  mkdir(path: string) {
    return this.c.mkdir(path, this.id);
  }
  rm(path: string) {
    return this.c.rm(path, this.id);
  }
  exists(path: string) {
    return this.c.exists(path, this.id);
  }
  directory(path: string) {
    return this.c.directory(path, this.id);
  }
  getPerms(path: string) {
    return this.c.getPerms(path, this.id);
  }
  setPerms(path: string, perms: readonly (XsPerm | string)[]) {
    return this.c.setPerms(path, perms, this.id);
  }
}

function stripNul(b: Uint8Array): Uint8Array {
  return b.length > 0 && b[b.length - 1] === 0 ? b.subarray(0, b.length - 1) : b;
}

/** Does a watch on `wpath` cover an event on `epath` (Xen's is_child rule)? */
function watchCovers(wpath: string, epath: string): boolean {
  if (wpath === epath || wpath === '/') return true;
  return epath.startsWith(wpath) && epath.charCodeAt(wpath.length) === 47; /* '/' */
}
