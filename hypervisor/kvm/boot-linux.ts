// Direct kernel boot per Linux's x86 boot protocol (Documentation/arch/x86/boot.rst), the
// 64-bit entry: what a boot loader (or QEMU's -kernel, or Firecracker) does, so an HVM
// config's `kernel`, `ramdisk` and `extra` boot a stock bzImage without firmware.
//
// Guest-physical layout (all below 1 MiB sits in e820 "reserved" or is Linux's to reuse):
//   0x00500  GDT: 0x10 = 64-bit code (__BOOT_CS), 0x18 = data (__BOOT_DS), 0x20 = TSS
//   0x00520  IDT (empty: interrupts stay off until the kernel loads its own)
//   0x07000  boot_params, "the zero page" (setup header copied from the bzImage at 0x1f1)
//   0x08ff0  initial stack
//   0x09000  PML4 -> 0x0a000 PDPT -> 0x0b000..0x0e000 four PDs: 0-4 GiB identity, 2 MiB pages
//   0x20000  kernel command line (from `extra`)
//   0x9e000  engine's string-I/O bounce page          } e820 reserved
//   0xf0000  MP table (CPUs, I/O APIC, IRQ routing)    } [0x9e000, 1 MiB)
//   1 MiB    the protected-mode kernel (bzImage minus its real-mode setup); entry = +0x200
//   top      initrd (from `ramdisk`), as high as initrd_addr_max and RAM allow
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { KvmSegment } from '../../native/index.js';
import { native } from '../../native/index.js';
import { guestCmdlineQuirks } from './kvm.js';
import { writeMpTable, type PciIrqRoute } from './mptable.js';
import { BOUNCE_GPA, type KvmVm, type RamRegion } from './vm.js';

export const GDT_ADDR = 0x500;
export const IDT_ADDR = 0x520;
export const ZERO_PAGE = 0x7000;
export const BOOT_STACK = 0x8ff0;
export const PML4_ADDR = 0x9000;
export const CMDLINE_ADDR = 0x20000;
export const KERNEL_ADDR = 0x100000;
/** RAM below 1 MiB ends where the engine's reserved pages begin. */
export const LOW_RAM_END = BOUNCE_GPA;

export const E820_RAM = 1;
export const E820_RESERVED = 2;

export interface SetupHeader {
  setupSects: number;
  /** Boot protocol version, e.g. 0x020f. */
  version: number;
  loadflags: number;
  xloadflags: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  cmdlineSize: number;
  prefAddress: number;
  initSize: number;
  /** Where the protected-mode kernel starts in the file, and how long it is. */
  payloadOffset: number;
  payloadSize: number;
  /** The setup header's extent in the file: [0x1f1, headerEnd). */
  headerEnd: number;
}

export class BootError extends Error {
  override name = 'BootError';
}

/** Parse and check a bzImage's setup header: a 64-bit, relocatable, protocol >= 2.12 kernel. */
export function parseBzImage(img: Uint8Array): SetupHeader {
  if (img.length < 0x400) throw new BootError(`not a bzImage: ${img.length} bytes is too short`);
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (v.getUint16(0x1fe, true) !== 0xaa55) throw new BootError('not a bzImage: no 0xAA55 boot flag at 0x1fe');
  if (v.getUint32(0x202, true) !== 0x53726448) throw new BootError('not a bzImage: no "HdrS" setup header at 0x202');
  const version = v.getUint16(0x206, true);
  if (version < 0x020c) throw new BootError(`boot protocol ${(version >> 8).toString()}.${(version & 0xff).toString()} is too old (need 2.12 for the 64-bit entry)`);
  const setupSects = img[0x1f1] || 4;
  const loadflags = img[0x211]!;
  const xloadflags = v.getUint16(0x236, true);
  if (!(loadflags & 0x01)) throw new BootError('not a bzImage: zImage kernels (loaded low) are not supported');
  if (!(xloadflags & 0x01)) throw new BootError('this kernel has no 64-bit entry point (XLF_KERNEL_64): a 32-bit-only kernel');
  const payloadOffset = (setupSects + 1) * 512;
  if (payloadOffset >= img.length) throw new BootError('bzImage truncated: no protected-mode kernel after the setup sectors');
  return {
    setupSects,
    version,
    loadflags,
    xloadflags,
    initrdAddrMax: v.getUint32(0x22c, true),
    kernelAlignment: v.getUint32(0x230, true),
    relocatable: img[0x234] !== 0,
    cmdlineSize: v.getUint32(0x238, true),
    prefAddress: Number(v.getBigUint64(0x258, true)),
    initSize: v.getUint32(0x260, true),
    payloadOffset,
    payloadSize: img.length - payloadOffset,
    headerEnd: 0x202 + img[0x201]!,
  };
}

// ---- the kernel proper: the bzImage's compressed payload, unpacked on the host ----
//
// A bzImage is a real-mode setup, a decompressor, and the compressed ELF vmlinux (its
// "payload", located by payload_offset/payload_length). Entering at startup_64 runs the
// decompressor in the guest. Where guest kernel mode is slow (see docs/kvm.md: on hosts
// whose KVM emulates guest ring 0, e.g. a nested PVM host, it runs ~1M instructions/s), we
// instead unpack the payload here, load the ELF segments at their physical addresses and enter
// the kernel's own startup_64 (the ELF entry) with the same boot_params, as Firecracker and
// PVH loaders do. The setup header still comes from the bzImage.

export interface ElfImage {
  entry: number;
  segments: Array<{ paddr: number; data: Uint8Array; memsz: number }>;
  /** Lowest and highest physical addresses the segments occupy. */
  lo: number;
  hi: number;
}

export function isElf(b: Uint8Array): boolean {
  return b.length > 64 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/** Parse a 64-bit little-endian x86-64 ELF executable's PT_LOAD segments. */
export function parseElf(b: Uint8Array): ElfImage {
  if (!isElf(b)) throw new BootError('not an ELF image');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[4] !== 2 || b[5] !== 1) throw new BootError('ELF kernel must be 64-bit little-endian');
  if (v.getUint16(18, true) !== 62) throw new BootError('ELF kernel is not x86-64');
  const entry = Number(v.getBigUint64(24, true));
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  const segments: ElfImage['segments'] = [];
  let lo = Infinity;
  let hi = 0;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 56 > b.length) throw new BootError('ELF program headers truncated');
    if (v.getUint32(o, true) !== 1) continue; // PT_LOAD
    const off = Number(v.getBigUint64(o + 8, true));
    const paddr = Number(v.getBigUint64(o + 24, true));
    const filesz = Number(v.getBigUint64(o + 32, true));
    const memsz = Number(v.getBigUint64(o + 40, true));
    if (off + filesz > b.length || filesz > memsz) throw new BootError('ELF segment outside the file');
    segments.push({ paddr, data: b.subarray(off, off + filesz), memsz });
    lo = Math.min(lo, paddr);
    hi = Math.max(hi, paddr + memsz);
  }
  if (segments.length === 0) throw new BootError('ELF kernel has no loadable segments');
  return { entry, segments, lo, hi };
}

const unpacked = new Map<string, Uint8Array>();

/** The ELF vmlinux inside a bzImage, or null when its compression cannot be undone here
 * (gzip in-process; xz, zstd, lz4, lzma, bzip2 through their command-line tools). */
export function unpackBzImagePayload(img: Uint8Array, h: SetupHeader, cacheKey?: string): Uint8Array | null {
  if (cacheKey && unpacked.has(cacheKey)) return unpacked.get(cacheKey)!;
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const off = h.payloadOffset + v.getUint32(0x248, true);
  const len = v.getUint32(0x24c, true);
  if (h.version < 0x0208 || len === 0 || off + len > img.length) return null;
  const p = img.subarray(off, off + len);
  const tools: Array<[number[], string]> = [
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    [[0x02, 0x21, 0x4c, 0x18], 'lz4'],
    [[0x5d, 0x00, 0x00], 'lzma'],
    [[0x42, 0x5a, 0x68], 'bzip2'],
  ];
  let out: Uint8Array | null = null;
  try {
    if (p[0] === 0x1f && p[1] === 0x8b) out = gunzipSync(p);
    else {
      for (const [magic, tool] of tools) {
        if (magic.every((m, i) => p[i] === m)) {
          // The payload may carry trailing bytes (the decompressed size); tools warn but the
          // output is complete, so stderr is ignored.
          out = execFileSync(tool === 'lzma' ? 'xz' : tool, tool === 'lzma' ? ['--format=lzma', '-dc'] : ['-dc'], {
            input: p,
            maxBuffer: 1 << 30,
            stdio: ['pipe', 'pipe', 'ignore'],
          });
          break;
        }
      }
    }
  } catch (e) {
    // A tool that exits non-zero because of trailing garbage still wrote the whole image.
    const so = (e as { stdout?: Buffer }).stdout;
    out = so && so.length > 0 ? so : null;
  }
  if (!out || !isElf(out)) return null;
  const u8 = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  if (cacheKey) unpacked.set(cacheKey, u8);
  return u8;
}

/** The setup header a boot loader would fill in for a bare vmlinux. */
function elfSetupHeader(): SetupHeader {
  return {
    setupSects: 0,
    version: 0x020f,
    loadflags: 0x01,
    xloadflags: 0x01,
    initrdAddrMax: 0x7fffffff,
    kernelAlignment: 0x200000,
    relocatable: false,
    cmdlineSize: 2048,
    prefAddress: KERNEL_ADDR,
    initSize: 0,
    payloadOffset: 0,
    payloadSize: 0,
    headerEnd: 0x1f1,
  };
}

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export function e820Map(ram: RamRegion[]): E820Entry[] {
  const map: E820Entry[] = [
    { addr: 0, size: LOW_RAM_END, type: E820_RAM },
    { addr: LOW_RAM_END, size: KERNEL_ADDR - LOW_RAM_END, type: E820_RESERVED },
  ];
  for (const r of ram) {
    const start = Math.max(r.gpa, KERNEL_ADDR);
    const end = r.gpa + r.size;
    if (end > start) map.push({ addr: start, size: end - start, type: E820_RAM });
  }
  // KVM's TSS and identity-map pages (KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR).
  map.push({ addr: 0xfffbc000, size: 0x4000, type: E820_RESERVED });
  return map;
}

export interface LinuxBootSpec {
  /** bzImage bytes or path (an HVM config's `kernel`). */
  kernel: Uint8Array | string;
  /** initramfs bytes or path (`ramdisk`). */
  initrd?: Uint8Array | string | null;
  /** Kernel command line (`extra`). */
  cmdline: string;
  /** PCI INTx routes for the MP table (from the device model). */
  pciIrqs?: PciIrqRoute[];
  /** 'decompressor': enter the bzImage at startup_64 (+0x200) and let it unpack itself.
   * 'vmlinux': unpack the payload on the host and enter the kernel proper (the default when
   * the payload's compression can be undone here; see unpackBzImagePayload). */
  entry?: 'auto' | 'decompressor' | 'vmlinux';
  /** Append the words this host's KVM needs on a Linux command line (guestCmdlineQuirks();
   * nothing on hardware-assisted KVM). Default true. */
  hostQuirks?: boolean;
  /** Pages at the top of RAM that belong to the toolstack, not the guest (Xen's special pfns:
   * start_info, the xenstore and console rings): reserved in the e820 map, and nothing is
   * loaded there. Default 0. */
  reservedTopPages?: number;
}

/** RAM minus `bytes` at the top of the highest region, and that range (for e820). */
export function withReservedTop(ram: RamRegion[], bytes: number): { ram: RamRegion[]; reserved: E820Entry | null } {
  if (bytes <= 0) return { ram, reserved: null };
  const top = ram.reduce((a, r) => (r.gpa > a.gpa ? r : a));
  if (bytes >= top.size) throw new BootError(`cannot reserve ${bytes} bytes at the top of a ${top.size}-byte RAM region`);
  const trimmed = ram.map((r) => (r === top ? { ...r, size: r.size - bytes } : r));
  return { ram: trimmed, reserved: { addr: top.gpa + top.size - bytes, size: bytes, type: E820_RESERVED } };
}

export interface LinuxBootInfo {
  header: SetupHeader;
  kernelAddr: number;
  kernelSize: number;
  initrdAddr: number;
  initrdSize: number;
  /** The command line as given to the kernel (with any host quirks appended). */
  cmdline: string;
  e820: E820Entry[];
  entry: number;
  /** How the kernel is entered. */
  mode: 'decompressor' | 'vmlinux';
}

/** Kernels and initrds are files of a sane size: a path naming a device (/dev/zero) or a FIFO
 * would block or never end, and a file larger than any guest's RAM cannot be meant. */
export const MAX_BOOT_FILE_BYTES = 1 << 30;

const load = (x: Uint8Array | string): Uint8Array => {
  if (typeof x !== 'string') return x;
  const st = statSync(x);
  if (!st.isFile()) throw new BootError(`${x} is not a regular file`);
  if (st.size > MAX_BOOT_FILE_BYTES) throw new BootError(`${x} is ${Math.ceil(st.size / 2 ** 20)} MiB: more than any kernel or initrd (at most ${MAX_BOOT_FILE_BYTES / 2 ** 20} MiB)`);
  return readFileSync(x);
};

function kernelCacheKey(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${path}:${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** Lay out kernel, initrd, command line, boot_params, page tables, GDT and MP table in guest
 * memory. Pure memory writes: usable without KVM (tests check the layout). */
export function layoutLinux(mem: Uint8Array, allRam: RamRegion[], vcpus: number, spec: LinuxBootSpec): LinuxBootInfo {
  const { ram, reserved } = withReservedTop(allRam, (spec.reservedTopPages ?? 0) * 4096);
  const img = load(spec.kernel);
  const bare = isElf(img); // a vmlinux given directly: no setup header of its own
  const h = bare ? elfSetupHeader() : parseBzImage(img);
  const lowRam = ram.find((r) => r.gpa === 0);
  if (!lowRam) throw new BootError('no RAM at guest-physical 0');
  const lowTop = Math.min(lowRam.size, mem.length);
  const cmdline = [spec.cmdline, ...(spec.hostQuirks === false ? [] : guestCmdlineQuirks())].filter(Boolean).join(' ');
  const cmd = new TextEncoder().encode(cmdline);
  if (cmd.length + 1 > h.cmdlineSize) throw new BootError(`command line is ${cmd.length} bytes; this kernel takes at most ${h.cmdlineSize - 1}`);

  let mode: LinuxBootInfo['mode'] = 'decompressor';
  let entry = KERNEL_ADDR + 0x200;
  let kernelEnd: number;
  const want = spec.entry ?? 'auto';
  const elfBytes = isElf(img) ? img : want === 'decompressor' ? null : unpackBzImagePayload(img, h, typeof spec.kernel === 'string' ? kernelCacheKey(spec.kernel) : undefined);
  if (want === 'vmlinux' && !elfBytes) throw new BootError("cannot unpack this bzImage's payload on the host (unknown compression or missing tool)");
  mem.fill(0, 0, 0x100000);
  if (elfBytes) {
    const elf = parseElf(elfBytes);
    if (elf.lo < KERNEL_ADDR || elf.hi > lowTop) throw new BootError(`memory too small: the kernel occupies up to ${Math.ceil(elf.hi / 2 ** 20)} MiB`);
    for (const sgm of elf.segments) {
      mem.set(sgm.data, sgm.paddr);
      mem.fill(0, sgm.paddr + sgm.data.length, sgm.paddr + sgm.memsz);
    }
    mode = 'vmlinux';
    entry = elf.entry;
    kernelEnd = elf.hi;
  } else {
    // The kernel decompresses itself within [load address, + init_size) unless it relocates.
    kernelEnd = KERNEL_ADDR + Math.max(h.payloadSize, h.initSize);
    if (kernelEnd > lowTop) throw new BootError(`memory too small: the kernel needs ${Math.ceil(kernelEnd / 2 ** 20)} MiB to unpack`);
    mem.set(img.subarray(h.payloadOffset), KERNEL_ADDR);
  }

  let initrdAddr = 0;
  let initrdSize = 0;
  if (spec.initrd) {
    const rd = load(spec.initrd);
    initrdSize = rd.length;
    const maxEnd = Math.min(lowTop, h.initrdAddrMax + 1);
    initrdAddr = Math.floor((maxEnd - rd.length) / 4096) * 4096;
    if (initrdAddr < kernelEnd) {
      throw new BootError(`memory too small: a ${Math.ceil(rd.length / 2 ** 20)} MiB initrd does not fit above the kernel below ${Math.floor(maxEnd / 2 ** 20)} MiB`);
    }
    mem.set(rd, initrdAddr);
  }

  // boot_params
  const zp = new DataView(mem.buffer, mem.byteOffset + ZERO_PAGE, 4096);
  if (bare) {
    zp.setUint16(0x1fe, 0xaa55, true); // boot_flag
    zp.setUint32(0x202, 0x53726448, true); // "HdrS"
    zp.setUint16(0x206, h.version, true);
    zp.setUint32(0x22c, h.initrdAddrMax, true);
    zp.setUint32(0x230, h.kernelAlignment, true);
    zp.setUint32(0x238, h.cmdlineSize, true);
  } else {
    mem.set(img.subarray(0x1f1, h.headerEnd), ZERO_PAGE + 0x1f1);
  }
  zp.setUint16(0x1fa, 0xffff, true); // vid_mode: "normal"
  zp.setUint8(0x210, 0xff); // type_of_loader: undefined loader
  zp.setUint8(0x211, h.loadflags | 0x80); // CAN_USE_HEAP
  zp.setUint16(0x224, 0xfe00, true); // heap_end_ptr
  zp.setUint32(0x228, CMDLINE_ADDR, true); // cmd_line_ptr
  zp.setUint32(0x218, initrdAddr, true); // ramdisk_image
  zp.setUint32(0x21c, initrdSize, true); // ramdisk_size
  zp.setUint32(0x0c0, 0, true); // ext_ramdisk_image
  zp.setUint32(0x0c4, 0, true); // ext_ramdisk_size
  zp.setUint32(0x0c8, 0, true); // ext_cmd_line_ptr
  const e820 = e820Map(ram);
  if (reserved) e820.splice(e820.length - 1, 0, reserved);
  if (e820.length > 128) throw new BootError('too many e820 entries');
  zp.setUint8(0x1e8, e820.length);
  e820.forEach((e, i) => {
    const o = 0x2d0 + i * 20;
    zp.setBigUint64(o, BigInt(e.addr), true);
    zp.setBigUint64(o + 8, BigInt(e.size), true);
    zp.setUint32(o + 16, e.type, true);
  });
  mem.set(cmd, CMDLINE_ADDR);
  mem[CMDLINE_ADDR + cmd.length] = 0;

  // GDT: null, null, code64 (0x10), data (0x18), TSS (0x20)
  const gdt = new DataView(mem.buffer, mem.byteOffset + GDT_ADDR, 40);
  [0n, 0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00808b000000ffffn].forEach((d, i) => gdt.setBigUint64(i * 8, d, true));
  // identity map of 0-4 GiB with 2 MiB pages
  const pt = new DataView(mem.buffer, mem.byteOffset + PML4_ADDR, 6 * 4096);
  pt.setBigUint64(0, BigInt(PML4_ADDR + 0x1000) | 3n, true);
  for (let i = 0; i < 4; i++) {
    pt.setBigUint64(0x1000 + i * 8, BigInt(PML4_ADDR + 0x2000 + i * 0x1000) | 3n, true);
    for (let j = 0; j < 512; j++) {
      const phys = (BigInt(i) << 30n) | (BigInt(j) << 21n);
      pt.setBigUint64(0x2000 + i * 0x1000 + j * 8, phys | 0x83n, true);
    }
  }
  writeMpTable(mem, { vcpus, pciIrqs: spec.pciIrqs });
  return {
    header: h,
    kernelAddr: KERNEL_ADDR,
    kernelSize: h.payloadSize,
    initrdAddr,
    initrdSize,
    cmdline,
    e820,
    entry,
    mode,
  };
}

function seg(selector: number, type: number, code64: boolean): KvmSegment {
  return { base: 0, limit: 0xfffff, selector, type, present: 1, dpl: 0, db: code64 ? 0 : 1, s: 1, l: code64 ? 1 : 0, g: 1, avl: 0, unusable: 0 };
}

/** Registers of the 64-bit boot protocol's entry state on the bootstrap vCPU: long mode,
 * paging on our identity map, CS = __BOOT_CS, DS/ES/SS = __BOOT_DS, RSI = boot_params,
 * interrupts off. */
export function setBootRegisters(vcpu: number, entry: number): void {
  const k = native().kvm;
  const data = seg(0x18, 0x3, false);
  k.setSregs(vcpu, {
    cs: seg(0x10, 0xb, true),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: { base: 0, limit: 0x67, selector: 0x20, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    gdt: { base: GDT_ADDR, limit: 5 * 8 - 1 },
    idt: { base: IDT_ADDR, limit: 7 },
    cr0: 0x80000031, // PG | NE | ET | PE
    cr3: PML4_ADDR,
    cr4: 0x20, // PAE
    efer: 0x500, // LMA | LME
  });
  k.setRegs(vcpu, { rip: entry, rsi: ZERO_PAGE, rsp: BOOT_STACK, rbp: BOOT_STACK, rflags: 0x2, rax: 0, rbx: 0, rcx: 0, rdx: 0, rdi: 0 });
  k.setFpu(vcpu, { fcw: 0x37f, mxcsr: 0x1f80 });
  // What firmware leaves behind: fast strings on, MTRRs on with write-back default. Both are
  // courtesies (KVM on AMD ignores guest MTRRs); a KVM that refuses them is not fatal.
  for (const msr of [[0x1a0, 1], [0x2ff, 0xc06]] as Array<[number, number]>) {
    try {
      k.setMsrs(vcpu, [msr]);
    } catch {
      /* not fatal */
    }
  }
}

/** Load a Linux bzImage into a created (not started) KvmVm and point vCPU 0 at it. */
export function bootLinux(vm: KvmVm, spec: LinuxBootSpec): LinuxBootInfo {
  if (vm.state !== 'created') throw new BootError(`cannot load a kernel into a VM that is ${vm.state}`);
  const info = layoutLinux(new Uint8Array(vm.memory), vm.ram, vm.vcpus, spec);
  setBootRegisters(vm.vcpuHandles[0]!, info.entry);
  return info;
}
