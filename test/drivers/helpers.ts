// Small helpers shared by the driver-layer tests.

/** Hex of `len` bytes at `off`, space-free: "0100000002000000". */
export function hex(bytes: Uint8Array | DataView, off = 0, len?: number): string {
  const u8 = bytes instanceof DataView ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  const end = len === undefined ? u8.length : off + len;
  let s = '';
  for (let i = off; i < end; i++) s += u8[i]!.toString(16).padStart(2, '0');
  return s;
}

/** A zeroed private buffer of `n` bytes and a DataView over it. */
export function scratch(n: number): { u8: Uint8Array; view: DataView } {
  const u8 = new Uint8Array(n);
  return { u8, view: new DataView(u8.buffer) };
}

/** Offsets of the non-zero bytes. */
export function nonZero(u8: Uint8Array): number[] {
  const out: number[] = [];
  u8.forEach((b, i) => {
    if (b !== 0) out.push(i);
  });
  return out;
}
