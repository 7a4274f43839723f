// The xenstore nodes a new domain gets, as libxl writes them (libxl__domain_make and
// libxl__build_post): the domain's own subtree it may write, read-only facts about it, and
// the /vm/<uuid> record.
import type { BuildSpec } from './build-spec.js';

export interface LayoutFacts {
  domid: number;
  uuid: string;
  storeMfn: number;
  storePort: number;
  consoleMfn: number;
  consolePort: number;
}

export interface XsWriter {
  write(path: string, value: string): Promise<void>;
  setPerms(path: string, perms: string[]): Promise<void>;
  mkdir(path: string): Promise<void>;
}

export async function writeDomainLayout(xs: XsWriter, spec: BuildSpec, f: LayoutFacts): Promise<void> {
  const dom = `/local/domain/${f.domid}`;
  const vm = `/vm/${f.uuid}`;
  // rwperm: owned by the guest. roperm: owned by dom0, readable by the guest.
  const rw = [`n${f.domid}`];
  const ro = ['n0', `r${f.domid}`];
  // As libxl: the domain's home is dom0's, readable by the guest; the guest writes only in
  // the subtrees made for it (device, control, data, memory/target ...).
  await xs.mkdir(dom);
  await xs.setPerms(dom, ro);
  await xs.mkdir(vm);
  await xs.setPerms(vm, ro);
  const roNodes: [string, string][] = [
    [`${vm}/uuid`, f.uuid],
    [`${vm}/name`, spec.name],
    [`${vm}/start_time`, (Date.now() / 1000).toFixed(2)],
    [`${vm}/on_poweroff`, spec.onPoweroff],
    [`${vm}/on_reboot`, spec.onReboot],
    [`${vm}/on_crash`, spec.onCrash],
    [`${vm}/image/ostype`, spec.type === 'hvm' ? 'hvm' : 'linux'],
    [`${vm}/image/cmdline`, spec.cmdline],
    [`${dom}/vm`, vm],
    [`${dom}/name`, spec.name],
    [`${dom}/domid`, String(f.domid)],
    [`${dom}/memory/static-max`, String(spec.maxMemMiB * 1024)],
    [`${dom}/memory/videoram`, '-1'],
    [`${dom}/store/port`, String(f.storePort)],
    [`${dom}/store/ring-ref`, String(f.storeMfn)],
    [`${dom}/console/port`, String(f.consolePort)],
    [`${dom}/console/ring-ref`, String(f.consoleMfn)],
    [`${dom}/console/type`, 'xenconsoled'],
    [`${dom}/console/output`, 'pty'],
    [`${dom}/console/limit`, String(1024 * 1024)],
  ];
  for (const [p, v] of roNodes) {
    await xs.write(p, v);
    await xs.setPerms(p, ro);
  }
  // The guest answers these: it acknowledges shutdown requests, moves its balloon, and
  // publishes its frontends under device/.
  const rwNodes: [string, string][] = [
    [`${dom}/memory/target`, String(spec.memoryMiB * 1024)],
    [`${dom}/control/shutdown`, ''],
    [`${dom}/control/feature-poweroff`, '1'],
    [`${dom}/control/feature-reboot`, '1'],
    [`${dom}/control/platform-feature-multiprocessor-suspend`, '1'],
    [`${dom}/device`, ''],
    [`${dom}/data`, ''],
    [`${dom}/drivers`, ''],
    [`${dom}/attr`, ''],
    [`${dom}/error`, ''],
  ];
  for (const [p, v] of rwNodes) {
    await xs.write(p, v);
    await xs.setPerms(p, rw);
  }
  for (let i = 0; i < spec.maxVcpus; i++) {
    const p = `${dom}/cpu/${i}/availability`;
    await xs.write(p, i < spec.vcpus ? 'online' : 'offline');
    await xs.setPerms(p, rw);
  }
  await xs.write(`/libxl/${f.domid}/type`, spec.type);
  await xs.write(`/libxl/${f.domid}/dm-version`, 'qemu_xen');
}
