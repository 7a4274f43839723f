// Tiny hand-made guests for the KVM engine's tests and benchmarks: a small x86-64 assembler
// (just the instructions they need), a bzImage wrapper so tiny kernels go through the real
// boot-protocol loader, and a ring-3 setup (where even a PVM host runs guest code natively).

export class Asm {
  readonly bytes: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Array<{ at: number; label: string }> = [];

  constructor(readonly origin: number) {}

  get here(): number {
    return this.origin + this.bytes.length;
  }

  emit(...b: number[]): this {
    this.bytes.push(...b.map((x) => x & 0xff));
    return this;
  }

  private imm32(v: number): number[] {
    return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  }

  label(name: string): this {
    this.labels.set(name, this.bytes.length);
    return this;
  }

  private rel8(op: number, label: string): this {
    this.emit(op, 0);
    this.fixups.push({ at: this.bytes.length - 1, label });
    return this;
  }

  jnz(label: string): this {
    return this.rel8(0x75, label);
  }
  jz(label: string): this {
    return this.rel8(0x74, label);
  }
  jmp(label: string): this {
    return this.rel8(0xeb, label);
  }
  movDx(v: number): this {
    return this.emit(0x66, 0xba, v & 0xff, v >> 8);
  }
  movAl(v: number): this {
    return this.emit(0xb0, v);
  }
  movEcx(v: number): this {
    return this.emit(0xb9, ...this.imm32(v));
  }
  movEsi(v: number): this {
    return this.emit(0xbe, ...this.imm32(v));
  }
  outDxAl(): this {
    return this.emit(0xee);
  }
  inAlDx(): this {
    return this.emit(0xec);
  }
  outImmAl(port: number): this {
    return this.emit(0xe6, port);
  }
  decEcx(): this {
    return this.emit(0xff, 0xc9);
  }
  cmpAl(v: number): this {
    return this.emit(0x3c, v);
  }
  /** inc qword [abs32] */
  incMem(addr: number): this {
    return this.emit(0x48, 0xff, 0x04, 0x25, ...this.imm32(addr));
  }
  /** mov byte [abs32], imm8 */
  movMem8(addr: number, v: number): this {
    return this.emit(0xc6, 0x04, 0x25, ...this.imm32(addr), v);
  }
  repOutsb(): this {
    return this.emit(0xf3, 0x6e);
  }
  ud2(): this {
    return this.emit(0x0f, 0x0b);
  }
  cli(): this {
    return this.emit(0xfa);
  }
  hlt(): this {
    return this.emit(0xf4);
  }
  /** Print to the 0xE9 debug console, one OUT per byte. */
  debug(text: string): this {
    for (const ch of Buffer.from(text)) this.movAl(ch).outImmAl(0xe9);
    return this;
  }
  /** cli; hlt; jmp back: halt for good. */
  haltForever(): this {
    return this.label('__halt').cli().hlt().jmp('__halt');
  }

  build(): Uint8Array {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`undefined label ${f.label}`);
      const rel = target - (f.at + 1);
      if (rel < -128 || rel > 127) throw new Error(`jump to ${f.label} out of rel8 range`);
      this.bytes[f.at] = rel & 0xff;
    }
    return Uint8Array.from(this.bytes);
  }
}

/** A bzImage around 64-bit code: one setup sector whose header says protocol 2.15, 64-bit
 * entry, loaded high; the protected-mode "kernel" is 0x200 bytes of padding (where a real
 * one's 32-bit entry is) followed by `code64`, which therefore runs at 1 MiB + 0x200. */
export function tinyBzImage(code64: Uint8Array): Uint8Array {
  const setup = new Uint8Array(2 * 512);
  const v = new DataView(setup.buffer);
  setup[0x1f1] = 1; // setup_sects
  v.setUint16(0x1fe, 0xaa55, true);
  setup[0x200] = 0xeb; // jmp over the header, as real images do
  setup[0x201] = 0x66; // header ends at 0x268
  v.setUint32(0x202, 0x53726448, true); // "HdrS"
  v.setUint16(0x206, 0x020f, true);
  setup[0x211] = 0x01; // LOADED_HIGH
  v.setUint32(0x214, 0x100000, true); // code32_start
  v.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  v.setUint32(0x230, 0x200000, true); // kernel_alignment
  v.setUint16(0x236, 0x0001, true); // XLF_KERNEL_64
  v.setUint32(0x238, 2048, true); // cmdline_size
  v.setUint32(0x260, 0x10000, true); // init_size
  const pm = new Uint8Array(0x200 + code64.length + 16);
  pm.set(code64, 0x200);
  const img = new Uint8Array(setup.length + pm.length);
  img.set(setup);
  img.set(pm, setup.length);
  return img;
}

/** Where tiny kernels' code runs (bzImage loaded at 1 MiB, 64-bit entry at +0x200). */
export const TINY_ENTRY = 0x100200;

/** Long-mode user segments and page tables for tests that drop a vCPU to ring 3 (where even a
 * PVM host runs guest code natively): GDT with user code 0x33 / data 0x2b at `gdt`, page
 * tables with the U bit at `pt` identity-mapping the first 1 GiB. Returns the sregs/regs to
 * apply. */
export function userModeSetup(mem: Uint8Array, gdt = 0x40000, pt = 0x41000, tss = 0x50000) {
  const v = new DataView(mem.buffer, mem.byteOffset);
  // null, null, kcode 0x10, kdata 0x18, tss 0x20, udata 0x28, ucode 0x30
  [0n, 0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00808b000000ffffn, 0x00cff3000000ffffn, 0x00affb000000ffffn].forEach((d, i) =>
    v.setBigUint64(gdt + i * 8, d, true),
  );
  v.setBigUint64(pt, BigInt(pt + 0x1000) | 7n, true);
  v.setBigUint64(pt + 0x1000, BigInt(pt + 0x2000) | 7n, true);
  for (let j = 0; j < 512; j++) v.setBigUint64(pt + 0x2000 + j * 8, (BigInt(j) << 21n) | 0x87n, true);
  const seg = (selector: number, type: number, code: boolean) => ({
    base: 0, limit: 0xfffff, selector, type, present: 1, dpl: 3, db: code ? 0 : 1, s: 1, l: code ? 1 : 0, g: 1, avl: 0, unusable: 0,
  });
  const data = seg(0x2b, 3, false);
  return {
    sregs: {
      cs: seg(0x33, 0xb, true), ds: data, es: data, fs: data, gs: data, ss: data, gdt: { base: gdt, limit: 7 * 8 - 1 }, cr3: pt,
      // A TSS whose I/O permission bitmap (all zero: every port allowed) covers all 64K ports:
      // KVM's instruction emulator (PVM runs ring-3 port I/O through it) checks the bitmap.
      tr: { base: tss, limit: 0x2001, selector: 0x20, type: 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    },
    // IOPL 3: ring 3 may use IN/OUT
    rflags: 0x3002,
  };
}

/** Where counterKernel keeps its count (a u64 in guest RAM, so a restore must carry RAM). */
export const COUNTER_GPA = 0x200000;

/** Where dirtying guests sweep (above the kernel and its page tables). */
export const DIRTY_REGION_GPA = 0x400000;

/** A kernel that counts forever on COM1: after a busy wait of `delay` loop turns it increments
 * the u64 at COUNTER_GPA and prints it as 8 hex digits and CRLF (`0000002a`). Ring 0: where
 * KVM emulates guest kernel mode (PVM) a turn is about 1.7 us, so the default prints about six
 * lines a second. Save/restore and migration tests watch the count go on. With `dirtyPages`,
 * each count is also written into the first u64 of that many pages from DIRTY_REGION_GPA
 * before it is printed, so the guest dirties memory at a fixed rate, and at any moment every
 * page of the region holds the count or the one before it (a migration that lost a dirty page
 * shows as an older value). */
export function counterKernel(delay = 100_000, port = 0x3f8, dirtyPages = 0): Uint8Array {
  const a = new Asm(TINY_ENTRY);
  a.jmp('code');
  const table = a.here;
  a.emit(...Buffer.from('0123456789abcdef'));
  a.label('code');
  a.label('line');
  a.movEcx(delay).label('wait').decEcx().jnz('wait');
  a.incMem(COUNTER_GPA);
  if (dirtyPages > 0) {
    a.emit(0x48, 0x8b, 0x04, 0x25, COUNTER_GPA & 0xff, (COUNTER_GPA >>> 8) & 0xff, (COUNTER_GPA >>> 16) & 0xff, COUNTER_GPA >>> 24); // mov rax, [ctr]
    a.emit(0xbf, DIRTY_REGION_GPA & 0xff, (DIRTY_REGION_GPA >>> 8) & 0xff, (DIRTY_REGION_GPA >>> 16) & 0xff, DIRTY_REGION_GPA >>> 24); // mov edi, region
    a.movEcx(dirtyPages);
    a.label('sweep');
    a.emit(0x48, 0x89, 0x07); // mov [rdi], rax
    a.emit(0x81, 0xc7, 0x00, 0x10, 0x00, 0x00); // add edi, 4096
    a.decEcx().jnz('sweep');
  }
  a.emit(0x8b, 0x04, 0x25, COUNTER_GPA & 0xff, (COUNTER_GPA >>> 8) & 0xff, (COUNTER_GPA >>> 16) & 0xff, COUNTER_GPA >>> 24); // mov eax, [ctr]
  a.movEsi(8).movDx(port);
  a.label('digit');
  a.emit(0xc1, 0xc0, 0x04); // rol eax, 4
  a.emit(0x89, 0xc3); // mov ebx, eax
  a.emit(0x83, 0xe3, 0x0f); // and ebx, 15
  a.emit(0x8a, 0x9b, table & 0xff, (table >>> 8) & 0xff, (table >>> 16) & 0xff, table >>> 24); // mov bl, [rbx + table]
  a.emit(0x89, 0xc7); // mov edi, eax
  a.emit(0x88, 0xd8); // mov al, bl
  a.outDxAl();
  a.emit(0x89, 0xf8); // mov eax, edi
  a.emit(0xff, 0xce); // dec esi
  a.jnz('digit');
  a.movAl(0x0d).outDxAl().movAl(0x0a).outDxAl();
  a.jmp('line');
  return tinyBzImage(a.build());
}
