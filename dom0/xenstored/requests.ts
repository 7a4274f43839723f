// Request dispatch: one handler per message type, decoding the payload exactly as C xenstored
// does (which types need privilege, which ignore tx_id, how many NUL-terminated strings each
// takes) and turning every failure into an ERROR reply with a Xen error name. Nothing thrown
// here escapes: a bug answers EIO and is logged, and the connection carries on.
import {
  DOMID_SELF, XsError, XsType, bytesToLatin1, countStrings, oneArg, splitStrings, type XsHeader,
} from '../../drivers/xenstore/xs-wire.js';
import { OK_PAYLOAD, type Connection } from './connection.js';
import {
  getPerms, listChildren, makeDir, readValue, removeTree, setPerms, writeValue, type OpContext,
} from './ops.js';
import { canonicalize, domainPath } from './paths.js';
import { parsePermList, permListToStrings } from './perms.js';
import type { Quotas } from './quota.js';
import type { Store } from './store.js';
import { Transaction } from './transaction.js';
import type { WatchTable } from './watches.js';

/** The server state handlers work on (implemented by Xenstored). */
export interface ServerCore {
  readonly store: Store;
  readonly watches: WatchTable;
  readonly quotas: Quotas;
  log(line: string): void;
  domainExists(domid: number): boolean;
  isDomainIntroduced(domid: number): boolean;
  /** INTRODUCE from the wire: map the ring through the embedder's hook. Throws XsError. */
  introduceFromWire(domid: number, mfn: number, port: number): void;
  /** RELEASE from the wire. Throws XsError (ENOENT if not introduced). */
  releaseFromWire(domid: number): void;
  /** SET_TARGET: throws ENOENT unless both are introduced domains. */
  setTarget(domid: number, target: number): void;
  /** CONTROL commands; returns the reply text. */
  control(conn: Connection, args: string[]): string;
  /** Forget a connection's watches and transactions (RESET_WATCHES). */
  resetConnection(conn: Connection): void;
}

interface Req {
  core: ServerCore;
  conn: Connection;
  hdr: XsHeader;
  payload: Uint8Array;
  tx?: Transaction;
  /** Work to do after the reply is queued (WATCH's first event follows its ack). */
  after?: () => void;
}

type Handler = (r: Req) => Uint8Array;
interface Entry {
  fn: Handler;
  /** Privileged connections only (C's XS_FLAG_PRIV). */
  priv?: boolean;
  /** tx_id is ignored (C's XS_FLAG_NOTID). */
  notid?: boolean;
}

/** Malformed input: log one line naming the connection, answer EINVAL. */
function bad(r: Req, why: string): never {
  r.conn.logLine(`malformed ${XsType[r.hdr.type]} request: ${why}`);
  throw new XsError('EINVAL', why);
}

function arg1(r: Req): string {
  const a = oneArg(r.payload);
  if (a === null) bad(r, 'expected exactly one NUL-terminated string');
  return a;
}

/** `n` strings, then any number more: what args() has checked the payload holds. */
type AtLeast<N extends number, T extends string[] = []> = T['length'] extends N ? [...T, ...string[]] : AtLeast<N, [...T, string]>;

/** At least `n` NUL-terminated strings (C's get_strings() < n -> EINVAL). */
function args<N extends 2 | 3>(r: Req, n: N, exact = false): AtLeast<N> {
  const s = splitStrings(r.payload);
  if (s.length < n || (exact && s.length !== n)) bad(r, `expected ${exact ? '' : 'at least '}${n} NUL-terminated strings`);
  return s as AtLeast<N>;
}

/** C's atoi(): leading digits, else 0. */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m ? parseInt(m[1]!, 10) : 0;
}

function path(r: Req, raw: string, allowSpecial = false): string {
  return canonicalize(raw, r.conn, allowSpecial, r.core.quotas.pathMax);
}

function ctxOf(r: Req): OpContext {
  const { core, tx } = r;
  return {
    store: tx ?? core.store,
    req: r.conn,
    quotas: core.quotas,
    changed: tx
      ? (p, exact) => tx.queueEvent(p, exact)
      : (p, exact, node, old) => core.watches.fire(core.store, p, exact, node, old, r.conn),
  };
}

function strings(list: Iterable<string>, bytes?: number): Uint8Array {
  const arr = [...list];
  const len = bytes ?? arr.reduce((n, s) => n + s.length + 1, 0);
  const out = Buffer.alloc(len);
  let off = 0;
  for (const s of arr) off += out.write(s, off, 'latin1') + 1;
  return out;
}

const text = (s: string) => Buffer.from(`${s}\0`, 'latin1');

const HANDLERS: (Entry | undefined)[] = [];

HANDLERS[XsType.READ] = { fn: (r) => readValue(ctxOf(r), path(r, arg1(r))) };

HANDLERS[XsType.WRITE] = {
  fn: (r) => {
    const nul = r.payload.indexOf(0);
    if (nul < 0) bad(r, 'path is not NUL-terminated');
    const p = path(r, bytesToLatin1(r.payload.subarray(0, nul)));
    writeValue(ctxOf(r), p, r.payload.slice(nul + 1)); // copy: the input buffer is reused
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.MKDIR] = {
  fn: (r) => {
    makeDir(ctxOf(r), path(r, arg1(r)));
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.RM] = {
  fn: (r) => {
    removeTree(ctxOf(r), path(r, arg1(r)));
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.DIRECTORY] = {
  fn: (r) => {
    const ctx = ctxOf(r);
    const p = path(r, arg1(r));
    const children = listChildren(ctx, p);
    return strings(children, ctx.store.get(p)!.childBytes);
  },
};

HANDLERS[XsType.DIRECTORY_PART] = {
  fn: (r) => {
    if (countStrings(r.payload) !== 2) bad(r, 'expected path and offset');
    const [raw, offStr] = splitStrings(r.payload) as [string, string]; // counted above
    const ctx = ctxOf(r);
    const p = path(r, raw);
    const list = strings(listChildren(ctx, p));
    const gen = text(String(ctx.store.get(p)!.generation));
    const off = Math.max(0, atoi(offStr));
    if (off >= list.length) return Buffer.concat([gen, new Uint8Array(1)]);
    // Whole names only, as many as fit; an extra NUL marks the end of the list (C).
    const maxlen = 4096 - gen.length - 1;
    let len = 0;
    for (;;) {
      const end = list.indexOf(0, off + len);
      const nameLen = (end < 0 ? list.length : end) - (off + len);
      if (len + nameLen >= maxlen) break;
      len += nameLen + 1;
      if (off + len >= list.length) break;
    }
    const done = off + len >= list.length;
    return Buffer.concat([gen, list.subarray(off, off + len), done ? new Uint8Array(1) : new Uint8Array(0)]);
  },
};

HANDLERS[XsType.GET_PERMS] = {
  fn: (r) => strings(permListToStrings(getPerms(ctxOf(r), path(r, arg1(r), true)))),
};

HANDLERS[XsType.SET_PERMS] = {
  fn: (r) => {
    const n = countStrings(r.payload);
    if (n < 2) bad(r, 'expected path and at least one permission');
    const s = splitStrings(r.payload);
    if (!r.conn.privileged && n - 1 > r.core.quotas.perms) {
      throw new XsError('ENOSPC', `more than ${r.core.quotas.perms} permissions`);
    }
    const perms = parsePermList(s.slice(1));
    if (!perms) bad(r, 'bad permission string');
    for (const p of perms) if (!r.core.domainExists(p.id)) p.ignore = true;
    setPerms(ctxOf(r), path(r, s[0]!, true), perms);
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.WATCH] = {
  notid: true,
  fn: (r) => {
    const [raw, token] = args(r, 2, true);
    const relative = raw[0] !== '/' && raw[0] !== '@';
    const p = path(r, raw, true);
    const { conn, core } = r;
    const prefixLen = relative ? domainPath(conn.domid).length + 1 : 0;
    const limit = conn.privileged ? Infinity : core.quotas.watches;
    core.watches.add(conn, p, token, prefixLen, limit);
    // Fired once straight away, after the ack, with the path as the watcher gave it.
    r.after = () => conn.sendEvent(prefixLen ? p.slice(prefixLen) : p, token);
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.UNWATCH] = {
  notid: true,
  fn: (r) => {
    const [raw, token] = args(r, 2, true);
    if (!r.core.watches.remove(r.conn, path(r, raw, true), token)) throw new XsError('ENOENT', 'no such watch');
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.TRANSACTION_START] = {
  fn: (r) => {
    const { conn, core } = r;
    if (r.tx) throw new XsError('EBUSY', 'transactions do not nest');
    if (!conn.privileged && conn.transactions.size >= core.quotas.transactions) {
      throw new XsError('ENOSPC', `more than ${core.quotas.transactions} transactions`);
    }
    const id = conn.allocTxId();
    const maxNodes = conn.privileged ? Infinity : core.quotas.transactionNodes;
    conn.transactions.set(id, new Transaction(core.store, id, maxNodes));
    return text(String(id));
  },
};

HANDLERS[XsType.TRANSACTION_END] = {
  fn: (r) => {
    const a = arg1(r);
    if (a !== 'T' && a !== 'F') bad(r, 'expected T or F');
    const { tx, conn, core } = r;
    if (!tx) throw new XsError('ENOENT', 'no transaction');
    conn.transactions.delete(tx.id); // ends whatever the outcome, as in C
    if (a === 'T') {
      const events = tx.commit(conn.privileged ? undefined : core.quotas.nodes);
      for (const e of events) core.watches.fire(core.store, e.path, e.exact, undefined, e.oldPerms, conn);
    }
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.INTRODUCE] = {
  priv: true,
  fn: (r) => {
    const [d, mfn, port] = args(r, 3);
    const domid = atoi(d);
    if (domid <= 0 || domid >= DOMID_SELF) bad(r, `not a domain id: ${d}`);
    if (atoi(port) <= 0) bad(r, `bad event channel port: ${port}`);
    r.core.introduceFromWire(domid, atoi(mfn), atoi(port));
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.RELEASE] = {
  priv: true,
  fn: (r) => {
    const domid = atoi(arg1(r));
    if (domid === 0) throw new XsError('EINVAL', 'cannot release dom0');
    r.core.releaseFromWire(domid);
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.GET_DOMAIN_PATH] = { fn: (r) => text(domainPath(atoi(arg1(r)))) };

HANDLERS[XsType.IS_DOMAIN_INTRODUCED] = {
  priv: true,
  fn: (r) => {
    const domid = atoi(arg1(r));
    return text(domid === DOMID_SELF || r.core.isDomainIntroduced(domid) ? 'T' : 'F');
  },
};

HANDLERS[XsType.RESUME] = {
  priv: true,
  fn: (r) => {
    const domid = atoi(arg1(r));
    if (domid === 0) throw new XsError('EINVAL', 'cannot resume dom0');
    if (!r.core.isDomainIntroduced(domid)) throw new XsError('ENOENT', `domain ${domid} not introduced`);
    // We do not track shutdown to suppress repeated @releaseDomain, so there is nothing to re-arm.
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.SET_TARGET] = {
  priv: true,
  fn: (r) => {
    const [d, t] = args(r, 2);
    r.core.setTarget(atoi(d), atoi(t));
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.RESET_WATCHES] = {
  fn: (r) => {
    r.core.resetConnection(r.conn);
    return OK_PAYLOAD;
  },
};

HANDLERS[XsType.CONTROL] = {
  priv: true,
  fn: (r) => {
    const a = splitStrings(r.payload);
    if (a.length === 0) bad(r, 'no command');
    return text(r.core.control(r.conn, a));
  },
};

/** Process one request from `conn`; always answers, never throws. */
export function handleRequest(core: ServerCore, conn: Connection, hdr: XsHeader, payload: Uint8Array): void {
  const entry = hdr.type < HANDLERS.length ? HANDLERS[hdr.type] : undefined;
  if (!entry) {
    conn.logLine(`unknown message type ${hdr.type} (req_id ${hdr.reqId}): answered ENOSYS`);
    conn.replyError(hdr, 'ENOSYS');
    return;
  }
  const r: Req = { core, conn, hdr, payload };
  try {
    if (entry.priv && !conn.privileged) throw new XsError('EACCES', 'privileged operation');
    if (!entry.notid && hdr.txId !== 0) {
      r.tx = conn.transactions.get(hdr.txId);
      if (!r.tx && conn.abortedTx.has(hdr.txId)) {
        // Lost with the xenstored that died (live-state.ts): the guest's retry starts anew.
        if (hdr.type === XsType.TRANSACTION_END) conn.abortedTx.delete(hdr.txId);
        throw new XsError('EAGAIN', `transaction ${hdr.txId} was aborted by a xenstored restart`);
      }
      if (!r.tx) throw new XsError('ENOENT', `no transaction ${hdr.txId}`);
    }
    const reply = entry.fn(r);
    conn.reply(hdr, hdr.type, reply);
    r.after?.();
  } catch (e) {
    if (e instanceof XsError) {
      conn.replyError(hdr, e.code);
    } else {
      conn.logLine(`internal error on ${XsType[hdr.type]}: ${(e as Error)?.stack ?? e}`);
      conn.replyError(hdr, 'EIO');
    }
  }
}
