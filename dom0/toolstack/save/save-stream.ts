// xenode's save image and migration stream (docs/kvm.md, "Save, restore, migration"): the
// same byte stream is an `xl save` file and what `xl migrate` sends to `xl migrate-receive`,
// as Xen's libxc stream format v2 is both. A header, then records:
//
//   header  = "XNSAVE\r\n" (8), u32 version, u32 flags
//   record  = u32 type, u32 body length, u32 CRC-32 of the body, u32 zero, body
//
//   CONFIG   the domain's config (the toolstack's BuildSpec, JSON), first
//   DOMAIN   u64 RAM bytes, u32 vCPUs, u32 page size
//   PAGES    u32 count, u32 zero, then count u32 page numbers (bit 31 set: an all-zero page,
//            no data), then 4096 bytes for each page without bit 31, in order
//   CPU      the KVM engine's state (common/kvm-state-codec.ts)
//   DEVICES  the device models' state (stubdom/device-model/device-state.ts)
//   END      empty; nothing may follow
//
// A save file carries CONFIG, DOMAIN, CPU, DEVICES, then the PAGES, so a restore checks
// everything but the RAM before it creates anything; a migration sends PAGES while the guest
// runs (the same page may come several times: the last copy wins) and CPU and DEVICES after
// the final stop-and-copy. Pure: the reader takes bytes in any chunks and gives whole, checked
// records, refusing a wrong magic, a newer version, an unknown type, a record over its bound,
// a bad CRC or a stream that ends before END.
import { crc32 } from 'node:zlib';

export const STREAM_MAGIC = Buffer.from('XNSAVE\r\n', 'latin1');
export const STREAM_VERSION = 1;
export const HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 16;
export const PAGE_SIZE = 4096;
/** Pages per PAGES record (4 MiB of data). */
export const MAX_BATCH_PAGES = 1024;
const ZERO_PAGE = 0x8000_0000;

export const REC = { CONFIG: 1, DOMAIN: 2, PAGES: 3, CPU: 4, DEVICES: 5, END: 6 } as const;
export type RecordType = (typeof REC)[keyof typeof REC];
const NAMES: Record<number, string> = { 1: 'CONFIG', 2: 'DOMAIN', 3: 'PAGES', 4: 'CPU', 5: 'DEVICES', 6: 'END' };
/** Largest body per type: a record over its bound is refused before it is buffered. */
const MAX_BODY: Record<number, number> = {
  [REC.CONFIG]: 1 << 20,
  [REC.DOMAIN]: 16,
  [REC.PAGES]: 8 + MAX_BATCH_PAGES * (4 + PAGE_SIZE),
  [REC.CPU]: 4 << 20,
  [REC.DEVICES]: 300 << 20,
  [REC.END]: 0,
};

export class StreamError extends Error {}

export function encodeHeader(): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  STREAM_MAGIC.copy(b, 0);
  b.writeUInt32LE(STREAM_VERSION, 8);
  return b;
}

export function encodeRecord(type: RecordType, body: Uint8Array): Buffer {
  if (body.length > MAX_BODY[type]!) throw new RangeError(`${NAMES[type]} record of ${body.length} bytes`);
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(body.length, 4);
  h.writeUInt32LE(crc32(body) >>> 0, 8);
  return Buffer.concat([h, body]);
}

export interface DomainInfo {
  memoryBytes: number;
  vcpus: number;
}

export function encodeDomain(d: DomainInfo): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(d.memoryBytes), 0);
  b.writeUInt32LE(d.vcpus, 8);
  b.writeUInt32LE(PAGE_SIZE, 12);
  return b;
}

export function decodeDomain(b: Uint8Array): DomainInfo {
  if (b.length !== 16) throw new StreamError(`DOMAIN record of ${b.length} bytes`);
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  const mem = v.readBigUInt64LE(0);
  const vcpus = v.readUInt32LE(8);
  const page = v.readUInt32LE(12);
  if (page !== PAGE_SIZE) throw new StreamError(`page size ${page}, this host's is ${PAGE_SIZE}`);
  if (mem === 0n || mem % BigInt(PAGE_SIZE) !== 0n || mem > 1n << 40n) throw new StreamError(`RAM size ${mem} is not a page multiple up to 1 TiB`);
  if (vcpus < 1 || vcpus > 128) throw new StreamError(`${vcpus} vCPUs`);
  return { memoryBytes: Number(mem), vcpus };
}

/** A batch of pages of `mem` (page numbers in `pages`); all-zero pages travel as a flag. */
export function encodePages(mem: Uint8Array, pages: readonly number[]): Buffer {
  if (pages.length === 0 || pages.length > MAX_BATCH_PAGES) throw new RangeError(`a batch of ${pages.length} pages`);
  const head = Buffer.alloc(8 + 4 * pages.length);
  head.writeUInt32LE(pages.length, 0);
  const data: Uint8Array[] = [];
  pages.forEach((p, i) => {
    const page = mem.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    const zero = isZero(page);
    head.writeUInt32LE((p | (zero ? ZERO_PAGE : 0)) >>> 0, 8 + 4 * i);
    if (!zero) data.push(page);
  });
  return Buffer.concat([head, ...data]);
}

function isZero(page: Uint8Array): boolean {
  const w = new BigUint64Array(page.buffer, page.byteOffset, page.length / 8);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false;
  return true;
}

export interface PageBatch {
  /** Page numbers, and for each its data or null for an all-zero page. */
  pages: number[];
  data: (Uint8Array | null)[];
}

/** Checks a PAGES body against the domain's page count; throws StreamError. */
export function decodePages(b: Uint8Array, totalPages: number): PageBatch {
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (b.length < 8) throw new StreamError('PAGES record shorter than its header');
  const n = v.readUInt32LE(0);
  if (n === 0 || n > MAX_BATCH_PAGES) throw new StreamError(`PAGES record of ${n} pages`);
  if (8 + 4 * n > b.length) throw new StreamError('PAGES record: its page list runs past the end');
  const pages: number[] = [];
  const data: (Uint8Array | null)[] = [];
  let off = 8 + 4 * n;
  for (let i = 0; i < n; i++) {
    const w = v.readUInt32LE(8 + 4 * i);
    const p = w & ~ZERO_PAGE;
    if (p >= totalPages) throw new StreamError(`PAGES record names page ${p}, the domain has ${totalPages}`);
    pages.push(p);
    if (w & ZERO_PAGE) data.push(null);
    else {
      if (off + PAGE_SIZE > b.length) throw new StreamError(`PAGES record: page ${p}'s data is cut off`);
      data.push(b.subarray(off, off + PAGE_SIZE));
      off += PAGE_SIZE;
    }
  }
  if (off !== b.length) throw new StreamError(`PAGES record: ${b.length - off} bytes after the last page`);
  return { pages, data };
}

export interface StreamRecord {
  type: RecordType;
  body: Uint8Array;
}

/** Incremental reader: push() bytes as they come; next() gives whole checked records. */
export class StreamReader {
  // Chunks as they came; joined only when a whole record is there, so each byte is copied
  // about once however small the chunks.
  private chunks: Buffer[] = [];
  private total = 0;
  private headerSeen = false;
  private ended = false;
  /** Bytes consumed so far (for messages). */
  offset = 0;

  push(chunk: Uint8Array): void {
    if (this.ended && chunk.length > 0) throw new StreamError('data after the END record');
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.total += chunk.length;
  }

  /** The front of the stream with at least n bytes in one buffer, or null. */
  private front(n: number): Buffer | null {
    if (this.total < n) return null;
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks, this.total)];
    return this.chunks[0]!;
  }

  get done(): boolean {
    return this.ended;
  }

  /** The next whole record, or null if more bytes are needed. */
  next(): StreamRecord | null {
    if (!this.headerSeen) {
      const h = this.front(HEADER_BYTES);
      if (!h) return null;
      if (!h.subarray(0, 8).equals(STREAM_MAGIC)) throw new StreamError('not a xenode save image (bad magic)');
      const version = h.readUInt32LE(8);
      if (version !== STREAM_VERSION) throw new StreamError(`save image format version ${version}; this xenode reads version ${STREAM_VERSION}`);
      const flags = h.readUInt32LE(12);
      if (flags !== 0) throw new StreamError(`save image flags 0x${flags.toString(16)} are not understood`);
      this.consume(HEADER_BYTES);
      this.headerSeen = true;
    }
    if (this.ended) {
      if (this.total > 0) throw new StreamError('data after the END record');
      return null;
    }
    const h = this.front(RECORD_HEADER_BYTES);
    if (!h) return null;
    const type = h.readUInt32LE(0);
    const len = h.readUInt32LE(4);
    const sum = h.readUInt32LE(8);
    const zero = h.readUInt32LE(12);
    const max = MAX_BODY[type];
    if (max === undefined) throw new StreamError(`unknown record type ${type} at byte ${this.offset}`);
    if (len > max) throw new StreamError(`${NAMES[type]} record of ${len} bytes at byte ${this.offset} (at most ${max})`);
    if (zero !== 0) throw new StreamError(`${NAMES[type]} record at byte ${this.offset}: reserved word is not zero`);
    const all = this.front(RECORD_HEADER_BYTES + len);
    if (!all) return null;
    const body = all.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + len);
    if ((crc32(body) >>> 0) !== sum) throw new StreamError(`${NAMES[type]} record at byte ${this.offset}: checksum mismatch (the image is damaged)`);
    const rec: StreamRecord = { type: type as RecordType, body: Uint8Array.from(body) };
    this.consume(RECORD_HEADER_BYTES + len);
    if (type === REC.END) this.ended = true;
    return rec;
  }

  /** The stream ended (EOF): anything but a clean END is an error. */
  finish(): void {
    if (!this.ended) throw new StreamError(this.headerSeen || this.total > 0 ? `the image ends at byte ${this.offset + this.total} before its END record (truncated)` : 'the image is empty');
  }

  private consume(n: number): void {
    this.chunks[0] = this.chunks[0]!.subarray(n);
    if (this.chunks[0].length === 0) this.chunks.shift();
    this.total -= n;
    this.offset += n;
  }
}

export function recordName(t: number): string {
  return NAMES[t] ?? `type ${t}`;
}
