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
  // Every request is sent at once and answered in order (one connection: xenstored handles
  // its requests in turn), so each node exists before its permissions are set, as when each
  // was awaited, but without ~60 round trips on the way to the guest's start.
  const sent: Promise<void>[] = [];
  const send = (p: Promise<void>) => void sent.push(p);
  // As libxl: the domain's home is dom0's, readable by the guest; the guest writes only in
  // the subtrees made for it (device, control, data, memory/target ...).
  send(xs.mkdir(dom));
  send(xs.setPerms(dom, ro));
  send(xs.mkdir(vm));
  send(xs.setPerms(vm, ro));
  // The primary console as a device, as libxl__device_console_add writes it: its backend
  // directory in dom0 (xenconsoled's; here the console daemon's), linked both ways.
  const consoleBackend = `/local/domain/0/backend/console/${f.domid}/0`;
  const roNodes: [string, string][] = [
    [`${vm}/uuid`, f.uuid],
    [`${vm}/name`, spec.name],
    [`${vm}/start_time`, (Date.now() / 1000).toFixed(2)],
    [`${vm}/on_poweroff`, spec.onPoweroff],
    [`${vm}/on_reboot`, spec.onReboot],
    [`${vm}/on_crash`, spec.onCrash],
    [`${vm}/image/ostype`, spec.type === 'hvm' ? 'hvm' : 'linux'],
    [`${vm}/image/cmdline`, spec.cmdline],
    ...imageNodes(vm, spec),
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
    [`${dom}/console/backend`, consoleBackend],
    [`${dom}/console/backend-id`, '0'],
    // libxl__xs_writev of the platform data: an HVM guest's firmware reads these.
    ...(spec.type === 'hvm' ? hvmPlatformNodes(dom, vm) : []),
    [`${dom}/control/platform-feature-multiprocessor-suspend`, '1'],
    [`${dom}/control/platform-feature-xs_reset_watches`, '1'],
  ];
  for (const [p, v] of roNodes) {
    send(xs.write(p, v));
    send(xs.setPerms(p, ro));
  }
  // The guest answers these: it acknowledges shutdown requests, moves its balloon, and
  // publishes its frontends under device/.
  // The control/feature-* nodes are made empty and writable: the guest's kernel fills them in
  // when it can act on the request (Linux's drivers/xen/manage.c), as under libxl.
  const rwNodes: [string, string][] = [
    [`${dom}/memory/target`, String(spec.memoryMiB * 1024)],
    [`${dom}/control/shutdown`, ''],
    [`${dom}/control/feature-poweroff`, ''],
    [`${dom}/control/feature-reboot`, ''],
    [`${dom}/control/feature-suspend`, ''],
    ...(spec.type === 'hvm' ? ([[`${dom}/control/feature-s3`, ''], [`${dom}/control/feature-s4`, '']] as [string, string][]) : []),
    [`${dom}/control/sysrq`, ''],
    [`${dom}/device/suspend/event-channel`, ''],
    [`${dom}/data`, ''],
    [`${dom}/drivers`, ''],
    [`${dom}/attr`, ''],
    [`${dom}/error`, ''],
  ];
  for (const [p, v] of rwNodes) {
    send(xs.write(p, v));
    send(xs.setPerms(p, rw));
  }
  for (let i = 0; i < spec.maxVcpus; i++) {
    const p = `${dom}/cpu/${i}/availability`;
    send(xs.write(p, i < spec.vcpus ? 'online' : 'offline'));
    send(xs.setPerms(p, rw));
  }
  send(xs.mkdir(consoleBackend));
  send(xs.setPerms(consoleBackend, ro));
  for (const [k, v] of [['frontend', `${dom}/console`], ['frontend-id', String(f.domid)], ['online', '1'], ['state', '1'], ['protocol', 'vt100']]) {
    send(xs.write(`${consoleBackend}/${k}`, v!));
  }
  // libxl's own tree (dom0 only): the domain's type and, per device, where libxl keeps the
  // devices it added (the device code adds vifs and vbds there).
  send(xs.mkdir(`/libxl/${f.domid}/device`));
  send(xs.setPerms(`/libxl/${f.domid}`, ['n0']));
  send(xs.write(`/libxl/${f.domid}/device/console/0/frontend`, `${dom}/console`));
  send(xs.write(`/libxl/${f.domid}/device/console/0/backend`, consoleBackend));
  send(xs.write(`/libxl/${f.domid}/type`, spec.type));
  send(xs.write(`/libxl/${f.domid}/dm-version`, 'qemu_xen'));
  await Promise.all(sent);
}

/** /vm/UUID/image as libxl__build_post writes it: the kernel the domain was built from. */
function imageNodes(vm: string, spec: BuildSpec): [string, string][] {
  const out: [string, string][] = [];
  if (spec.kernel) out.push([`${vm}/image/kernel`, spec.kernel]);
  if (spec.ramdisk) out.push([`${vm}/image/ramdisk`, spec.ramdisk]);
  return out;
}

/** The HVM keys libxl__build_post writes (libxl_create.c): the platform the firmware and
 * device model read, and the RTC offset (empty: the guest's clock starts at the host's).
 * The ACPI keys say 0 where libxl's defaults say 1: xenode's HVM platform has the ACPI PM block
 * but no ACPI tables and no S3/S4 (xl create warns about acpi=), and the firmware should not be
 * told otherwise. */
function hvmPlatformNodes(dom: string, vm: string): [string, string][] {
  return [
    [`${vm}/rtc/timeoffset`, ''],
    [`${dom}/platform/acpi`, '0'],
    [`${dom}/platform/acpi_s3`, '0'],
    [`${dom}/platform/acpi_s4`, '0'],
    [`${dom}/platform/acpi_laptop_slate`, '0'],
    [`${dom}/platform/device-model`, 'qemu_xen'],
  ];
}
