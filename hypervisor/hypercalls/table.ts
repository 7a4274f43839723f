// The hypercall table: every family's entries under their wire names ("family.op"). A peer's
// name picks an entry only through ownEntry (common/own-entry.ts), so names the object
// inherits (`constructor`, `__proto__`) are as unknown as any other.
import { consoleHypercalls } from './console.js';
import type { HypercallContext, HypercallTable } from './context.js';
import { domctlHypercalls } from './domctl.js';
import { evtchnHypercalls } from './evtchn.js';
import { fdStoreHypercalls } from './fdstore.js';
import { gnttabHypercalls } from './gnttab.js';
import { hvmHypercalls } from './hvm.js';
import { kvmSaveHypercalls } from './kvm-save.js';
import { memoryHypercalls } from './memory.js';
import { schedHypercalls } from './sched.js';
import { sysctlHypercalls } from './sysctl.js';
import { vcpuHypercalls } from './vcpu.js';
import { xenVersionHypercalls } from './xen-version.js';

export function hypercallTable(hv: HypercallContext): HypercallTable {
  const families = [
    xenVersionHypercalls(),
    sysctlHypercalls(hv),
    domctlHypercalls(hv),
    hvmHypercalls(hv),
    kvmSaveHypercalls(hv),
    memoryHypercalls(hv),
    vcpuHypercalls(hv),
    gnttabHypercalls(hv),
    schedHypercalls(hv),
    consoleHypercalls(hv),
    evtchnHypercalls(hv),
    fdStoreHypercalls(hv),
  ];
  const table: HypercallTable = {};
  for (const family of families) {
    for (const [name, entry] of Object.entries(family)) {
      // Two families claiming one name would make one unreachable: refuse to start instead.
      if (Object.prototype.hasOwnProperty.call(table, name)) throw new Error(`hypercall ${name} is defined twice`);
      table[name] = entry;
    }
  }
  return table;
}
