// HVM (docs/hvm.md): dom0 sets up an HVM domain's ioreq pages, interrupt port and params;
// the domain reads its platform and params.
import { type HvmPlatformInfo } from '../../drivers/hypercall/ops.js';
import { HVM_IOREQ_PAGES } from '../../drivers/hypercall/hvm-platform-page.js';
import { guest, priv, fault, type HypercallContext, type HypercallTable } from './context.js';

export function hvmHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'domctl.map_ioreq_pages': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (d.ioreqFd < 0) throw fault('EINVAL', `domain ${d.domid} is not an HVM domain`);
      return { result: { pages: HVM_IOREQ_PAGES, vcpus: d.maxVcpus }, fds: [d.ioreqFd] };
    }),
    'domctl.set_hvm_irq_port': priv((_c, a) => {
      const d = hv.domain(a.domid);
      const p = d.evtchn.get(a.port);
      if (d.kind !== 'hvm' || !p) throw fault('EINVAL', `port ${String(a.port)} is not a port of HVM domain ${d.domid}`);
      d.irqPort = p.port;
      // A KVM domain has no kernel process to wait on this port: the VM host watches it.
      d.kvm?.watchIrq(p.fd);
      return { result: null };
    }),
    'domctl.kvm_exit_stats': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (!d.kvm) throw fault('EINVAL', `domain ${d.domid} does not run on KVM`);
      return { result: d.kvm.exitStats() };
    }),
    'domctl.set_hvm_param': priv((_c, a) => {
      const d = hv.domain(a.domid);
      d.hvmParams.set(hv.int(a.index, 'index', 0, 255), hv.int(a.value, 'value', 0, 2 ** 52));
      return { result: null };
    }),
    'hvm.platform': guest((c) => {
      if (c.kind !== 'hvm' || c.ioreqFd < 0) throw fault('EINVAL', 'not an HVM domain');
      const info: HvmPlatformInfo = { vcpus: c.maxVcpus, memoryBytes: c.memoryMiB * 1048576, irqPort: c.irqPort, cmdline: c.cmdline };
      return { result: info, fds: [c.ioreqFd] };
    }),
    'hvm.get_param': guest((c, a) => {
      const index = hv.int(a.index, 'index', 0, 255);
      if (c.kind !== 'hvm') throw fault('EINVAL', 'HVM params exist for HVM domains only');
      return { result: { value: c.hvmParams.get(index) ?? 0 } };
    }),
  };
}
