// The ext2/3/4 superblock fields the kernel needs before mounting a root filesystem: is it
// ext at all, which of the three, its UUID and label (root=UUID=..., root=LABEL=...). Layout:
// Linux's fs/ext4/ext4.h struct ext4_super_block, 1024 bytes at byte 1024 of the device.

export const EXT_SUPERBLOCK_OFFSET = 1024;
const EXT_MAGIC = 0xef53;
const COMPAT_HAS_JOURNAL = 0x4;
const INCOMPAT_EXTENTS = 0x40;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_FLEX_BG = 0x200;

export interface ExtSuperblock {
  /** What Linux would mount it as: ext4 when it uses ext4-only features. */
  type: 'ext2' | 'ext3' | 'ext4';
  uuid: string;
  label: string;
  hasJournal: boolean;
  blocks: number;
  blockSize: number;
}

/** `sb` is the 1024 bytes at EXT_SUPERBLOCK_OFFSET; null when it is not an ext superblock. */
export function parseExtSuperblock(sb: Uint8Array): ExtSuperblock | null {
  if (sb.length < 1024) return null;
  const v = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  if (v.getUint16(0x38, true) !== EXT_MAGIC) return null;
  const logBlock = v.getUint32(0x18, true);
  if (logBlock > 6) return null; // 1 KiB .. 64 KiB blocks only
  const compat = v.getUint32(0x5c, true);
  const incompat = v.getUint32(0x60, true);
  const hex = [...sb.subarray(0x68, 0x78)].map((b) => b.toString(16).padStart(2, '0')).join('');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const labelBytes = sb.subarray(0x78, 0x88);
  const end = labelBytes.indexOf(0);
  const label = Buffer.from(labelBytes.subarray(0, end < 0 ? 16 : end)).toString('utf8');
  const hasJournal = (compat & COMPAT_HAS_JOURNAL) !== 0;
  const ext4 = (incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG)) !== 0;
  return {
    type: ext4 ? 'ext4' : hasJournal ? 'ext3' : 'ext2',
    uuid,
    label,
    hasJournal,
    blocks: v.getUint32(0x04, true),
    blockSize: 1024 << logBlock,
  };
}

/** Where the group descriptor table starts and how much of it to check. */
export function groupDescriptorSpan(sb: Uint8Array): { offset: number; bytes: number } | null {
  const g = geometry(sb);
  if (!g) return null;
  return { offset: (g.firstDataBlock + 1) * g.blockSize, bytes: Math.min(g.groups * g.descSize, MAX_CHECKED_BYTES) };
}

/** The kernel reads at most this much of the table (the first groups are where a damaged or
 * forged table shows; a bigger read would be an image's way to make the kernel allocate). */
const MAX_CHECKED_BYTES = 4 << 20;
const INCOMPAT_64BIT_FLAG = 0x80;

interface Geometry {
  blockSize: number;
  firstDataBlock: number;
  blocks: number;
  groups: number;
  descSize: number;
}

function geometry(sb: Uint8Array): Geometry | null {
  const v = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  if (v.getUint16(0x38, true) !== EXT_MAGIC) return null;
  // Everything here comes from an image the guest brought: bounded as Linux bounds it
  // (ext4_fill_super: blocks of 1-64 KiB, 64-bit descriptors a power of two of 64-1024 bytes).
  const logBlock = v.getUint32(0x18, true);
  if (logBlock > 6) return null;
  const blockSize = 1024 << logBlock;
  const is64 = (v.getUint32(0x60, true) & INCOMPAT_64BIT_FLAG) !== 0;
  const blocks = v.getUint32(0x04, true) + (is64 ? v.getUint32(0x150, true) * 2 ** 32 : 0);
  const firstDataBlock = v.getUint32(0x14, true);
  const perGroup = v.getUint32(0x20, true);
  if (perGroup === 0 || blocks <= firstDataBlock) return null;
  const descSize = is64 ? v.getUint16(0xfe, true) : 32;
  if (is64 && (descSize < 64 || descSize > 1024 || (descSize & (descSize - 1)) !== 0)) return null;
  return { blockSize, firstDataBlock, blocks, groups: Math.ceil((blocks - firstDataBlock) / perGroup), descSize };
}

/** Linux's ext4_check_descriptors, in its flex_bg form: every group's block bitmap, inode
 * bitmap and inode table must lie inside the filesystem. Returns Linux's complaint, or null. */
export function checkGroupDescriptors(sb: Uint8Array, gdt: Uint8Array): string | null {
  const g = geometry(sb);
  if (!g) return 'not an ext filesystem';
  const v = new DataView(gdt.buffer, gdt.byteOffset, gdt.byteLength);
  const n = Math.min(g.groups, Math.floor(gdt.byteLength / g.descSize));
  const fields: [string, number, number][] = [['Block bitmap', 0x0, 0x20], ['Inode bitmap', 0x4, 0x24], ['Inode table', 0x8, 0x28]];
  for (let i = 0; i < n; i++) {
    const at = i * g.descSize;
    for (const [what, lo, hi] of fields) {
      const block = v.getUint32(at + lo, true) + (g.descSize >= 64 ? v.getUint32(at + hi, true) * 2 ** 32 : 0);
      if (block < g.firstDataBlock || block >= g.blocks) return `ext4_check_descriptors: ${what} for group ${i} not in group (block ${block})!`;
    }
  }
  return null;
}
