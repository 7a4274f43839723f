// The device models' saved state (docs/kvm.md, "Save, restore, migration"): what qemu-dm's
// savevm sections are for Xen's HVM guests. One blob per machine, one section per device, each
// a list of named, typed fields:
//
//   blob    = "XDMS" magic, u16 format version, u16 section count, sections
//   section = u8 name length, name, u16 device version, u32 body length, fields
//   field   = u8 type, u8 name length, name, value
//             (u8, u16, u32: little-endian; f64; bool: one byte 0/1; bytes: u32 length, data)
//
// Pure: bytes in, checked values out. The whole blob is parsed and checked before a device sees
// any of it (every length inside its bounds, every section name once, types known), then each
// device reads its fields by name and type in its own order: a field of the wrong name or
// type, a value out of the range the device gives, a section of another version, or a field
// left over is an error naming the device and the field, never a guess.

const MAGIC = 0x534d4458; // "XDMS" little-endian
export const DEVICE_STATE_VERSION = 1;
const MAX_SECTIONS = 256;
const MAX_NAME = 64;
/** Bounds a single field (video memory is the big one; it is stored without its zero pages). */
export const MAX_FIELD_BYTES = 272 << 20;

const TYPE = { u8: 1, u16: 2, u32: 3, f64: 4, bool: 5, bytes: 6 } as const;
type FieldType = keyof typeof TYPE;
const TYPE_NAME: Record<number, FieldType> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k as FieldType]));

export class DeviceStateError extends Error {}

type Value = number | boolean | Uint8Array;

class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u8(v: number): void {
    this.push(Uint8Array.of(v & 0xff));
  }
  u16(v: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    this.push(b);
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.push(b);
  }
  f64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.push(b);
  }
  name(s: string): void {
    const b = Buffer.from(s, 'utf8');
    if (b.length === 0 || b.length > MAX_NAME) throw new RangeError(`state name ${JSON.stringify(s)} is not 1-${MAX_NAME} bytes`);
    this.u8(b.length);
    this.push(b);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

/** One device's fields, written in the order its reader will ask for them. */
export class FieldWriter {
  readonly sink = new ByteSink();
  private field(type: FieldType, name: string): void {
    this.sink.u8(TYPE[type]);
    this.sink.name(name);
  }
  u8(name: string, v: number): this {
    this.field('u8', name);
    this.sink.u8(v);
    return this;
  }
  u16(name: string, v: number): this {
    this.field('u16', name);
    this.sink.u16(v);
    return this;
  }
  u32(name: string, v: number): this {
    this.field('u32', name);
    this.sink.u32(v);
    return this;
  }
  f64(name: string, v: number): this {
    this.field('f64', name);
    this.sink.f64(v);
    return this;
  }
  bool(name: string, v: boolean): this {
    this.field('bool', name);
    this.sink.u8(v ? 1 : 0);
    return this;
  }
  bytes(name: string, v: Uint8Array): this {
    if (v.length > MAX_FIELD_BYTES) throw new RangeError(`state field ${name} is ${v.length} bytes`);
    this.field('bytes', name);
    this.sink.u32(v.length);
    this.sink.push(v.slice());
    return this;
  }
}

export class StateWriter {
  private readonly sections: { name: string; version: number; body: Uint8Array }[] = [];

  section(name: string, version: number, fill: (f: FieldWriter) => void): void {
    if (this.sections.some((s) => s.name === name)) throw new Error(`two state sections named ${name}`);
    const f = new FieldWriter();
    fill(f);
    this.sections.push({ name, version, body: f.sink.concat() });
  }

  finish(): Uint8Array {
    const s = new ByteSink();
    s.u32(MAGIC);
    s.u16(DEVICE_STATE_VERSION);
    s.u16(this.sections.length);
    for (const sec of this.sections) {
      s.name(sec.name);
      s.u16(sec.version);
      s.u32(sec.body.length);
      s.push(sec.body);
    }
    return s.concat();
  }
}

interface Field {
  name: string;
  type: FieldType;
  value: Value;
}

/** One device's fields, read back by name and type in the writer's order. */
export class FieldReader {
  private next = 0;
  constructor(
    readonly section: string,
    private readonly fields: Field[],
  ) {}

  private take(name: string, type: FieldType): Value {
    const f = this.fields[this.next];
    if (!f) throw new DeviceStateError(`${this.section}: field ${name} is missing`);
    if (f.name !== name) throw new DeviceStateError(`${this.section}: found field ${f.name} where ${name} belongs`);
    if (f.type !== type) throw new DeviceStateError(`${this.section}: field ${name} is a ${f.type}, expected a ${type}`);
    this.next++;
    return f.value;
  }

  private ranged(name: string, type: FieldType, v: number, min: number, max: number): number {
    if (v < min || v > max) throw new DeviceStateError(`${this.section}: ${name} = ${v} is outside ${min}..${max}`);
    return v;
  }

  u8(name: string, max = 0xff, min = 0): number {
    return this.ranged(name, 'u8', this.take(name, 'u8') as number, min, max);
  }
  u16(name: string, max = 0xffff, min = 0): number {
    return this.ranged(name, 'u16', this.take(name, 'u16') as number, min, max);
  }
  u32(name: string, max = 0xffff_ffff, min = 0): number {
    return this.ranged(name, 'u32', this.take(name, 'u32') as number, min, max);
  }
  f64(name: string): number {
    const v = this.take(name, 'f64') as number;
    if (!Number.isFinite(v)) throw new DeviceStateError(`${this.section}: ${name} is not a finite number`);
    return v;
  }
  bool(name: string): boolean {
    return this.take(name, 'bool') as boolean;
  }
  /** A byte field of exactly `length` bytes, or of at most `max` when `length` is omitted. */
  bytes(name: string, length?: number, max = MAX_FIELD_BYTES): Uint8Array {
    const v = this.take(name, 'bytes') as Uint8Array;
    if (length !== undefined && v.length !== length) throw new DeviceStateError(`${this.section}: ${name} is ${v.length} bytes, the device has ${length}`);
    if (v.length > max) throw new DeviceStateError(`${this.section}: ${name} is ${v.length} bytes, at most ${max}`);
    return v;
  }

  /** Every field was read: nothing the device does not know about is silently dropped. */
  end(): void {
    if (this.next !== this.fields.length) throw new DeviceStateError(`${this.section}: unexpected field ${this.fields[this.next]!.name}`);
  }
}

export class StateReader {
  private readonly sections = new Map<string, { version: number; fields: Field[] }>();
  private readonly used = new Set<string>();

  /** Parses and checks the whole blob (structure only); throws DeviceStateError. */
  constructor(buf: Uint8Array) {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    const need = (n: number, what: string) => {
      if (off + n > buf.length) throw new DeviceStateError(`device state: ${what} runs past the end (byte ${off})`);
    };
    const name = (what: string): string => {
      need(1, what);
      const n = buf[off]!;
      off++;
      if (n === 0 || n > MAX_NAME) throw new DeviceStateError(`device state: ${what} of length ${n}`);
      need(n, what);
      const s = Buffer.from(buf.subarray(off, off + n)).toString('utf8');
      off += n;
      if (!/^[A-Za-z0-9_.-]+$/.test(s)) throw new DeviceStateError(`device state: ${what} ${JSON.stringify(s)} is not a name`);
      return s;
    };
    need(8, 'the header');
    if (dv.getUint32(0, true) !== MAGIC) throw new DeviceStateError('device state: bad magic');
    const version = dv.getUint16(4, true);
    if (version !== DEVICE_STATE_VERSION) throw new DeviceStateError(`device state: format version ${version}, this xenode reads version ${DEVICE_STATE_VERSION}`);
    const count = dv.getUint16(6, true);
    if (count > MAX_SECTIONS) throw new DeviceStateError(`device state: ${count} sections`);
    off = 8;
    for (let i = 0; i < count; i++) {
      const sec = name('a section name');
      if (this.sections.has(sec)) throw new DeviceStateError(`device state: two sections named ${sec}`);
      need(6, `section ${sec}`);
      const ver = dv.getUint16(off, true);
      const len = dv.getUint32(off + 2, true);
      off += 6;
      need(len, `section ${sec}`);
      const end = off + len;
      const fields: Field[] = [];
      while (off < end) {
        const t = TYPE_NAME[buf[off]!];
        if (!t) throw new DeviceStateError(`device state: section ${sec} has a field of unknown type ${buf[off]}`);
        off++;
        const fname = name(`a field name in ${sec}`);
        const size = t === 'u8' || t === 'bool' ? 1 : t === 'u16' ? 2 : t === 'u32' ? 4 : t === 'f64' ? 8 : 4;
        if (off + size > end) throw new DeviceStateError(`device state: ${sec}.${fname} runs past its section`);
        let value: Value;
        if (t === 'u8') value = buf[off]!;
        else if (t === 'bool') {
          if (buf[off]! > 1) throw new DeviceStateError(`device state: ${sec}.${fname} is a bool of value ${buf[off]}`);
          value = buf[off] === 1;
        } else if (t === 'u16') value = dv.getUint16(off, true);
        else if (t === 'u32') value = dv.getUint32(off, true);
        else if (t === 'f64') value = dv.getFloat64(off, true);
        else {
          const n = dv.getUint32(off, true);
          if (n > MAX_FIELD_BYTES || off + 4 + n > end) throw new DeviceStateError(`device state: ${sec}.${fname} (${n} bytes) runs past its section`);
          value = buf.subarray(off + 4, off + 4 + n);
          off += n;
        }
        off += size;
        fields.push({ name: fname, type: t, value });
      }
      if (off !== end) throw new DeviceStateError(`device state: section ${sec} ends inside a field`);
      this.sections.set(sec, { version: ver, fields });
    }
    if (off !== buf.length) throw new DeviceStateError(`device state: ${buf.length - off} bytes after the last section`);
  }

  has(name: string): boolean {
    return this.sections.has(name);
  }

  /** A device's section, of the version it writes. */
  section(name: string, version: number): FieldReader {
    const s = this.sections.get(name);
    if (!s) throw new DeviceStateError(`device state: no section for ${name}`);
    if (s.version !== version) throw new DeviceStateError(`device state: ${name} is version ${s.version}, this device model reads version ${version}`);
    this.used.add(name);
    return new FieldReader(name, s.fields);
  }

  /** Every section belongs to a device of this machine. */
  end(): void {
    for (const name of this.sections.keys()) if (!this.used.has(name)) throw new DeviceStateError(`device state: section ${name} belongs to no device of this machine`);
  }
}

/** Big, mostly-empty memory (video RAM): its non-zero pages as (u32 page index, 4 KiB) pairs. */
export function packPages(mem: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  const idx = new Uint8Array(4);
  const dv = new DataView(idx.buffer);
  for (let p = 0; p * 4096 < mem.length; p++) {
    const page = mem.subarray(p * 4096, Math.min(mem.length, (p + 1) * 4096));
    if (page.every((b) => b === 0)) continue;
    dv.setUint32(0, p, true);
    parts.push(idx.slice(), page);
  }
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of parts) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/** The pages of packPages() back into `mem` (zeroed first); throws on a page outside it. */
export function unpackPages(packed: Uint8Array, mem: Uint8Array, what: string): void {
  const pages = Math.ceil(mem.length / 4096);
  const dv = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  // Checked whole before mem is touched.
  for (let off = 0; off < packed.length; ) {
    if (off + 4 > packed.length) throw new DeviceStateError(`${what}: a page index is cut off`);
    const p = dv.getUint32(off, true);
    if (p >= pages) throw new DeviceStateError(`${what}: page ${p} is outside its ${pages} pages`);
    const len = Math.min(4096, mem.length - p * 4096);
    if (off + 4 + len > packed.length) throw new DeviceStateError(`${what}: page ${p} is cut off`);
    off += 4 + len;
  }
  mem.fill(0);
  for (let off = 0; off < packed.length; ) {
    const p = dv.getUint32(off, true);
    const len = Math.min(4096, mem.length - p * 4096);
    mem.set(packed.subarray(off + 4, off + 4 + len), p * 4096);
    off += 4 + len;
  }
}

/** A device's plain u32 registers, by property name (the device lists them once, for both
 * directions). */
export function writeRegisters(f: FieldWriter, dev: object, names: readonly string[]): void {
  const o = dev as Record<string, unknown>;
  for (const n of names) {
    const v = o[n];
    if (typeof v === 'boolean') f.bool(n, v);
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff) f.u32(n, v);
    else throw new Error(`device state: ${n} is ${typeof v === 'number' ? v : typeof v}, not a register`);
  }
}

/** Reads what writeRegisters wrote, each checked against the bound the device gives (default:
 * any u32; booleans are booleans). Returns them for Object.assign once all are read. */
export function readRegisters(r: FieldReader, dev: object, names: readonly string[], max: Readonly<Record<string, number>> = {}): Record<string, number | boolean> {
  const o = dev as Record<string, unknown>;
  const out: Record<string, number | boolean> = {};
  for (const n of names) out[n] = typeof o[n] === 'boolean' ? r.bool(n) : r.u32(n, max[n] ?? 0xffff_ffff);
  return out;
}
