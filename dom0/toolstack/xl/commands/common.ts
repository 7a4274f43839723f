// What the device subcommands (network-*, block-*) share: xl's error exits, a xenstore
// connection of their own (xl reads xenstore directly, as libxl does), domain lookup.
import { XsClient } from '../../../../drivers/xenstore/client.js';
import { socketTransport } from '../../../../drivers/xenstore/socket-transport.js';
import type { XlCommandContext } from './registry.js';
import { XlExit } from '../exit.js';

export { XlExit };

export async function withXs<T>(fn: (xs: XsClient) => Promise<T>): Promise<T> {
  const xs = new XsClient(await socketTransport());
  try {
    return await fn(xs);
  } finally {
    xs.close();
  }
}

/** find_domain (xl_utils.c); with `rc: false` the message block-attach and block-list print
 * (they call libxl_domain_qualifier_to_domid themselves, without the rc). */
export async function domidOf(ctx: XlCommandContext, dom: string, opts: { rc?: boolean } = {}): Promise<number> {
  try {
    return (await ctx.call<{ domid: number }>('domid', { name: dom })).domid;
  } catch (e) {
    // A name libxl does not know is ERROR_INVAL; an id, not found.
    const rc = opts.rc === false ? '' : ` (rc=${/^\d+$/.test(dom) ? -21 : -6})`;
    if ((e as { code?: string }).code === 'ESRCH') throw new XlExit(1, `${dom} is an invalid domain identifier${rc}`);
    throw e;
  }
}

/** The `*-list` commands' loop over `xl X-list <Domain(s)>`: each domain that resolves gets
 * `fn` (with one xenstore connection for all); one that does not is reported on stderr and
 * makes the exit status 1, as xl does, while the others are still listed. */
export async function forEachDomain(ctx: XlCommandContext, doms: string[], fn: (xs: XsClient, domid: number) => Promise<void>, lookup: { rc?: boolean } = {}): Promise<number> {
  let rc = 0;
  await withXs(async (xs) => {
    for (const dom of doms) {
      let domid: number;
      try {
        domid = await domidOf(ctx, dom, lookup);
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
        rc = 1;
        continue;
      }
      await fn(xs, domid);
    }
  });
  return rc;
}

export async function readOr(xs: XsClient, path: string, dflt: string): Promise<string> {
  try {
    return await xs.read(path);
  } catch {
    return dflt;
  }
}

/** A xenstore number, -1 when absent or not a number (libxl's getinfo does the same). */
export function num(s: string): number {
  return /^-?\d+$/.test(s.trim()) ? Number(s) : -1;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Commands once printed their own XlExit; bin/xl.ts prints every one now (with any help). */
export function wrap(cmd: (argv: string[], ctx: XlCommandContext) => Promise<number>) {
  return cmd;
}

/** libxl's wait for a hot-plugged device: poll its backend's `hotplug-status` (the hotplug
 * script or the backend writes it) until connected or error. On failure the half-made device
 * is removed and xl exits as libxl does; `what` names it in the message ("vif 1", "vbd 51712 (xvde)"). */
export async function awaitHotplug(
  ctx: XlCommandContext,
  dev: { domid: number; type: string; devid: number; what: string; addFn: string },
  timeoutMsg: string,
  timeoutMs = 10_000,
): Promise<void> {
  const be = `/local/domain/0/backend/${dev.type}/${dev.domid}/${dev.devid}`;
  const outcome = await withXs(async (xs) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const st = await readOr(xs, `${be}/hotplug-status`, '');
      if (st === 'connected') return null;
      if (st === 'error') return await readOr(xs, `${be}/hotplug-error`, 'hotplug script failed');
      await sleep(20);
    }
    return timeoutMsg;
  });
  if (outcome === null) return;
  await ctx.call('device-detach', { dom: String(dev.domid), type: dev.type, devid: dev.devid, force: true }).catch(() => {});
  throw new XlExit(1, `libxl: error: libxl_device.c: device ${dev.what}: ${outcome}\n${dev.addFn} failed.`);
}

