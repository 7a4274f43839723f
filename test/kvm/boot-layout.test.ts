// The boot protocol loader and the MP table, checked byte by byte in a plain buffer: no KVM
// needed, so this suite runs everywhere.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BootError,
  CMDLINE_ADDR,
  E820_RAM,
  E820_RESERVED,
  GDT_ADDR,
  PML4_ADDR,
  ZERO_PAGE,
  e820Map,
  layoutLinux,
  parseBzImage,
  parseElf,
  unpackBzImagePayload,
} from '../../hypervisor/kvm/boot-linux.js';
import { MPTABLE_BASE, writeMpTable } from '../../hypervisor/kvm/mptable.js';
import { guestRamRegions } from '../../hypervisor/kvm/vm.js';
import { Asm, TINY_ENTRY, tinyBzImage } from './helpers.js';

const MiB = 2 ** 20;

function sum(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s = (s + b[i]!) & 0xff;
  return s;
}

describe('bzImage setup header', () => {
  it('accepts a 64-bit image and reads its fields', () => {
    const h = parseBzImage(tinyBzImage(new Asm(TINY_ENTRY).hlt().build()));
    expect(h.version).toBe(0x020f);
    expect(h.setupSects).toBe(1);
    expect(h.payloadOffset).toBe(1024);
    expect(h.cmdlineSize).toBe(2048);
    expect(h.headerEnd).toBe(0x268);
  });

  it('refuses what is not a usable bzImage, saying why', () => {
    const good = tinyBzImage(new Asm(TINY_ENTRY).hlt().build());
    const noFlag = good.slice();
    noFlag[0x1fe] = 0;
    expect(() => parseBzImage(noFlag)).toThrow(/0xAA55/);
    const noHdr = good.slice();
    noHdr[0x202] = 0;
    expect(() => parseBzImage(noHdr)).toThrow(/HdrS/);
    const old = good.slice();
    new DataView(old.buffer).setUint16(0x206, 0x0204, true);
    expect(() => parseBzImage(old)).toThrow(/too old/);
    const no64 = good.slice();
    new DataView(no64.buffer).setUint16(0x236, 0, true);
    expect(() => parseBzImage(no64)).toThrow(/64-bit/);
    expect(() => parseBzImage(new Uint8Array(100))).toThrow(BootError);
  });
});

describe('guest memory layout', () => {
  it('keeps RAM out of the 3-4 GiB hole', () => {
    expect(guestRamRegions(512 * MiB)).toEqual([{ gpa: 0, size: 512 * MiB, memOffset: 0 }]);
    expect(guestRamRegions(4096 * MiB)).toEqual([
      { gpa: 0, size: 3072 * MiB, memOffset: 0 },
      { gpa: 4096 * MiB, size: 1024 * MiB, memOffset: 3072 * MiB },
    ]);
    const e = e820Map(guestRamRegions(4096 * MiB));
    expect(e.filter((x) => x.type === E820_RAM).map((x) => [x.addr, x.size])).toEqual([
      [0, 0x9e000],
      [MiB, 3072 * MiB - MiB],
      [4096 * MiB, 1024 * MiB],
    ]);
    expect(e.find((x) => x.addr === 0x9e000)).toMatchObject({ type: E820_RESERVED, size: MiB - 0x9e000 });
  });

  it('lays out boot_params, command line, initrd, page tables and GDT', () => {
    const mem = new Uint8Array(64 * MiB);
    const initrd = new Uint8Array(3 * MiB + 5).fill(0xab);
    const info = layoutLinux(mem, guestRamRegions(mem.length), 2, {
      kernel: tinyBzImage(new Asm(TINY_ENTRY).hlt().build()),
      initrd,
      cmdline: 'console=ttyS0 xenode.ip=198.18.0.2/24',
      hostQuirks: false,
    });
    const zp = new DataView(mem.buffer, ZERO_PAGE, 4096);
    expect(info.mode).toBe('decompressor');
    expect(info.entry).toBe(0x100200);
    expect(mem[0x100200]).toBe(0xf4); // the code landed at 1 MiB + 0x200
    expect(zp.getUint16(0x1fe, true)).toBe(0xaa55);
    expect(zp.getUint32(0x202, true)).toBe(0x53726448);
    expect(zp.getUint8(0x210)).toBe(0xff);
    expect(zp.getUint8(0x211) & 0x81).toBe(0x81);
    expect(zp.getUint32(0x228, true)).toBe(CMDLINE_ADDR);
    expect(Buffer.from(mem.subarray(CMDLINE_ADDR, CMDLINE_ADDR + 40)).toString('latin1')).toMatch(/^console=ttyS0 xenode\.ip=198\.18\.0\.2\/24\0/);
    // initrd: page aligned, at the top of RAM, intact
    const rdAddr = zp.getUint32(0x218, true);
    expect(zp.getUint32(0x21c, true)).toBe(initrd.length);
    expect(rdAddr % 4096).toBe(0);
    expect(rdAddr + initrd.length).toBeLessThanOrEqual(mem.length);
    expect(rdAddr + initrd.length).toBeGreaterThan(mem.length - 4096);
    expect(mem[rdAddr]).toBe(0xab);
    expect(mem[rdAddr + initrd.length - 1]).toBe(0xab);
    // e820 in boot_params
    const n = zp.getUint8(0x1e8);
    const e820 = Array.from({ length: n }, (_, i) => ({
      addr: Number(zp.getBigUint64(0x2d0 + i * 20, true)),
      size: Number(zp.getBigUint64(0x2d0 + i * 20 + 8, true)),
      type: zp.getUint32(0x2d0 + i * 20 + 16, true),
    }));
    expect(e820).toEqual(info.e820);
    expect(e820).toContainEqual({ addr: MiB, size: 63 * MiB, type: E820_RAM });
    // 0-4 GiB identity map with 2 MiB pages
    const pt = new DataView(mem.buffer, PML4_ADDR);
    expect(pt.getBigUint64(0, true)).toBe(BigInt(PML4_ADDR + 0x1000) | 3n);
    expect(pt.getBigUint64(0x1000 + 3 * 8, true)).toBe(BigInt(PML4_ADDR + 0x5000) | 3n);
    expect(pt.getBigUint64(0x2000 + 5 * 8, true)).toBe((5n << 21n) | 0x83n);
    expect(pt.getBigUint64(0x5000 + 511 * 8, true)).toBe((3n << 30n) | (511n << 21n) | 0x83n);
    // GDT: __BOOT_CS 0x10 is 64-bit code, __BOOT_DS 0x18 flat data
    const gdt = new DataView(mem.buffer, GDT_ADDR);
    expect(gdt.getBigUint64(0x10, true)).toBe(0x00af9b000000ffffn);
    expect(gdt.getBigUint64(0x18, true)).toBe(0x00cf93000000ffffn);
  });

  it("keeps the toolstack's pages at the top of RAM out of the guest's e820 and away from the initrd", () => {
    const mem = new Uint8Array(64 * MiB);
    const initrd = new Uint8Array(MiB).fill(0xcd);
    const top = mem.subarray(mem.length - 4 * 4096).fill(0x5a); // start_info, rings: the toolstack's
    const info = layoutLinux(mem, guestRamRegions(mem.length), 1, {
      kernel: tinyBzImage(new Asm(TINY_ENTRY).hlt().build()),
      initrd,
      cmdline: '',
      hostQuirks: false,
      reservedTopPages: 4,
    });
    expect(info.e820).toContainEqual({ addr: MiB, size: 63 * MiB - 4 * 4096, type: E820_RAM });
    expect(info.e820).toContainEqual({ addr: 64 * MiB - 4 * 4096, size: 4 * 4096, type: 2 });
    expect(info.initrdAddr + initrd.length).toBeLessThanOrEqual(mem.length - 4 * 4096);
    expect(top.every((b) => b === 0x5a)).toBe(true);
  });

  it('refuses a command line, kernel or initrd that does not fit', () => {
    const kernel = tinyBzImage(new Asm(TINY_ENTRY).hlt().build());
    const mem = new Uint8Array(16 * MiB);
    const ram = guestRamRegions(mem.length);
    expect(() => layoutLinux(mem, ram, 1, { kernel, cmdline: 'x'.repeat(3000), hostQuirks: false })).toThrow(/at most 2047/);
    expect(() => layoutLinux(mem, ram, 1, { kernel, initrd: new Uint8Array(16 * MiB), cmdline: '', hostQuirks: false })).toThrow(/initrd/);
  });
});

describe('MP table', () => {
  it('has valid checksums and describes the CPUs, the IOAPIC and the IRQ routes', () => {
    const mem = new Uint8Array(MiB);
    writeMpTable(mem, { vcpus: 3, pciIrqs: [{ dev: 3, pin: 1, gsi: 11 }] });
    const v = new DataView(mem.buffer);
    expect(Buffer.from(mem.subarray(MPTABLE_BASE, MPTABLE_BASE + 4)).toString()).toBe('_MP_');
    expect(sum(mem, MPTABLE_BASE, MPTABLE_BASE + 16)).toBe(0);
    const table = v.getUint32(MPTABLE_BASE + 4, true);
    expect(Buffer.from(mem.subarray(table, table + 4)).toString()).toBe('PCMP');
    const len = v.getUint16(table + 4, true);
    expect(sum(mem, table, table + len)).toBe(0);
    const count = v.getUint16(table + 34, true);
    expect(v.getUint32(table + 36, true)).toBe(0xfee00000);
    // walk the entries
    let p = table + 44;
    const cpus: number[] = [];
    const ints: Array<[number, number, number]> = [];
    let ioapicId = -1;
    for (let i = 0; i < count; i++) {
      const type = mem[p]!;
      if (type === 0) {
        cpus.push(mem[p + 1]!);
        p += 20;
      } else {
        if (type === 2) ioapicId = mem[p + 1]!;
        if (type === 3) ints.push([mem[p + 4]!, mem[p + 5]!, mem[p + 7]!]); // bus, irq, pin
        p += 8;
      }
    }
    expect(p).toBe(table + len);
    expect(cpus).toEqual([0, 1, 2]);
    expect(ioapicId).toBe(3);
    expect(ints).toContainEqual([0, 4, 4]); // ISA IRQ 4 (COM1) -> pin 4
    expect(ints).toContainEqual([1, (3 << 2) | 0, 11]); // PCI 00:03 INTA# -> pin 11
    expect(ints.filter(([bus, , pin]) => bus === 0 && pin === 11)).toEqual([]); // no ISA entry on it
  });
});

describe('ELF kernels', () => {
  it('parses PT_LOAD segments', () => {
    const b = new Uint8Array(0x200);
    const v = new DataView(b.buffer);
    b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    v.setUint16(16, 2, true);
    v.setUint16(18, 62, true);
    v.setBigUint64(24, 0x1000000n, true);
    v.setBigUint64(32, 64n, true);
    v.setUint16(54, 56, true);
    v.setUint16(56, 1, true);
    v.setUint32(64, 1, true); // PT_LOAD
    v.setBigUint64(64 + 8, 0x100n, true); // offset
    v.setBigUint64(64 + 24, 0x1000000n, true); // paddr
    v.setBigUint64(64 + 32, 0x10n, true); // filesz
    v.setBigUint64(64 + 40, 0x1000n, true); // memsz
    const e = parseElf(b);
    expect(e.entry).toBe(0x1000000);
    expect(e.segments).toHaveLength(1);
    expect(e.lo).toBe(0x1000000);
    expect(e.hi).toBe(0x1001000);
  });

  const root = '/var/lib/xenode/hvm-guest';
  const built = existsSync(root) ? readdirSync(root).map((d) => join(root, d, 'vmlinuz')).find((f) => existsSync(f)) : undefined;
  it.skipIf(!built)(`unpacks Debian's bzImage payload to its vmlinux${built ? '' : ' (skipped: no guest built by scripts/build-hvm-guest.sh)'}`, async () => {
    const { readFileSync } = await import('node:fs');
    const img = new Uint8Array(readFileSync(built!));
    const h = parseBzImage(img);
    expect(h.relocatable).toBe(true);
    const elf = unpackBzImagePayload(img, h);
    expect(elf).not.toBeNull();
    const e = parseElf(elf!);
    expect(e.entry).toBe(0x1000000); // phys_startup_64
    expect(e.lo).toBe(0x1000000);
  });
});
