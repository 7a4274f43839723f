// The XenStore wire format (xen/include/public/io/xs_wire.h): a 16-byte little-endian header
// followed by `len` bytes of NUL-separated strings. Shared by the client library (dom0 tools,
// guest kernels) and xenstored; nothing here knows which side it runs on.

/** Message types, numbered exactly as enum xsd_sockmsg_type. */
export enum XsType {
  CONTROL = 0, // formerly DEBUG
  DIRECTORY = 1,
  READ = 2,
  GET_PERMS = 3,
  WATCH = 4,
  UNWATCH = 5,
  TRANSACTION_START = 6,
  TRANSACTION_END = 7,
  INTRODUCE = 8,
  RELEASE = 9,
  GET_DOMAIN_PATH = 10,
  WRITE = 11,
  MKDIR = 12,
  RM = 13,
  SET_PERMS = 14,
  WATCH_EVENT = 15,
  ERROR = 16,
  IS_DOMAIN_INTRODUCED = 17,
  RESUME = 18,
  SET_TARGET = 19,
  RESTRICT = 20, // removed from xenstored; answered as unknown
  RESET_WATCHES = 21,
  DIRECTORY_PART = 22,
  INVALID = 0xffff, // guaranteed never to be a valid type
}

export const XS_HEADER_SIZE = 16;
/** Larger payloads kill the connection (docs/misc/xenstore.txt). */
export const XENSTORE_PAYLOAD_MAX = 4096;
export const XENSTORE_ABS_PATH_MAX = 3072;
export const XENSTORE_REL_PATH_MAX = 2048;
/** DOMID_SELF as IS_DOMAIN_INTRODUCED understands it. */
export const DOMID_SELF = 0x7ff0;

/**
 * Error names a reply may carry, in xs_wire.h's xsd_errors order (EPERM was appended in 2022).
 * EQUOTA is oxenstored's; C xenstored never sends it, but a client may receive it.
 */
export const XS_ERROR_NAMES = [
  'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO', 'ENOTEMPTY',
  'ENOSYS', 'EROFS', 'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM', 'EQUOTA',
] as const;
export type XsErrorName = (typeof XS_ERROR_NAMES)[number];

export interface XsHeader {
  type: number;
  reqId: number;
  txId: number;
  len: number;
}

/** An Error whose `.code` is the Xen error name, as the client throws and xenstored answers. */
export class XsError extends Error {
  constructor(readonly code: XsErrorName | string, message?: string) {
    super(message ?? code);
    this.name = 'XsError';
  }
}

export function readHeader(buf: Uint8Array, off = 0): XsHeader {
  const dv = new DataView(buf.buffer, buf.byteOffset + off, XS_HEADER_SIZE);
  return {
    type: dv.getUint32(0, true),
    reqId: dv.getUint32(4, true),
    txId: dv.getUint32(8, true),
    len: dv.getUint32(12, true),
  };
}

export function writeHeader(buf: Uint8Array, off: number, h: XsHeader): void {
  const dv = new DataView(buf.buffer, buf.byteOffset + off, XS_HEADER_SIZE);
  dv.setUint32(0, h.type >>> 0, true);
  dv.setUint32(4, h.reqId >>> 0, true);
  dv.setUint32(8, h.txId >>> 0, true);
  dv.setUint32(12, h.len >>> 0, true);
}

/** Header plus payload in one buffer (one write per message on the socket). */
export function encodeMessage(type: number, reqId: number, txId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(XS_HEADER_SIZE + payload.length);
  writeHeader(out, 0, { type, reqId, txId, len: payload.length });
  out.set(payload, XS_HEADER_SIZE);
  return out;
}

// Strings on the wire are bytes. Paths and tokens are decoded as latin1 so that any byte
// sequence round-trips unchanged; callers wanting UTF-8 text convert at the edge.
export function bytesToLatin1(b: Uint8Array): string {
  // Buffer's latin1 decoding is several times faster than TextDecoder for short strings.
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
}

export function latin1ToBytes(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

/** Payload of strings each followed by NUL: ["a","b"] -> "a\0b\0". */
export function joinStrings(parts: readonly (string | Uint8Array)[]): Uint8Array {
  let len = 0;
  const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  for (const b of bufs) len += b.length + 1;
  const out = new Uint8Array(len);
  let off = 0;
  for (const b of bufs) {
    out.set(b, off);
    off += b.length + 1; // the NUL is already zero
  }
  return out;
}

/** Number of NUL-terminated strings in the payload (xenstore_count_strings). */
export function countStrings(payload: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < payload.length; i++) if (payload[i] === 0) n++;
  return n;
}

/**
 * The NUL-terminated strings of a payload, as latin1. Bytes after the final NUL are ignored,
 * as C xenstored's get_strings() does; callers that require exact framing check that.
 */
export function splitStrings(payload: Uint8Array): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(bytesToLatin1(payload.subarray(start, i)));
      start = i + 1;
    }
  }
  return out;
}

/** The one argument of a payload that must be exactly "<arg>\0" (C's onearg()), else null. */
export function oneArg(payload: Uint8Array): string | null {
  const n = payload.length;
  if (n === 0 || payload[n - 1] !== 0) return null;
  const nul = payload.indexOf(0);
  if (nul !== n - 1) return null;
  return bytesToLatin1(payload.subarray(0, n - 1));
}

// ---- permissions as strings: "<n|r|w|b><domid>" ----

export type XsAccess = 'n' | 'r' | 'w' | 'b';
export interface XsPerm {
  id: number;
  access: XsAccess;
}

/** Parse one permission string; null when malformed (xenstore_strings_to_perms -> EINVAL). */
export function parsePerm(s: string): XsPerm | null {
  const c = s[0];
  if (c !== 'n' && c !== 'r' && c !== 'w' && c !== 'b') return null;
  const rest = s.slice(1);
  // C uses strtol(..., 0): decimal is what every tool sends; reject anything else outright.
  if (!/^[0-9]+$/.test(rest)) return null;
  const id = Number(rest);
  if (id > 0xffff) return null;
  return { id, access: c };
}

export function formatPerm(p: XsPerm): string {
  return `${p.access}${p.id}`;
}

/** Accept "b0" strings or {id, access} objects. */
export function toPerm(p: XsPerm | string): XsPerm {
  if (typeof p !== 'string') return p;
  const r = parsePerm(p);
  if (!r) throw new XsError('EINVAL', `bad permission string ${JSON.stringify(p)}`);
  return r;
}
