// The Internet checksum (RFC 1071) over bytes in network order, for the code that builds or
// checks IP/TCP/UDP headers itself (GRO, the guest kernel's DHCP client).

/** Adds [start, end) of `b` as big-endian 16-bit words (an odd last byte padded) to `acc`. */
export function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

/** The same sum, 16 bits at a time through a Uint16Array when the data is 2-byte aligned (a
 * one's complement sum does not care about byte order: sum in the machine's order, then swap
 * the folded result). For payloads, where it matters. */
export function sumWords(b: Uint8Array, start: number, end: number): number {
  const abs = b.byteOffset + start;
  if (abs & 1) return sum16(b, start, end, 0);
  const n = (end - start) >>> 1;
  const w = new Uint16Array(b.buffer, abs, n);
  let s = 0;
  for (let i = 0; i < n; i++) s += w[i]!;
  s = fold(s);
  s = ((s & 0xff) << 8) | (s >>> 8); // little-endian words -> network order
  if ((end - start) & 1) s += b[end - 1]! << 8;
  return s;
}

/** Folds a running sum to 16 bits (end-around carry). */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for bytes [start, end): the folded sum, complemented. */
export function inetChecksum(b: Uint8Array, start: number, end: number, acc = 0): number {
  return ~fold(sum16(b, start, end, acc)) & 0xffff;
}
