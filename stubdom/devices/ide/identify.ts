// IDENTIFY DEVICE / IDENTIFY PACKET DEVICE data (256 little-endian words), laid out as ATA-6
// specifies and as qemu's ide_identify()/ide_atapi_identify() fill them, so Linux's libata
// sees an LBA48 disk with multiword/Ultra DMA and FLUSH CACHE (EXT), and a removable ATAPI
// CD-ROM with 12-byte packets and DMA.
export interface XferModes {
  /** Selected PIO mode (0..4). */
  pio: number;
  /** Selected multiword DMA mode (0..2) or -1. */
  mwdma: number;
  /** Selected Ultra DMA mode (0..5) or -1. */
  udma: number;
}

export interface DiskIdentity {
  serial: string;
  firmware: string;
  model: string;
  sectors: number;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  multSectors: number;
  maxMultSectors: number;
  writeCache: boolean;
  modes: XferModes;
}

/** ATA strings are stored with the two bytes of each word swapped, space padded. */
function putString(w: Uint16Array, word: number, words: number, s: string): void {
  const chars = s.padEnd(words * 2, ' ').slice(0, words * 2);
  for (let i = 0; i < words; i++) w[word + i] = (chars.charCodeAt(2 * i) << 8) | chars.charCodeAt(2 * i + 1);
}

function modeWords(w: Uint16Array, m: XferModes): void {
  w[63] = 0x07 | (m.mwdma >= 0 ? 0x100 << m.mwdma : 0);
  w[64] = 0x03; // PIO 3 and 4
  w[88] = 0x3f | (m.udma >= 0 ? 0x100 << m.udma : 0);
}

export function ataIdentify(id: DiskIdentity): Uint8Array {
  const w = new Uint16Array(256);
  const chsSectors = id.cylinders * id.heads * id.sectorsPerTrack;
  const lba28 = Math.min(id.sectors, 0x0fff_ffff);
  w[0] = 0x0040; // fixed, not removable, ATA
  w[1] = id.cylinders;
  w[3] = id.heads;
  w[4] = 512 * id.sectorsPerTrack;
  w[5] = 512;
  w[6] = id.sectorsPerTrack;
  putString(w, 10, 10, id.serial);
  w[20] = 3;
  w[21] = 512;
  w[22] = 4;
  putString(w, 23, 4, id.firmware);
  putString(w, 27, 20, id.model);
  w[47] = 0x8000 | id.maxMultSectors;
  w[48] = 1; // dword I/O
  w[49] = (1 << 11) | (1 << 9) | (1 << 8); // IORDY, LBA, DMA
  w[51] = 0x200;
  w[52] = 0x200;
  w[53] = 1 | (1 << 1) | (1 << 2); // words 54-58, 64-70, 88 valid
  w[54] = id.cylinders;
  w[55] = id.heads;
  w[56] = id.sectorsPerTrack;
  w[57] = chsSectors & 0xffff;
  w[58] = chsSectors >>> 16;
  if (id.multSectors) w[59] = 0x100 | id.multSectors;
  w[60] = lba28 & 0xffff;
  w[61] = lba28 >>> 16;
  w[62] = 0x07;
  w[65] = 120;
  w[66] = 120;
  w[67] = 120;
  w[68] = 120;
  w[80] = 0xf0; // ATA-4..7
  w[81] = 0x16;
  w[82] = (1 << 14) | (1 << 5); // NOP, write cache
  w[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10); // FLUSH EXT, FLUSH, LBA48
  w[84] = 1 << 14;
  w[85] = (1 << 14) | (id.writeCache ? 1 << 5 : 0);
  w[86] = (1 << 13) | (1 << 12) | (1 << 10);
  w[87] = 1 << 14;
  w[93] = 1 | (1 << 14) | 0x2000; // 80-wire cable detected
  const s = BigInt(id.sectors);
  w[100] = Number(s & 0xffffn);
  w[101] = Number((s >> 16n) & 0xffffn);
  w[102] = Number((s >> 32n) & 0xffffn);
  w[103] = Number((s >> 48n) & 0xffffn);
  modeWords(w, id.modes);
  return toBytes(w);
}

export interface CdromIdentity {
  serial: string;
  firmware: string;
  model: string;
  modes: XferModes;
}

export function atapiIdentify(id: CdromIdentity): Uint8Array {
  const w = new Uint16Array(256);
  // ATAPI, CD-ROM (5), removable, 50 us DRQ (no interrupt for the packet), 12-byte packets.
  w[0] = (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5);
  putString(w, 10, 10, id.serial);
  w[20] = 3;
  w[21] = 512;
  w[22] = 4;
  putString(w, 23, 4, id.firmware);
  putString(w, 27, 20, id.model);
  w[48] = 1;
  w[49] = (1 << 9) | (1 << 8); // LBA, DMA
  w[53] = 7;
  w[62] = 7;
  w[65] = 0xb4;
  w[66] = 0xb4;
  w[67] = 0x12c;
  w[68] = 0xb4;
  w[71] = 30;
  w[72] = 30;
  w[80] = 0x1e; // up to ATA/ATAPI-4
  modeWords(w, id.modes);
  return toBytes(w);
}

function toBytes(w: Uint16Array): Uint8Array {
  const out = new Uint8Array(512);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 256; i++) dv.setUint16(2 * i, w[i]!, true);
  return out;
}
