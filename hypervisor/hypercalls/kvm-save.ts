// Save, restore and migration of a KVM domain (docs/kvm.md, "Save, restore, migration"): its
// CPU state out of a paused domain and into a restored one before its first unpause, and KVM's
// dirty log. Blobs travel as memfds (hypervisor/kvm/kvm-save.ts).
import { native } from '../../native/index.js';
import { blobFromMemfd, dirtyLog, loadKvmState, saveKvmState } from '../kvm/kvm-save.js';
import { priv, fault, type HypercallContext, type HypercallTable } from './context.js';

export function kvmSaveHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'domctl.kvm_save_state': priv(async (_c, a) => {
      const d = hv.domain(a.domid);
      if (!d.kvm) throw fault('EINVAL', `domain ${d.domid} does not run on KVM`);
      if (d.started && !d.paused) throw fault('EBUSY', `domain ${d.domid} must be paused to save its CPU state`);
      const s = await saveKvmState(d.kvm).catch((e: Error) => {
        throw fault('EIO', e.message);
      });
      return { result: { bytes: s.bytes }, fds: [s.fd] };
    }),
    'domctl.kvm_load_state': priv((_c, a, fds) => {
      try {
        const d = hv.domain(a.domid);
        if (!d.kvm || d.started) throw fault('EINVAL', `domain ${d.domid} is not a KVM domain waiting for its restored state`);
        try {
          return { result: loadKvmState(d.kvm, blobFromMemfd(fds[0] ?? -1, a.bytes, 8 << 20)) };
        } catch (e) {
          throw fault('EINVAL', `CPU state: ${(e as Error).message}`);
        }
      } finally {
        for (const fd of fds) native().close(fd);
      }
    }),
    'domctl.kvm_dirty_log': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (!d.kvm) throw fault('EINVAL', `domain ${d.domid} does not run on KVM`);
      try {
        const r = dirtyLog(d.kvm, String(a.op));
        return r ? { result: { bytes: r.bytes }, fds: [r.fd] } : { result: null };
      } catch (e) {
        throw fault('EIO', `dirty log: ${(e as Error).message}`);
      }
    }),
  };
}
