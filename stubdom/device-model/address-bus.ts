// An address space of device registers: the x86 I/O port space (64 KiB) or the MMIO space.
// Devices register [base, base+length) ranges; overlapping registrations are refused (a second
// device cannot shadow the first). Accesses that hit nothing behave as an open PC bus: reads
// return all ones, writes vanish. An access that straddles a range boundary is split into byte
// accesses, each going to whatever decodes that byte, as the chipset would split it.

/** A device's registers. Offsets are relative to the registered base; size is 1, 2 or 4. */
export interface IoHandler {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

/** Anything that counts the exits (guest accesses) that reach it. */
export interface ExitCounter {
  exits: number;
}

export interface BusRegion {
  readonly base: number;
  readonly length: number;
  readonly name: string;
  readonly handler: IoHandler;
  /** Optional per-device exit counter, bumped by noteExit(). */
  readonly counter?: ExitCounter;
}

export class BusConflictError extends Error {
  constructor(
    readonly bus: string,
    readonly wanted: { base: number; length: number; name: string },
    readonly holder: BusRegion,
  ) {
    super(
      `${bus}: ${wanted.name} at 0x${wanted.base.toString(16)}+0x${wanted.length.toString(16)} overlaps ` +
        `${holder.name} at 0x${holder.base.toString(16)}+0x${holder.length.toString(16)}`,
    );
  }
}

export function sizeMask(size: number): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

export class AddressBus {
  private readonly list: BusRegion[] = [];

  /** `limit` is one past the highest decodable address (0x10000 for I/O ports). */
  constructor(
    readonly name: string,
    readonly limit: number,
  ) {}

  /** Registers a range; throws BusConflictError on overlap and RangeError on a bad range. */
  register(base: number, length: number, handler: IoHandler, name: string, counter?: ExitCounter): BusRegion {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0 || base + length > this.limit) {
      throw new RangeError(`${this.name}: bad range for ${name}: 0x${base.toString(16)}+0x${length.toString(16)}`);
    }
    const holder = this.overlapping(base, length);
    if (holder) throw new BusConflictError(this.name, { base, length, name }, holder);
    const region: BusRegion = counter ? { base, length, name, handler, counter } : { base, length, name, handler };
    let i = 0;
    while (i < this.list.length && this.list[i]!.base < base) i++;
    this.list.splice(i, 0, region);
    return region;
  }

  /** Removes a registration; false if it was not registered. */
  unregister(region: BusRegion): boolean {
    const i = this.list.indexOf(region);
    if (i < 0) return false;
    this.list.splice(i, 1);
    return true;
  }

  /** The first registration overlapping [base, base+length), if any. */
  overlapping(base: number, length: number): BusRegion | undefined {
    for (const r of this.list) {
      if (r.base < base + length && base < r.base + r.length) return r;
    }
    return undefined;
  }

  /** The registration decoding `addr`. */
  find(addr: number): BusRegion | undefined {
    let lo = 0;
    let hi = this.list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.list[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.base + r.length) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  regions(): readonly BusRegion[] {
    return this.list;
  }

  /** Counts one guest exit against the device decoding `addr` (a rep string op is one exit). */
  noteExit(addr: number): void {
    const r = this.find(addr);
    if (r?.counter) r.counter.exits++;
  }

  /** Reads `size` (1, 2 or 4) bytes; open bus reads all ones. */
  read(addr: number, size: number): number {
    const r = this.find(addr);
    if (r && addr + size <= r.base + r.length) {
      const v = r.handler.read(addr - r.base, size);
      return size >= 4 ? v >>> 0 : v & sizeMask(size);
    }
    if (!r && !this.overlapping(addr, size)) return sizeMask(size) >>> 0;
    // Straddles a boundary or is partly unmapped: byte by byte, little-endian.
    let v = 0;
    for (let i = 0; i < size; i++) {
      const a = addr + i;
      const b = this.find(a);
      const byte = b ? b.handler.read(a - b.base, 1) & 0xff : 0xff;
      v |= byte << (8 * i);
    }
    return v >>> 0;
  }

  /** Writes `size` (1, 2 or 4) bytes; writes to nothing are dropped. */
  write(addr: number, size: number, value: number): void {
    const r = this.find(addr);
    if (r && addr + size <= r.base + r.length) {
      r.handler.write(addr - r.base, size, size >= 4 ? value >>> 0 : value & sizeMask(size));
      return;
    }
    if (!r && !this.overlapping(addr, size)) return;
    for (let i = 0; i < size; i++) {
      const a = addr + i;
      const b = this.find(a);
      if (b) b.handler.write(a - b.base, 1, (value >>> (8 * i)) & 0xff);
    }
  }
}

/** Reads a `size`-byte little-endian value out of a byte-register callback (for devices whose
 * registers are byte-wide or whose wide reads have no side effects). */
export function composeRead(readByte: (offset: number) => number, offset: number, size: number): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= (readByte(offset + i) & 0xff) << (8 * i);
  return v >>> 0;
}
