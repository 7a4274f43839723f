// Adding and removing a split device in xenstore, as libxl does (libxl__device_generic_add,
// libxl__initiate_device_generic_remove): both directories with their owners' permissions,
// both ends Initialising; removal asks the backend to close, waits for Closed, then removes
// both directories (which is what makes the drivers let go), and the per-domain and per-type
// directories above them once empty (libxl__xs_path_cleanup): a destroyed domain leaves no
// /local/domain/0/backend/<type>/<domid> behind.
import { XenbusState, parseXenbusState, frontendPath, backendPath } from '../../../drivers/xenstore/xenbus-state.js';

export interface DeviceXs {
  read(path: string): Promise<string>;
  write(path: string, value: string): Promise<void>;
  rm(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  setPerms(path: string, perms: string[]): Promise<void>;
  directory(path: string): Promise<string[]>;
  transaction<T>(fn: (t: Pick<DeviceXs, 'directory' | 'rm'>) => Promise<T>): Promise<T>;
}

export interface DeviceEntries {
  /** xenstore device type: "vif", "vbd", ... */
  type: string;
  devid: number;
  /** Keys for the backend directory (beyond frontend, frontend-id, online, state). */
  backend: Record<string, string>;
  /** Keys for the frontend directory (beyond backend, backend-id, state). */
  frontend: Record<string, string>;
}

export const BACKEND_DOMID = 0;

export async function addDevice(xs: DeviceXs, domid: number, d: DeviceEntries): Promise<void> {
  const fe = frontendPath(domid, d.type, d.devid);
  const be = backendPath(BACKEND_DOMID, d.type, domid, d.devid);
  // The backend dir belongs to dom0 and is readable by the guest; the frontend dir belongs to
  // the guest and is readable by dom0 (libxl's roperm/rwperm for devices).
  await xs.mkdir(be);
  await xs.setPerms(be, [`n${BACKEND_DOMID}`, `r${domid}`]);
  const beKeys = { ...d.backend, frontend: fe, 'frontend-id': String(domid), online: '1', state: String(XenbusState.Initialising) };
  for (const [k, v] of Object.entries(beKeys)) await xs.write(`${be}/${k}`, v);
  await xs.mkdir(fe);
  await xs.setPerms(fe, [`n${domid}`, `r${BACKEND_DOMID}`]);
  const feKeys = { ...d.frontend, backend: be, 'backend-id': String(BACKEND_DOMID), state: String(XenbusState.Initialising) };
  for (const [k, v] of Object.entries(feKeys)) await xs.write(`${fe}/${k}`, v);
  // libxl's record of the device (libxl__device_generic_add), in its dom0-only tree.
  await xs.write(`${libxlDevicePath(domid, d.type, d.devid)}/frontend`, fe);
  await xs.write(`${libxlDevicePath(domid, d.type, d.devid)}/backend`, be);
}

const libxlDevicePath = (domid: number, type: string, devid: number) => `/libxl/${domid}/device/${type}/${devid}`;

/** Detach: ask the backend to close and wait (up to timeoutMs) unless `force`; then remove. */
export async function removeDevice(xs: DeviceXs, domid: number, type: string, devid: number, opts: { force?: boolean; timeoutMs?: number } = {}): Promise<boolean> {
  const fe = frontendPath(domid, type, devid);
  const be = backendPath(BACKEND_DOMID, type, domid, devid);
  let clean = true;
  if (!opts.force) {
    await xs.write(`${be}/online`, '0').catch(() => {});
    await xs.write(`${be}/state`, String(XenbusState.Closing)).catch(() => {});
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    clean = false;
    while (Date.now() < deadline) {
      const state = parseXenbusState(await xs.read(`${be}/state`).catch(() => '6'));
      if (state === XenbusState.Closed) {
        clean = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await xs.rm(fe).catch(() => {});
  await xs.rm(be).catch(() => {});
  await xs.rm(libxlDevicePath(domid, type, devid)).catch(() => {});
  await removeEmptyParents(xs, be, `/local/domain/${BACKEND_DOMID}/backend`);
  await removeEmptyParents(xs, fe, `/local/domain/${domid}/device`);
  return clean;
}

/** Remove the ancestors of `path` below `stop` that have no children left, nearest first. In
 * one transaction: a device added meanwhile under the same parent makes it retry, and stay. */
async function removeEmptyParents(xs: DeviceXs, path: string, stop: string): Promise<void> {
  await xs
    .transaction(async (t) => {
      for (let p = path.slice(0, path.lastIndexOf('/')); p.startsWith(`${stop}/`); p = p.slice(0, p.lastIndexOf('/'))) {
        const children = await t.directory(p).catch(() => null);
        if (children === null) continue; // already gone
        if (children.length > 0) return;
        await t.rm(p);
      }
    })
    .catch(() => {});
}

/** Every device of a domain, by type, as the backend tree lists them. */
export async function listDevices(xs: DeviceXs, domid: number): Promise<{ type: string; devid: number }[]> {
  const out: { type: string; devid: number }[] = [];
  const root = `/local/domain/${BACKEND_DOMID}/backend`;
  const types = await xs.directory(root).catch(() => [] as string[]);
  for (const type of types) {
    for (const id of await xs.directory(`${root}/${type}/${domid}`).catch(() => [] as string[])) {
      if (/^\d+$/.test(id)) out.push({ type, devid: Number(id) });
    }
  }
  return out;
}
