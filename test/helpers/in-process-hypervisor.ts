// The real hypervisor core in this process, with dom0's and one guest's hypercall channels as
// clients: for tests that play a hostile guest kernel (any hypercall, any arguments) without a
// kernel process. Needs root (the guest's cgroups), like the integration suites.
import { Hypervisor } from '../../hypervisor/hypervisor.js';
import { native } from '../../native/index.js';
import { HypercallClient } from '../../drivers/hypercall/channel.js';
import { afterAll, beforeAll } from 'vitest';

export interface InProcessHypervisor {
  hv: Hypervisor;
  dom0: HypercallClient;
  /** The guest kernel's end of its channel. */
  guest: HypercallClient;
  domid: number;
  stop(): Promise<void>;
}

export async function inProcessHypervisor(label: string): Promise<InProcessHypervisor> {
  const saved: Record<string, string | undefined> = {};
  const vars = { XENODE_CGROUP: `xenode-test-${label}-${process.pid}`, XENODE_RUN_DIR: `/tmp/xenode-test-${label}-${process.pid}` };
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const hv = new Hypervisor();
  const [ours, theirs] = native().seqpacketPair();
  hv.attachDom0(ours, () => {});
  const dom0 = new HypercallClient(theirs);
  const { domid } = await dom0.invoke<{ domid: number }>('domctl.createdomain', { label, memoryMiB: 16, vcpus: 1, kernel: { kind: 'pv', startInfoPfn: 4095 } });
  const [g, gTheirs] = native().seqpacketPair();
  hv.attachGuestChannel(domid, g);
  const guest = new HypercallClient(gTheirs);
  return {
    hv,
    dom0,
    guest,
    domid,
    async stop() {
      guest.close();
      await hv.destroyAll();
      dom0.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}

/** For a describe block: one in-process hypervisor made before its tests and stopped after
 * them; call the returned function inside a test to reach it. */
export function inProcessHypervisorSuite(label: string): () => InProcessHypervisor {
  let x: InProcessHypervisor | undefined;
  beforeAll(async () => {
    x = await inProcessHypervisor(label);
  });
  afterAll(() => x?.stop());
  return () => {
    if (!x) throw new Error('the in-process hypervisor did not start');
    return x;
  };
}
