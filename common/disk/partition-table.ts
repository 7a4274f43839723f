// Partition tables as Linux reads them: MBR (with the logical partitions of an extended
// partition) and GPT behind a protective MBR, decoded the way block/partitions/msdos.c, efi.c and
// core.c decode them, numbered as Linux numbers them (1-4 primary, 5... logical; GPT entry i is
// partition i+1), with Linux's kernel messages for what is wrong. Also the builders that write
// such tables (for `xenode mkimage --partition` and for tests).
//
// No I/O here: the caller hands in a function that reads sectors (a guest driver reads them
// through its ring or controller). Every number read from the disk is checked before use, and
// every walk is bounded: Linux's limit of 256 partitions, at most 100 empty links in an extended
// chain, and (unlike Linux, which follows a looping chain until the limit, making up to 251
// copies of the same partitions) an extended chain stops the first time it comes back to a
// table it has read.
//
// Not read: the BSD, Solaris, Minix and UnixWare sub-tables Linux looks for inside some MBR
// partition types, and AIX, Mac, Sun and the other formats; disks with 512-byte sectors only.
import { crc32 } from 'node:zlib';
import { randomUUID } from 'node:crypto';

export const SECTOR = 512;
/** Linux's DISK_MAX_PARTS: partitions are numbered below it. */
export const DISK_MAX_PARTS = 256;
/** Linux's KMALLOC_MAX_SIZE on x86-64: the largest GPT entry array it will read. */
const GPT_MAX_ARRAY_BYTES = 4 << 20;
const GPT_ENTRY_SIZE = 128;
const GPT_HEADER_SIZE = 92;
const GPT_SIGNATURE = 0x5452415020494645n; // "EFI PART"
const MBR_TABLE = 0x1be;
const MBR_GPT_PROTECTIVE = 0xee;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);

/** Partition type GUIDs (as text) most images use. */
export const GPT_TYPE = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  linuxSwap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  efiSystem: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
} as const;

export interface Partition {
  /** Linux's number: the N of /dev/xvdaN. */
  number: number;
  /** First sector (512 bytes each) on the disk. */
  start: number;
  sectors: number;
  /** The MBR type byte, or the GPT partition type GUID (upper case). */
  type: number | string;
  /** An MBR extended partition: Linux exposes only its first two sectors (room for LILO). */
  extended?: boolean;
  /** PARTUUID as Linux forms it: the GPT entry's unique GUID, or "<disk signature>-<NN>". */
  uuid: string;
  /** PARTLABEL: a GPT entry's name. */
  label?: string;
}

export interface PartitionScan {
  format: 'mbr' | 'gpt' | null;
  partitions: Partition[];
  /** What Linux prints while scanning, one line each (the disk's partition list among them). */
  messages: string[];
}

/** Reads `count` sectors from `lba`; rejects on an I/O error. */
export type SectorReader = (lba: number, count: number) => Promise<Uint8Array>;

export interface ScanOptions {
  /** Linux's `gpt` parameter: accept a GPT without a protective MBR, and use the backup GPT
   * at the last sector when the primary is invalid. */
  forceGpt?: boolean;
  /** Partitions are numbered below this (Linux: 256). */
  limit?: number;
}

/** The partition's device name: xvda + 1 = xvda1; a disk whose name ends in a digit gets a
 * "p" (nvme0n1p1), as Linux names them. */
export function partitionName(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

type Slot = Omit<Partition, 'number'>;

/** One scan: Linux's struct parsed_partitions. */
class ScanState {
  readonly parts = new Map<number, Slot>();
  /** The partition list line Linux prints: " xvda: xvda1 xvda2 < xvda5 >". */
  line: string;
  beyondEod = false;
  ioError = false;
  next = 0;
  readonly messages: string[] = [];
  private readonly shortName: string;

  constructor(
    readonly name: string,
    readonly sectors: number,
    readonly limit: number,
    private readonly reader: SectorReader,
  ) {
    this.line = ` ${name}:`;
    this.shortName = /\d$/.test(name) ? 'p' : name;
  }

  /** read_part_sector(): null past the end of the disk or on an I/O error. */
  async read(lba: number, count = 1): Promise<Uint8Array | null> {
    if (!Number.isSafeInteger(lba) || lba < 0 || lba + count > this.sectors) {
      this.beyondEod = true;
      return null;
    }
    try {
      const d = await this.reader(lba, count);
      if (d.length < count * SECTOR) throw new Error('short read');
      return d;
    } catch {
      this.ioError = true;
      return null;
    }
  }

  put(n: number, slot: Slot): void {
    if (n >= this.limit) return;
    this.parts.set(n, slot);
    this.line += ` ${this.shortName}${n}`;
  }
}

const u16 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number) => BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
const hex = (n: number | bigint, w = 0) => n.toString(16).padStart(w, '0');

// ---------------------------------------------------------------- MBR (msdos.c)

interface MbrRecord {
  boot: number;
  type: number;
  start: number;
  sectors: number;
}

function mbrRecord(d: Uint8Array, i: number): MbrRecord {
  const o = MBR_TABLE + 16 * i;
  return { boot: d[o]!, type: d[o + 4]!, start: u32(d, o + 8), sectors: u32(d, o + 12) };
}

const hasMbrMagic = (d: Uint8Array) => d[510] === 0x55 && d[511] === 0xaa;

/** A FAT boot sector (no partition table) that happens to carry 55 AA: msdos.c's check. */
function looksLikeFat(d: Uint8Array): boolean {
  const media = d[21]!;
  return u16(d, 14) !== 0 && d[16] !== 0 && (media === 0xf0 || media >= 0xf8);
}

/** The logical partitions of the extended partition at [first, first+size): parse_extended(). */
async function parseExtended(s: ScanState, first: number, size: number, sig: string): Promise<void> {
  let here = first;
  let hereSize = size;
  let empty = 0;
  const seen = new Set<number>();
  for (;;) {
    if (++empty > 100 || s.next >= s.limit) return;
    if (seen.has(here)) {
      s.messages.push(`${s.name}: extended partition chain loops back to sector ${here}; the rest is ignored`);
      return;
    }
    seen.add(here);
    const d = await s.read(here);
    if (!d || !hasMbrMagic(d)) return;
    const recs = [0, 1, 2, 3].map((i) => mbrRecord(d, i));
    for (let i = 0; i < 4; i++) {
      const r = recs[i]!;
      if (!r.sectors || EXTENDED_TYPES.has(r.type)) continue;
      const at = here + r.start;
      // The 3rd and 4th entries sometimes hold garbage: only believed when inside the extended.
      if (i >= 2 && (r.start + r.sectors > hereSize || at < first || at + r.sectors > first + size)) continue;
      s.put(s.next, { start: at, sectors: r.sectors, type: r.type, uuid: `${sig}-${hex(s.next, 2)}` });
      empty = 0;
      if (++s.next >= s.limit) return;
    }
    const link = recs.find((r) => r.sectors && EXTENDED_TYPES.has(r.type));
    if (!link) return;
    here = first + link.start;
    hereSize = link.sectors;
  }
}

/** msdos_partition(): 1 found, 0 not an MBR, -1 unreadable. */
async function msdosPartition(s: ScanState): Promise<number> {
  const d = await s.read(0);
  if (!d) return -1;
  if (!hasMbrMagic(d)) return 0;
  const recs = [0, 1, 2, 3].map((i) => mbrRecord(d, i));
  // A boot indicator other than 0 or 0x80: a FAT boot sector (no partitions), or not ours.
  const bad = recs.findIndex((r) => r.boot !== 0 && r.boot !== 0x80);
  if (bad >= 0) return bad === 0 && looksLikeFat(d) ? 1 : 0;
  if (recs.some((r) => r.type === MBR_GPT_PROTECTIVE)) return 0; // a GPT disk: efi's business
  const sig = hex(u32(d, 0x1b8), 8);
  s.next = 5;
  for (let slot = 1; slot <= 4; slot++) {
    const r = recs[slot - 1]!;
    if (!r.sectors) continue;
    if (EXTENDED_TYPES.has(r.type)) {
      s.put(slot, { start: r.start, sectors: Math.min(r.sectors, 2), type: r.type, extended: true, uuid: `${sig}-${hex(slot, 2)}` });
      s.line += ' <';
      await parseExtended(s, r.start, r.sectors, sig);
      s.line += ' >';
      continue;
    }
    s.put(slot, { start: r.start, sectors: r.sectors, type: r.type, uuid: `${sig}-${hex(slot, 2)}` });
  }
  return 1;
}

// ---------------------------------------------------------------- GPT (efi.c)

/** A GUID as text from its on-disk form (first three fields little-endian). */
export function guidFromBytes(b: Uint8Array, o: number): string {
  const h = (i: number) => hex(b[o + i]!, 2);
  return (
    h(3) + h(2) + h(1) + h(0) + '-' + h(5) + h(4) + '-' + h(7) + h(6) + '-' + h(8) + h(9) + '-' +
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  ).toUpperCase();
}

export function guidToBytes(guid: string, out: Uint8Array, o: number): void {
  const x = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(x) || guid.length !== 36) throw new RangeError(`bad GUID "${guid}"`);
  const byte = (i: number) => parseInt(x.slice(2 * i, 2 * i + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) out[o + i] = byte(order[i]!);
}

const efiCrc = (b: Uint8Array) => crc32(b) >>> 0;

interface GptHeader {
  myLba: bigint;
  alternateLba: bigint;
  firstUsable: bigint;
  lastUsable: bigint;
  diskGuid: string;
  entriesLba: bigint;
  entries: number;
  entrySize: number;
  entriesCrc: number;
}

interface ValidGpt {
  header: GptHeader;
  ptes: Uint8Array;
}

/** is_gpt_valid(): the header at `lba` and its entry array, or null (with Linux's reason). */
async function readGpt(s: ScanState, lba: bigint): Promise<ValidGpt | null> {
  const lastLba = BigInt(s.sectors - 1);
  if (lba > lastLba) return null;
  const raw = await s.read(Number(lba));
  if (!raw) return null;
  const h = raw.slice(0, SECTOR);
  const why = (m: string) => (s.messages.push(m), null);
  const sig = u64(h, 0);
  if (sig !== GPT_SIGNATURE) return why(`GUID Partition Table Header signature is wrong: ${BigInt.asIntN(64, sig)} != ${GPT_SIGNATURE}`);
  const headerSize = u32(h, 12);
  if (headerSize > SECTOR) return why(`GUID Partition Table Header size is too large: ${headerSize} > ${SECTOR}`);
  if (headerSize < GPT_HEADER_SIZE) return why(`GUID Partition Table Header size is too small: ${headerSize} < ${GPT_HEADER_SIZE}`);
  const orig = u32(h, 16);
  h.fill(0, 16, 20);
  const crc = efiCrc(h.subarray(0, headerSize));
  if (crc !== orig) return why(`GUID Partition Table Header CRC is wrong: ${hex(crc)} != ${hex(orig)}`);
  const header: GptHeader = {
    myLba: u64(h, 24),
    alternateLba: u64(h, 32),
    firstUsable: u64(h, 40),
    lastUsable: u64(h, 48),
    diskGuid: guidFromBytes(h, 56),
    entriesLba: u64(h, 72),
    entries: u32(h, 80),
    entrySize: u32(h, 84),
    entriesCrc: u32(h, 88),
  };
  if (header.myLba !== lba) return why(`GPT my_lba incorrect: ${header.myLba} != ${lba}`);
  if (header.firstUsable > lastLba) return why(`GPT: first_usable_lba incorrect: ${header.firstUsable} > ${lastLba}`);
  if (header.lastUsable > lastLba) return why(`GPT: last_usable_lba incorrect: ${header.lastUsable} > ${lastLba}`);
  if (header.lastUsable < header.firstUsable) return why(`GPT: last_usable_lba incorrect: ${header.lastUsable} > ${header.firstUsable}`);
  if (header.entrySize !== GPT_ENTRY_SIZE) return why('GUID Partition Entry Size check failed.');
  const bytes = header.entries * header.entrySize;
  if (bytes > GPT_MAX_ARRAY_BYTES) return why(`GUID Partition Table is too large: ${bytes} > ${GPT_MAX_ARRAY_BYTES} bytes`);
  if (bytes === 0 || header.entriesLba > lastLba) return null;
  const ptes = await s.read(Number(header.entriesLba), Math.ceil(bytes / SECTOR));
  if (!ptes) return null;
  const array = ptes.subarray(0, bytes);
  if (efiCrc(array) !== header.entriesCrc) return why('GUID Partition Entry Array CRC check failed.');
  return { header, ptes: array };
}

/** is_pmbr_valid(): 55 AA and a 0xEE record starting at LBA 1. */
function protectiveMbr(d: Uint8Array): boolean {
  if (!hasMbrMagic(d)) return false;
  return [0, 1, 2, 3].some((i) => {
    const r = mbrRecord(d, i);
    return r.type === MBR_GPT_PROTECTIVE && r.start === 1;
  });
}

/** compare_gpts(): warnings where the two copies disagree. */
function compareGpts(s: ScanState, p: GptHeader, a: GptHeader): void {
  const lastLba = BigInt(s.sectors - 1);
  const w: string[] = [];
  const pair = (cond: boolean, what: string, x: bigint | string, y: bigint | string) => {
    if (cond) w.push(what, `GPT:${x} != ${y}`);
  };
  pair(p.myLba !== a.alternateLba, 'GPT:Primary header LBA != Alt. header alternate_lba', p.myLba, a.alternateLba);
  pair(p.alternateLba !== a.myLba, 'GPT:Primary header alternate_lba != Alt. header my_lba', p.alternateLba, a.myLba);
  pair(p.firstUsable !== a.firstUsable, "GPT:first_usable_lbas don't match.", p.firstUsable, a.firstUsable);
  pair(p.lastUsable !== a.lastUsable, "GPT:last_usable_lbas don't match.", p.lastUsable, a.lastUsable);
  if (p.diskGuid !== a.diskGuid) w.push("GPT:disk_guids don't match.");
  if (p.entries !== a.entries) w.push(`GPT:num_partition_entries don't match: 0x${hex(p.entries)} != 0x${hex(a.entries)}`);
  if (p.entriesCrc !== a.entriesCrc) w.push(`GPT:partition_entry_array_crc32 values don't match: 0x${hex(p.entriesCrc)} != 0x${hex(a.entriesCrc)}`);
  pair(p.alternateLba !== lastLba, 'GPT:Primary header thinks Alt. header is not at the end of the disk.', p.alternateLba, lastLba);
  pair(a.myLba !== lastLba, 'GPT:Alternate GPT header not at the end of the disk.', a.myLba, lastLba);
  if (w.length) s.messages.push(...w, 'GPT: Use GNU Parted to correct GPT errors.');
}

/** efi_partition(): 1 found, 0 not a (valid) GPT. */
async function efiPartition(s: ScanState, force: boolean): Promise<number> {
  const lastLba = BigInt(s.sectors - 1);
  if (!force) {
    const mbr = await s.read(0);
    if (!mbr || !protectiveMbr(mbr)) return 0;
  }
  const primary = await readGpt(s, 1n);
  let alternate = primary ? await readGpt(s, primary.header.alternateLba) : null;
  if (!alternate && force) alternate = await readGpt(s, lastLba);
  if (!primary && !alternate) {
    if (!force) s.messages.push(`${s.name}: no valid GPT; the backup GPT is only tried with "gpt" on the kernel command line`);
    return 0;
  }
  if (primary && alternate) compareGpts(s, primary.header, alternate.header);
  if (primary && !alternate) s.messages.push('Alternate GPT is invalid, using primary GPT.');
  if (!primary) s.messages.push('Primary GPT is invalid, using alternate GPT.');
  const { header, ptes } = (primary ?? alternate)!;
  for (let i = 0; i < header.entries && i < s.limit - 1; i++) {
    const o = i * GPT_ENTRY_SIZE;
    const type = guidFromBytes(ptes, o);
    const first = u64(ptes, o + 32);
    const last = u64(ptes, o + 40);
    // is_pte_valid(); an entry ending before it starts is dropped too (Linux's unsigned size
    // would wrap to an absurd length).
    if (type === '00000000-0000-0000-0000-000000000000' || first > lastLba || last > lastLba || last < first) continue;
    let label = '';
    for (let c = 0; c < 36; c++) {
      const ch = u16(ptes, o + 56 + 2 * c) & 0x7f;
      if (!ch) break;
      label += ch >= 0x20 && ch < 0x7f ? String.fromCharCode(ch) : '!';
    }
    s.put(i + 1, { start: Number(first), sectors: Number(last - first) + 1, type, uuid: guidFromBytes(ptes, o + 16).toLowerCase(), label });
  }
  return 1;
}

// ---------------------------------------------------------------- the scan (core.c)

/**
 * Reads the partition table of `disk` (its name, for messages and partition names, and its size
 * in sectors) as Linux's check_partition() and blk_add_partitions() do: GPT first, then MBR;
 * partitions starting past the end are dropped and those running past it cut short, each with
 * Linux's warning.
 */
export async function scanPartitions(disk: { name: string; sectors: number }, read: SectorReader, o: ScanOptions = {}): Promise<PartitionScan> {
  const limit = Math.max(1, Math.min(o.limit ?? DISK_MAX_PARTS, DISK_MAX_PARTS));
  const s = new ScanState(disk.name, Math.max(0, Math.floor(disk.sectors)), limit, read);
  let format: PartitionScan['format'] = null;
  let res = 0;
  let ioFailed = false;
  for (const [fmt, probe] of [['gpt', () => efiPartition(s, o.forceGpt === true)], ['mbr', () => msdosPartition(s)]] as const) {
    s.parts.clear();
    res = await probe();
    if (res > 0) {
      format = fmt;
      break;
    }
    if (res < 0) ioFailed = true;
    res = 0;
  }
  if (res <= 0) {
    // Nothing recognised: only an I/O error (or a table past the end) is worth a word.
    if (ioFailed || s.beyondEod) s.messages.push(`${s.line} unable to read partition table`);
    if (s.beyondEod) s.messages.push(`${disk.name}: partition table beyond EOD, truncated`);
    return { format: null, partitions: [], messages: s.messages };
  }
  const messages = [...s.messages];
  messages.push(s.line);
  if (s.beyondEod) messages.push(`${disk.name}: partition table partially beyond EOD, truncated`);
  const partitions: Partition[] = [];
  for (let n = 1; n < limit; n++) {
    const p = s.parts.get(n);
    if (!p || !p.sectors) continue;
    if (p.start >= s.sectors) {
      messages.push(`${disk.name}: p${n} start ${p.start} is beyond EOD, truncated`);
      continue;
    }
    let sectors = p.sectors;
    if (p.start + sectors > s.sectors) {
      messages.push(`${disk.name}: p${n} size ${sectors} extends beyond EOD, truncated`);
      sectors = s.sectors - p.start;
    }
    partitions.push({ number: n, ...p, sectors });
  }
  return { format, partitions, messages };
}

// ---------------------------------------------------------------- builders

/** Bytes to write at a sector of the disk. */
export interface SectorWrite {
  lba: number;
  data: Uint8Array;
}

export interface MbrEntry {
  start: number;
  sectors: number;
  /** 0x83 Linux, 0x82 swap, 0x05/0x0f/0x85 extended, 0x0c FAT32 ... */
  type: number;
  bootable?: boolean;
}

export interface LogicalEntry {
  start: number;
  sectors: number;
  type: number;
  /** Where its extended boot record goes (default: the extended partition's first sector for
   * the first logical partition, the sector before `start` for the others). */
  ebr?: number;
}

export interface MbrLayout {
  diskSectors: number;
  /** Up to four primary entries, in slot order (null leaves a slot empty). */
  primary: (MbrEntry | null)[];
  /** Logical partitions (5, 6 ...), in the one extended primary entry. */
  logical?: LogicalEntry[];
  /** The disk signature at 0x1B8 (PARTUUID's first half). */
  signature?: number;
  /** Write what is asked even when it makes no sense (hostile tables for tests). */
  unchecked?: boolean;
}

/** CHS of an LBA in the usual 255-head, 63-sector geometry; 1023/254/63 past its reach. */
function chs(lba: number): [number, number, number] {
  const c = Math.floor(lba / (255 * 63));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / 63) % 255;
  const sec = (lba % 63) + 1;
  return [h, sec | ((c >> 2) & 0xc0), c & 0xff];
}

function putMbrRecord(b: Uint8Array, i: number, r: { start: number; sectors: number; type: number; bootable?: boolean }, base = 0): void {
  const o = MBR_TABLE + 16 * i;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[o] = r.bootable ? 0x80 : 0;
  b.set(chs(base + r.start), o + 1);
  b[o + 4] = r.type;
  b.set(chs(base + r.start + Math.max(r.sectors, 1) - 1), o + 5);
  dv.setUint32(o + 8, r.start, true);
  dv.setUint32(o + 12, r.sectors, true);
}

const fitsU32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** An MBR (and the extended boot records of its logical partitions). */
export function buildMbr(l: MbrLayout): SectorWrite[] {
  const check = (ok: boolean, what: string) => {
    if (!ok && !l.unchecked) throw new RangeError(what);
  };
  if (l.primary.length > 4) throw new RangeError('an MBR has four primary entries');
  const all = [...l.primary.filter((p): p is MbrEntry => !!p), ...(l.logical ?? [])];
  for (const p of all) {
    if (!fitsU32(p.start) || !fitsU32(p.sectors) || p.type < 0 || p.type > 255) throw new RangeError(`partition ${p.start}+${p.sectors} does not fit an MBR entry`);
    check(p.sectors > 0 && p.start > 0 && p.start + p.sectors <= l.diskSectors, `partition ${p.start}+${p.sectors} is not inside the disk (${l.diskSectors} sectors)`);
  }
  const mbr = new Uint8Array(SECTOR);
  new DataView(mbr.buffer).setUint32(0x1b8, (l.signature ?? 0x78656e6f) >>> 0, true);
  l.primary.forEach((p, i) => p && putMbrRecord(mbr, i, p));
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const out: SectorWrite[] = [{ lba: 0, data: mbr }];
  const logical = l.logical ?? [];
  if (!logical.length) return out;
  const exts = l.primary.filter((p): p is MbrEntry => !!p && EXTENDED_TYPES.has(p.type));
  if (exts.length !== 1) throw new RangeError('logical partitions need exactly one extended primary entry (0x05, 0x0f or 0x85)');
  const ext = exts[0]!;
  const ebrs = logical.map((p, k) => p.ebr ?? (k === 0 ? ext.start : p.start - 1));
  check(ebrs[0] === ext.start, 'the first logical partition\'s table must be at the start of the extended partition');
  logical.forEach((p, k) => {
    const at = ebrs[k]!;
    check(at < p.start && at >= ext.start && p.start + p.sectors <= ext.start + ext.sectors, `logical partition ${5 + k} is not inside the extended partition after its table`);
    const ebr = new Uint8Array(SECTOR);
    putMbrRecord(ebr, 0, { start: p.start - at, sectors: p.sectors, type: p.type }, at);
    const nxt = logical[k + 1];
    if (nxt) {
      const nAt = ebrs[k + 1]!;
      putMbrRecord(ebr, 1, { start: nAt - ext.start, sectors: nxt.start + nxt.sectors - nAt, type: 0x05 }, ext.start);
    }
    ebr[510] = 0x55;
    ebr[511] = 0xaa;
    out.push({ lba: at, data: ebr });
  });
  return out;
}

export interface GptEntry {
  start: number;
  sectors: number;
  /** Partition type GUID (default: Linux filesystem). */
  type?: string;
  /** Unique partition GUID (default: random). */
  uuid?: string;
  /** PARTLABEL, up to 36 characters. */
  label?: string;
  attributes?: bigint;
}

export interface GptLayout {
  diskSectors: number;
  /** Entry i is partition i+1 (null leaves it empty). */
  partitions: (GptEntry | null)[];
  diskGuid?: string;
  /** Entries in the array (default 128, as every tool writes). */
  entries?: number;
  unchecked?: boolean;
}

/** First and last sectors a GPT with `entries` entries leaves for partitions. */
export function gptUsable(diskSectors: number, entries = 128): { first: number; last: number } {
  const arraySectors = Math.ceil((entries * GPT_ENTRY_SIZE) / SECTOR);
  return { first: 2 + arraySectors, last: diskSectors - 2 - arraySectors };
}

function gptHeader(l: GptLayout, my: number, alt: number, entriesLba: number, entries: number, arrayCrc: number, diskGuid: string): Uint8Array {
  const h = new Uint8Array(SECTOR);
  const dv = new DataView(h.buffer);
  const { first, last } = gptUsable(l.diskSectors, entries);
  dv.setBigUint64(0, GPT_SIGNATURE, true);
  dv.setUint32(8, 0x00010000, true); // revision 1.0
  dv.setUint32(12, GPT_HEADER_SIZE, true);
  dv.setBigUint64(24, BigInt(my), true);
  dv.setBigUint64(32, BigInt(alt), true);
  dv.setBigUint64(40, BigInt(first), true);
  dv.setBigUint64(48, BigInt(last), true);
  guidToBytes(diskGuid, h, 56);
  dv.setBigUint64(72, BigInt(entriesLba), true);
  dv.setUint32(80, entries, true);
  dv.setUint32(84, GPT_ENTRY_SIZE, true);
  dv.setUint32(88, arrayCrc, true);
  dv.setUint32(16, efiCrc(h.subarray(0, GPT_HEADER_SIZE)), true);
  return h;
}

/** A protective MBR, the primary GPT (LBA 1, entries from LBA 2) and the backup GPT at the end. */
export function buildGpt(l: GptLayout): SectorWrite[] {
  const entries = l.entries ?? 128;
  if (!Number.isInteger(entries) || entries < 1 || entries * GPT_ENTRY_SIZE > GPT_MAX_ARRAY_BYTES) throw new RangeError(`bad GPT entry count ${entries}`);
  if (l.partitions.length > entries) throw new RangeError(`${l.partitions.length} partitions do not fit ${entries} entries`);
  const { first, last } = gptUsable(l.diskSectors, entries);
  if (last < first) throw new RangeError(`a ${l.diskSectors}-sector disk is too small for a GPT`);
  const array = new Uint8Array(Math.ceil((entries * GPT_ENTRY_SIZE) / SECTOR) * SECTOR);
  const dv = new DataView(array.buffer);
  l.partitions.forEach((p, i) => {
    if (!p) return;
    if (!Number.isSafeInteger(p.start) || !Number.isSafeInteger(p.sectors) || p.start < 0 || p.sectors < 1) throw new RangeError(`bad GPT partition ${p.start}+${p.sectors}`);
    if (!l.unchecked && (p.start < first || p.start + p.sectors - 1 > last)) {
      throw new RangeError(`partition ${i + 1} (${p.start}+${p.sectors}) is outside the usable sectors ${first}..${last}`);
    }
    const o = i * GPT_ENTRY_SIZE;
    guidToBytes(p.type ?? GPT_TYPE.linux, array, o);
    guidToBytes(p.uuid ?? randomUUID(), array, o + 16);
    dv.setBigUint64(o + 32, BigInt(p.start), true);
    dv.setBigUint64(o + 40, BigInt(p.start + p.sectors - 1), true);
    dv.setBigUint64(o + 48, p.attributes ?? 0n, true);
    const label = p.label ?? '';
    if (label.length > 36) throw new RangeError(`GPT label "${label}" is longer than 36 characters`);
    for (let c = 0; c < label.length; c++) dv.setUint16(o + 56 + 2 * c, label.charCodeAt(c), true);
  });
  const arrayCrc = efiCrc(array.subarray(0, entries * GPT_ENTRY_SIZE));
  const diskGuid = l.diskGuid ?? randomUUID();
  const lastLba = l.diskSectors - 1;
  const backupArray = last + 1;
  const pmbr = new Uint8Array(SECTOR);
  putMbrRecord(pmbr, 0, { start: 1, sectors: Math.min(l.diskSectors - 1, 0xffffffff), type: MBR_GPT_PROTECTIVE });
  pmbr.set([0x00, 0x02, 0x00], MBR_TABLE + 1); // CHS of LBA 1, as every tool writes it
  pmbr[510] = 0x55;
  pmbr[511] = 0xaa;
  return [
    { lba: 0, data: pmbr },
    { lba: 1, data: gptHeader(l, 1, lastLba, 2, entries, arrayCrc, diskGuid) },
    { lba: 2, data: array },
    { lba: backupArray, data: array },
    { lba: lastLba, data: gptHeader(l, lastLba, 1, backupArray, entries, arrayCrc, diskGuid) },
  ];
}
