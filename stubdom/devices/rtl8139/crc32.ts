// The two CRC-32 forms a NIC needs.
//  - crc32le: IEEE 802.3 FCS (reflected, poly 0xEDB88320, init and final xor ~0) = zlib crc32;
//    stored after the frame least-significant byte first.
//  - etherCrcBe: the same polynomial computed MSB-first without the final xor (Linux
//    ether_crc / QEMU net_crc32); bits 31..26 of it index the 64-bit multicast hash filter.
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32le(buf: Uint8Array, off = 0, len = buf.length - off): number {
  let c = 0xffffffff;
  for (let i = off; i < off + len; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function etherCrcBe(buf: Uint8Array, off: number, len: number): number {
  let crc = 0xffffffff | 0;
  for (let i = 0; i < len; i++) {
    let byte = buf[off + i]!;
    for (let bit = 0; bit < 8; bit++, byte >>= 1) {
      const top = crc < 0 ? 1 : 0;
      crc = (crc << 1) | 0;
      if ((top ^ (byte & 1)) !== 0) crc = (crc ^ 0x04c11db7) | 0;
    }
  }
  return crc >>> 0;
}

/** Index (0..63) of a multicast address in the RTL8139 MAR hash filter. */
export function multicastHashIndex(mac: Uint8Array, off = 0): number {
  return etherCrcBe(mac, off, 6) >>> 26;
}
