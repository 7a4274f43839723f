// The hypervisor's half of save, restore and migration for a KVM domain (docs/kvm.md, "Save,
// restore, migration"): its CPU state out and in, and KVM's dirty log, each handed to dom0 as a
// memfd (they can be larger than a hypercall message). dom0 reads RAM itself, through the
// domain's memory memfd, as it does for every domain.
import { native } from '../../native/index.js';
import type { KvmDomain } from './kvm-domain.js';
import { decodeKvmState, encodeKvmState } from '../../common/kvm-state-codec.js';

/** A blob in a fresh memfd (the caller sends it and closes it). */
export function blobToMemfd(name: string, bytes: Uint8Array): number {
  const n = native();
  const fd = n.memfdCreate(name, Math.max(4096, bytes.length));
  if (bytes.length > 0) new Uint8Array(n.mapShared(fd, bytes.length)).set(bytes);
  return fd;
}

/** `bytes` of a memfd someone sent us; refuses a file smaller than it says. */
export function blobFromMemfd(fd: number, bytes: number, max: number): Uint8Array {
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes > max) throw new RangeError(`a state of ${bytes} bytes (at most ${max})`);
  const n = native();
  const size = n.fdSize(fd);
  if (size < bytes) throw new RangeError(`the state's memfd holds ${size} bytes, not ${bytes}`);
  return Uint8Array.from(new Uint8Array(n.mapShared(fd, bytes)));
}

/** The paused domain's CPU state (every vCPU, the in-kernel chips), encoded. */
export async function saveKvmState(kvm: KvmDomain): Promise<{ fd: number; bytes: number }> {
  const blob = encodeKvmState(await kvm.vm.saveState());
  return { fd: kvm.lend('state', blobToMemfd('xenode-kvm-state', blob)), bytes: blob.length };
}

/** A saved CPU state onto a restored domain that has not started; checked whole first. */
export function loadKvmState(kvm: KvmDomain, blob: Uint8Array): { msrsSkipped: number } {
  const state = decodeKvmState(blob, kvm.vm.vcpus);
  return { msrsSkipped: kvm.vm.loadState(state) };
}

/** KVM's dirty log for migration: 'start' (write-protect all RAM), 'collect' (the pages written
 * since the last collect, as a bitmap over the domain's pages, in a memfd), 'stop'. */
export function dirtyLog(kvm: KvmDomain, op: string): { fd: number; bytes: number } | null {
  if (op === 'start' || op === 'stop') {
    kvm.vm.setDirtyLogging(op === 'start');
    return null;
  }
  if (op !== 'collect') throw new RangeError(`dirty log operation ${JSON.stringify(op)}`);
  const bitmap = new Uint8Array(Math.ceil(kvm.vm.memoryBytes / 4096 / 8));
  kvm.vm.collectDirtyPages(bitmap);
  return { fd: kvm.lend('dirty', blobToMemfd('xenode-dirty-log', bitmap)), bytes: bitmap.length };
}
