// The KVM engine's saved state (docs/kvm.md, "Save, restore, migration"): what native/kvm-state.cc
// reads out of the kernel for a VM (PIC pair, IOAPIC, PIT, kvmclock) and for each vCPU
// (registers, segment and control registers, XSAVE or FPU, XCRs, MSRs with the TSC, local APIC,
// pending events, MP state, debug registers), as KVM's own structs in a record list:
//
//   record = u32 tag, u32 length, length bytes, zero padding to 8
//
// and the envelope that carries one VM's worth (below). Pure: bytes in, checked bytes out. A
// record list is checked whole before any of it goes back to the kernel: known tags, each once,
// the exact size of its struct, the required ones present, and the fields whose values the
// kernel would take on trust where a bad one hurts (MP state, irqchip ids, MSR count).

export const KVM_STATE_TAG = {
  REGS: 1,
  SREGS: 2,
  XSAVE: 3,
  FPU: 4,
  XCRS: 5,
  MSRS: 6,
  LAPIC: 7,
  EVENTS: 8,
  MP_STATE: 9,
  DEBUGREGS: 10,
  PIC_MASTER: 20,
  PIC_SLAVE: 21,
  IOAPIC: 22,
  PIT2: 23,
  CLOCK: 24,
} as const;

const T = KVM_STATE_TAG;

/** struct sizes from <linux/kvm.h> (x86-64); a variable one is [min, max, multiple]. */
const SIZES: Record<number, { name: string; size: number | [number, number, number]; required: boolean; scope: 'vcpu' | 'vm' }> = {
  [T.REGS]: { name: 'registers', size: 144, required: true, scope: 'vcpu' },
  [T.SREGS]: { name: 'segment registers', size: 312, required: true, scope: 'vcpu' },
  [T.XSAVE]: { name: 'XSAVE area', size: [4096, 65536, 64], required: false, scope: 'vcpu' },
  [T.FPU]: { name: 'FPU', size: 416, required: false, scope: 'vcpu' },
  [T.XCRS]: { name: 'XCRs', size: 392, required: false, scope: 'vcpu' },
  [T.MSRS]: { name: 'MSRs', size: [16, 1024 * 16, 16], required: true, scope: 'vcpu' },
  [T.LAPIC]: { name: 'local APIC', size: 1024, required: true, scope: 'vcpu' },
  [T.EVENTS]: { name: 'vCPU events', size: 64, required: true, scope: 'vcpu' },
  [T.MP_STATE]: { name: 'MP state', size: 4, required: true, scope: 'vcpu' },
  [T.DEBUGREGS]: { name: 'debug registers', size: 128, required: false, scope: 'vcpu' },
  [T.PIC_MASTER]: { name: 'PIC master', size: 520, required: true, scope: 'vm' },
  [T.PIC_SLAVE]: { name: 'PIC slave', size: 520, required: true, scope: 'vm' },
  [T.IOAPIC]: { name: 'IOAPIC', size: 520, required: true, scope: 'vm' },
  [T.PIT2]: { name: 'PIT', size: 112, required: true, scope: 'vm' },
  [T.CLOCK]: { name: 'kvmclock', size: 48, required: true, scope: 'vm' },
};

/** KVM_MP_STATE_RUNNABLE .. KVM_MP_STATE_AP_RESET_HOLD. */
const MP_STATE_MAX = 9;
const MSR_IA32_TSC = 0x10;

export class KvmStateError extends Error {}

export interface KvmRecord {
  tag: number;
  bytes: Uint8Array;
}

/** Splits and checks a record list of one scope. Throws KvmStateError naming what is wrong. */
export function parseKvmRecords(buf: Uint8Array, scope: 'vcpu' | 'vm', what: string): KvmRecord[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: KvmRecord[] = [];
  const seen = new Set<number>();
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 8) throw new KvmStateError(`${what}: a record header is cut off at byte ${off}`);
    const tag = dv.getUint32(off, true);
    const len = dv.getUint32(off + 4, true);
    off += 8;
    const def = SIZES[tag];
    if (!def || def.scope !== scope) throw new KvmStateError(`${what}: unknown record tag ${tag}`);
    if (seen.has(tag)) throw new KvmStateError(`${what}: two ${def.name} records`);
    seen.add(tag);
    if (len > buf.length - off) throw new KvmStateError(`${what}: the ${def.name} record (${len} bytes) runs past the end`);
    if (typeof def.size === 'number') {
      if (len !== def.size) throw new KvmStateError(`${what}: the ${def.name} record is ${len} bytes, KVM's struct is ${def.size}`);
    } else {
      const [min, max, mult] = def.size;
      if (len < min || len > max || len % mult !== 0) throw new KvmStateError(`${what}: the ${def.name} record is ${len} bytes (expected ${min}-${max}, a multiple of ${mult})`);
    }
    out.push({ tag, bytes: buf.subarray(off, off + len) });
    off += (len + 7) & ~7;
    if (off > buf.length) throw new KvmStateError(`${what}: the ${def.name} record's padding runs past the end`);
  }
  for (const [tag, def] of Object.entries(SIZES)) {
    if (def.scope === scope && def.required && !seen.has(Number(tag))) throw new KvmStateError(`${what}: no ${def.name} record`);
  }
  const get = (tag: number) => out.find((r) => r.tag === tag)?.bytes;
  if (scope === 'vcpu') {
    if (!seen.has(T.XSAVE) && !seen.has(T.FPU)) throw new KvmStateError(`${what}: neither an XSAVE area nor FPU state`);
    const mp = new DataView(get(T.MP_STATE)!.buffer, get(T.MP_STATE)!.byteOffset).getUint32(0, true);
    if (mp > MP_STATE_MAX) throw new KvmStateError(`${what}: MP state ${mp} is not one KVM defines`);
    const msrs = get(T.MSRS)!;
    const mv = new DataView(msrs.buffer, msrs.byteOffset, msrs.byteLength);
    let tsc = false;
    for (let i = 0; i < msrs.length; i += 16) if (mv.getUint32(i, true) === MSR_IA32_TSC) tsc = true;
    if (!tsc) throw new KvmStateError(`${what}: the MSRs do not include the TSC`);
  } else {
    ([[T.PIC_MASTER, 0], [T.PIC_SLAVE, 1], [T.IOAPIC, 2]] as const).forEach(([tag, chip]) => {
      const b = get(tag)!;
      const id = new DataView(b.buffer, b.byteOffset).getUint32(0, true);
      if (id !== chip) throw new KvmStateError(`${what}: the ${SIZES[tag]!.name} record names irqchip ${id}`);
    });
  }
  return out;
}

/** A vCPU's instruction pointer from its REGS record (for messages and tests). */
export function vcpuRip(state: Uint8Array): bigint {
  const regs = parseKvmRecords(state, 'vcpu', 'vCPU state').find((r) => r.tag === T.REGS)!.bytes;
  return new DataView(regs.buffer, regs.byteOffset).getBigUint64(16 * 8, true);
}

// ---- one VM's worth: the envelope ----
//   u32 magic 'KVMS', u32 version, u32 vcpus, u32 vm-length, vm records,
//   then per vCPU: u32 length, its records (each padded to 8 by the writer)

const MAGIC = 0x534d564b; // "KVMS" little-endian
export const KVM_STATE_VERSION = 1;
const MAX_VCPUS = 128;
const MAX_PART = 256 * 1024;

export interface KvmMachineState {
  vm: Uint8Array;
  vcpus: Uint8Array[];
}

export function encodeKvmState(s: KvmMachineState): Uint8Array {
  const parts = [s.vm, ...s.vcpus];
  const total = 16 + parts.reduce((n, p, i) => n + (i === 0 ? 0 : 4) + p.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, KVM_STATE_VERSION, true);
  dv.setUint32(8, s.vcpus.length, true);
  dv.setUint32(12, s.vm.length, true);
  out.set(s.vm, 16);
  let off = 16 + s.vm.length;
  for (const v of s.vcpus) {
    dv.setUint32(off, v.length, true);
    out.set(v, off + 4);
    off += 4 + v.length;
  }
  return out;
}

/** Decodes and checks the whole envelope and every record list in it; `vcpus` is what the
 * domain's config says (a file for another vCPU count is refused). */
export function decodeKvmState(buf: Uint8Array, vcpus: number): KvmMachineState {
  if (buf.length < 16) throw new KvmStateError('CPU state: shorter than its header');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new KvmStateError('CPU state: bad magic');
  const version = dv.getUint32(4, true);
  if (version !== KVM_STATE_VERSION) throw new KvmStateError(`CPU state: version ${version}, this xenode reads version ${KVM_STATE_VERSION}`);
  const n = dv.getUint32(8, true);
  if (n < 1 || n > MAX_VCPUS) throw new KvmStateError(`CPU state: ${n} vCPUs`);
  if (n !== vcpus) throw new KvmStateError(`CPU state: ${n} vCPUs saved, the config gives ${vcpus}`);
  const vmLen = dv.getUint32(12, true);
  if (vmLen > MAX_PART || 16 + vmLen > buf.length) throw new KvmStateError('CPU state: the VM part runs past the end');
  const vm = buf.subarray(16, 16 + vmLen);
  parseKvmRecords(vm, 'vm', 'VM state');
  const out: Uint8Array[] = [];
  let off = 16 + vmLen;
  for (let i = 0; i < n; i++) {
    if (off + 4 > buf.length) throw new KvmStateError(`CPU state: vCPU ${i} is missing`);
    const len = dv.getUint32(off, true);
    if (len > MAX_PART || off + 4 + len > buf.length) throw new KvmStateError(`CPU state: vCPU ${i} runs past the end`);
    const v = buf.subarray(off + 4, off + 4 + len);
    parseKvmRecords(v, 'vcpu', `vCPU ${i} state`);
    out.push(v);
    off += 4 + len;
  }
  if (off !== buf.length) throw new KvmStateError(`CPU state: ${buf.length - off} bytes after the last vCPU`);
  return { vm, vcpus: out };
}
