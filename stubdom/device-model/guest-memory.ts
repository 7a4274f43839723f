// The guest's RAM as a device model sees it: the domain's memory (a SharedArrayBuffer over its
// memfd) plus the map from guest-physical addresses to offsets in that buffer. Every DMA goes
// through read()/write() here, which refuse — copy nothing and return false — when any byte of
// the range is not guest RAM: MMIO holes, device BARs, addresses past the end, negative or
// non-integer values. A device that gets `false` behaves as the real chip does on a PCI
// master abort (each device documents how); nothing outside the guest is ever touched.

export interface RamRegion {
  /** Guest-physical start address (bytes). */
  gpa: number;
  /** Length in bytes. */
  size: number;
  /** Where the region starts in the buffer. */
  offset: number;
}

/** Highest address arithmetic we do in `number`: above this, ranges are refused outright. */
const MAX_ADDR = Number.MAX_SAFE_INTEGER;

export class GuestMemory {
  /** The whole buffer (for embedders; devices use the checked accessors). */
  readonly bytes: Uint8Array;
  private readonly regions: readonly RamRegion[];
  private readonly dv: DataView;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);

  /**
   * `regions` defaults to one region mapping gpa 0.. onto the whole buffer. Regions must not
   * overlap (in guest-physical space or in the buffer) and must lie inside the buffer.
   */
  constructor(buffer: ArrayBufferLike, regions?: readonly RamRegion[]) {
    this.bytes = new Uint8Array(buffer);
    this.dv = new DataView(buffer);
    const rs = (regions ?? [{ gpa: 0, size: buffer.byteLength, offset: 0 }]).map((r) => ({ ...r }));
    rs.sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      for (const v of [r.gpa, r.size, r.offset]) {
        if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`bad RAM region ${JSON.stringify(r)}`);
      }
      if (r.offset + r.size > buffer.byteLength) throw new RangeError(`RAM region ${JSON.stringify(r)} outside the buffer`);
      if (i > 0) {
        const p = rs[i - 1]!;
        if (p.gpa + p.size > r.gpa) throw new RangeError('RAM regions overlap in guest-physical space');
      }
    }
    const byOff = [...rs].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < byOff.length; i++) {
      if (byOff[i - 1]!.offset + byOff[i - 1]!.size > byOff[i]!.offset) throw new RangeError('RAM regions overlap in the buffer');
    }
    this.regions = rs.filter((r) => r.size > 0);
  }

  /** The RAM map (sorted by gpa). */
  ramRegions(): readonly RamRegion[] {
    return this.regions;
  }

  /** Total bytes of RAM. */
  get ramSize(): number {
    let n = 0;
    for (const r of this.regions) n += r.size;
    return n;
  }

  private regionIndex(gpa: number): number {
    let lo = 0;
    let hi = this.regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.regions[mid]!;
      if (gpa < r.gpa) hi = mid - 1;
      else if (gpa >= r.gpa + r.size) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** True when every byte of [gpa, gpa+len) is guest RAM. len 0 is RAM only at a RAM address. */
  isRam(gpa: number, len: number): boolean {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return false;
    if (gpa + len > MAX_ADDR) return false;
    let i = this.regionIndex(gpa);
    if (i < 0) return false;
    let end = gpa + len;
    let at = gpa;
    while (true) {
      const r = this.regions[i]!;
      const rEnd = r.gpa + r.size;
      if (end <= rEnd) return true;
      at = rEnd;
      i++;
      // Contiguous in guest-physical space: the next region must start exactly here.
      if (i >= this.regions.length || this.regions[i]!.gpa !== at) return false;
    }
  }

  /** Buffer offset of `gpa` when [gpa, gpa+len) lies in ONE region, else -1 (fast path). */
  private flat(gpa: number, len: number): number {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + len > MAX_ADDR) return -1;
    const i = this.regionIndex(gpa);
    if (i < 0) return -1;
    const r = this.regions[i]!;
    if (gpa + len > r.gpa + r.size) return -1;
    return r.offset + (gpa - r.gpa);
  }

  /** Copies guest RAM [gpa, gpa+len) into dst[dstOff..]. Refuses (false, nothing copied) if
   * any byte is not RAM. */
  read(gpa: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): boolean {
    if (!Number.isSafeInteger(len) || len < 0 || dstOff < 0 || dstOff + len > dst.length) return false;
    const off = this.flat(gpa, len);
    if (off >= 0) {
      dst.set(this.bytes.subarray(off, off + len), dstOff);
      return true;
    }
    if (!this.isRam(gpa, len)) return false;
    this.chunks(gpa, len, (bufOff, pos, n) => dst.set(this.bytes.subarray(bufOff, bufOff + n), dstOff + pos));
    return true;
  }

  /** Pages the device model writes (DMA), one bit per 4 KiB page of the buffer, set while a
   * live migration copies the guest's RAM: KVM's dirty log sees only the guest's own writes
   * (docs/kvm.md, "Save, restore, migration"). Shared with whoever collects them. */
  dirtyPages: Int32Array | null = null;

  private markDirty(off: number, len: number): void {
    const d = this.dirtyPages;
    if (!d || len <= 0) return;
    for (let p = Math.floor(off / 4096), last = Math.floor((off + len - 1) / 4096); p <= last; p++) {
      if (p >> 5 < d.length) Atomics.or(d, p >> 5, 1 << (p & 31));
    }
  }

  /** Copies src[srcOff..srcOff+len) into guest RAM at gpa. Refuses like read(). */
  write(gpa: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): boolean {
    if (!Number.isSafeInteger(len) || len < 0 || srcOff < 0 || srcOff + len > src.length) return false;
    const off = this.flat(gpa, len);
    if (off >= 0) {
      this.bytes.set(src.subarray(srcOff, srcOff + len), off);
      this.markDirty(off, len);
      return true;
    }
    if (!this.isRam(gpa, len)) return false;
    this.chunks(gpa, len, (bufOff, pos, n) => {
      this.bytes.set(src.subarray(srcOff + pos, srcOff + pos + n), bufOff);
      this.markDirty(bufOff, n);
    });
    return true;
  }

  /** Fills guest RAM with `byte`. Refuses like write(). */
  fill(gpa: number, byte: number, len: number): boolean {
    if (!this.isRam(gpa, len)) return false;
    this.chunks(gpa, len, (bufOff, _pos, n) => {
      this.bytes.fill(byte & 0xff, bufOff, bufOff + n);
      this.markDirty(bufOff, n);
    });
    return true;
  }

  private chunks(gpa: number, len: number, fn: (bufOff: number, pos: number, n: number) => void): void {
    let pos = 0;
    let i = this.regionIndex(gpa);
    while (pos < len) {
      const r = this.regions[i]!;
      const at = gpa + pos;
      const n = Math.min(len - pos, r.gpa + r.size - at);
      fn(r.offset + (at - r.gpa), pos, n);
      pos += n;
      i++;
    }
  }

  /** Little-endian loads; undefined when not RAM. */
  readU8(gpa: number): number | undefined {
    const off = this.flat(gpa, 1);
    return off < 0 ? undefined : this.bytes[off]!;
  }

  readU16(gpa: number): number | undefined {
    const off = this.flat(gpa, 2);
    if (off >= 0) return this.dv.getUint16(off, true);
    return this.read(gpa, this.scratch, 0, 2) ? this.scratchView.getUint16(0, true) : undefined;
  }

  readU32(gpa: number): number | undefined {
    const off = this.flat(gpa, 4);
    if (off >= 0) return this.dv.getUint32(off, true);
    return this.read(gpa, this.scratch, 0, 4) ? this.scratchView.getUint32(0, true) : undefined;
  }

  /** Little-endian stores; false when not RAM. */
  writeU8(gpa: number, v: number): boolean {
    const off = this.flat(gpa, 1);
    if (off < 0) return false;
    this.bytes[off] = v & 0xff;
    this.markDirty(off, 1);
    return true;
  }

  writeU16(gpa: number, v: number): boolean {
    this.scratchView.setUint16(0, v & 0xffff, true);
    return this.write(gpa, this.scratch, 0, 2);
  }

  writeU32(gpa: number, v: number): boolean {
    this.scratchView.setUint32(0, v >>> 0, true);
    return this.write(gpa, this.scratch, 0, 4);
  }
}

/** A guest-physical address from a 64-bit wire value, or undefined when it cannot be one. */
export function gpaFromBigint(v: bigint): number | undefined {
  if (v < 0n || v > BigInt(MAX_ADDR)) return undefined;
  return Number(v);
}
