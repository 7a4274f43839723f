// The ext superblock and group descriptor checks the guest kernel makes before mounting a root
// filesystem, from raw bytes: an image is the guest's, so every size in it is bounded.
import { describe, expect, it } from 'vitest';
import { checkGroupDescriptors, groupDescriptorSpan, parseExtSuperblock } from '../../guest/kernel/boot/ext-superblock.js';

function superblock(o: { logBlock?: number; blocks?: number; perGroup?: number; incompat?: number; descSize?: number } = {}): Uint8Array {
  const sb = new Uint8Array(1024);
  const v = new DataView(sb.buffer);
  v.setUint32(0x04, o.blocks ?? 8192, true);
  v.setUint32(0x14, 1, true); // first data block (1 KiB blocks)
  v.setUint32(0x18, o.logBlock ?? 0, true);
  v.setUint32(0x20, o.perGroup ?? 8192, true);
  v.setUint16(0x38, 0xef53, true);
  v.setUint32(0x60, o.incompat ?? 0x40, true);
  v.setUint16(0xfe, o.descSize ?? 0, true);
  sb.set(Buffer.from('rootfs'), 0x78);
  return sb;
}

describe('ext superblock checks', () => {
  it('reads the type and label, and the table right after the superblock', () => {
    expect(parseExtSuperblock(superblock())).toMatchObject({ type: 'ext4', label: 'rootfs', blockSize: 1024 });
    expect(groupDescriptorSpan(superblock())).toEqual({ offset: 2048, bytes: 32 });
  });

  it('refuses block sizes and 64-bit descriptor sizes Linux refuses', () => {
    expect(parseExtSuperblock(superblock({ logBlock: 40 }))).toBeNull();
    expect(groupDescriptorSpan(superblock({ logBlock: 40 }))).toBeNull();
    for (const descSize of [0, 32, 48, 2048, 65535]) expect(groupDescriptorSpan(superblock({ incompat: 0xc0, descSize }))).toBeNull();
    expect(groupDescriptorSpan(superblock({ incompat: 0xc0, descSize: 64 }))).toEqual({ offset: 2048, bytes: 64 });
  });

  it('reads a bounded part of a huge table', () => {
    const span = groupDescriptorSpan(superblock({ blocks: 0xffffffff, perGroup: 1, incompat: 0xc0, descSize: 1024 }))!;
    expect(span.bytes).toBe(4 << 20);
  });

  it('names the first group whose bitmaps or table lie outside the filesystem', () => {
    const gdt = new Uint8Array(32);
    const v = new DataView(gdt.buffer);
    v.setUint32(0, 100, true);
    v.setUint32(4, 101, true);
    v.setUint32(8, 102, true);
    expect(checkGroupDescriptors(superblock(), gdt)).toBeNull();
    v.setUint32(0, 0xa5a5a5a5, true);
    expect(checkGroupDescriptors(superblock(), gdt)).toBe('ext4_check_descriptors: Block bitmap for group 0 not in group (block 2779096485)!');
  });
});
