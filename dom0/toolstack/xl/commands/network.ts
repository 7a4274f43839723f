// xl network-attach, network-list, network-detach (tools/xl/xl_vif.c), plus xenode's
// network-stats: PV NICs on running guests.
//
//   xl network-attach <Domain> [key=value]...    (docs/man/xl-network-configuration.5)
//   xl -N network-attach <Domain> <spec>...       prints `vif: {libxl JSON}`, does nothing
//   xl network-list <Domain(s)>                   Xen's columns
//   xl network-detach <Domain> <DevId|mac>
//   xl network-stats [<Domain(s)>]                netback's per-vif counters (xenode)
//
// As libxl, xl reads xenstore itself for what it lists and waits on; the toolstack adds and
// removes the devices, netback and the hotplug script (vif-bridge) do the rest and report
// through hotplug-status.
import { ConfigError } from '../../config/config-error.js';
import { parseMac, parseVifArgs, resolveNicDefaults, vifDryRunJson } from '../../config/vif-spec.js';
import { vifDeviceEntries } from '../../devices/vif.js';
import { awaitHotplug, domidOf, forEachDomain, num, readOr, withXs, wrap, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';
import { switchForeachOpt } from '../getopt.js';
import { registerSpec } from '../help.js';

const HOTPLUG_TIMEOUT_MS = 10_000;

async function vifDevids(ctx: XlCommandContext, domid: number): Promise<number[]> {
  const { devices } = await ctx.call<{ devices: { type: string; devid: number }[] }>('device-list', { dom: String(domid) });
  return devices.filter((d) => d.type === 'vif').map((d) => d.devid).sort((a, b) => a - b);
}

async function networkAttach(argv: string[], ctx: XlCommandContext): Promise<number> {
  argv = switchForeachOpt(argv, '', null, 'network-attach', 1).args; // usage errors: exit 2 and the help, as xl
  const [dom, ...spec] = argv as [string, ...string[]];
  let parsed;
  try {
    parsed = parseVifArgs(spec);
  } catch (e) {
    if (e instanceof ConfigError) throw new XlExit(1, e.message);
    throw e;
  }
  for (const w of parsed.warnings) process.stderr.write(`${w}\n`);
  const nic = parsed.nic;
  if (ctx.dryRun) {
    ctx.out(vifDryRunJson(nic));
    return 0;
  }
  if (nic.backend_domname !== undefined && nic.backend_domname !== '0' && nic.backend_domname !== 'Domain-0') {
    throw new XlExit(1, `backend=${nic.backend_domname}: xenode runs every backend in Domain-0`);
  }
  const domid = await domidOf(ctx, dom);
  const existing = await vifDevids(ctx, domid);
  // libxl__device_nextid: one past the highest devid in use.
  const devid = nic.devid ?? (existing.length ? existing[existing.length - 1]! + 1 : 0);
  let resolved;
  try {
    resolved = resolveNicDefaults(nic, { guestType: 'pv', devid, hotplug: true });
  } catch (e) {
    if (e instanceof ConfigError) throw new XlExit(1, e.message);
    throw e;
  }
  try {
    await ctx.call('device-attach', { dom: String(domid), device: vifDeviceEntries(resolved) });
  } catch (e) {
    throw new XlExit(1, `${(e as Error).message}\nlibxl_device_nic_add failed.`);
  }
  await awaitHotplug(ctx, { domid, type: 'vif', devid, what: `vif ${devid}`, addFn: 'libxl_device_nic_add' }, 'timed out waiting for the hotplug script', HOTPLUG_TIMEOUT_MS);
  return 0;
}

const MAC_BYTES = (mac: string) => (parseMac(mac) ?? '00:00:00:00:00:00');

async function networkList(argv: string[], ctx: XlCommandContext): Promise<number> {
  argv = switchForeachOpt(argv, '', null, 'network-list', 1).args; // usage errors: exit 2 and the help, as xl
  const l = (s: string | number, w: number) => String(s).padEnd(w);
  const r = (s: string | number, w: number) => String(s).padStart(w);
  // printf("%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s\n", ...)
  ctx.out(`${l('Idx', 3)} ${l('BE', 2)} ${l('Mac Addr.', 17)} ${l('handle', 6)} ${l('state', 5)} ${l('evt-ch', 6)} ${r('tx-', 5)}/${l('rx-ring-ref', 5)} ${l('BE-path', 30)}\n`);
  return forEachDomain(ctx, argv, async (xs, domid) => {
    for (const devid of await vifDevids(ctx, domid)) {
      const fe = `/local/domain/${domid}/device/vif/${devid}`;
      const backend = await readOr(xs, `${fe}/backend`, '');
      const m = /^\/local\/domain\/(\d+)\//.exec(backend);
      if (!m) continue; // libxl_device_nic_getinfo fails: the row is skipped
      const mac = MAC_BYTES(await readOr(xs, `${backend}/mac`, await readOr(xs, `${fe}/mac`, '')));
      // printf("%-3d %-2d ", ...); LIBXL_MAC_FMT; printf("%6d %5d %6d %5d/%-11d %-30s\n", ...)
      ctx.out(
        `${l(devid, 3)} ${l(Number(m[1]), 2)} ${mac}${r(devid, 6)} ${r(num(await readOr(xs, `${fe}/state`, '-1')), 5)} ` +
          `${r(num(await readOr(xs, `${fe}/event-channel`, '-1')), 6)} ${r(num(await readOr(xs, `${fe}/tx-ring-ref`, '-1')), 5)}/` +
          `${l(num(await readOr(xs, `${fe}/rx-ring-ref`, '-1')), 11)} ${l(backend, 30)}\n`,
      );
    }
  });
}

async function networkDetach(argv: string[], ctx: XlCommandContext): Promise<number> {
  argv = switchForeachOpt(argv, '', null, 'network-detach', 2).args; // usage errors: exit 2 and the help, as xl
  const [dom, id] = argv as [string, string];
  const domid = await domidOf(ctx, dom);
  const devids = await vifDevids(ctx, domid);
  let devid: number | undefined;
  if (id.includes(':')) {
    const want = parseMac(id);
    await withXs(async (xs) => {
      for (const d of devids) {
        if (want && parseMac(await readOr(xs, `/local/domain/0/backend/vif/${domid}/${d}/mac`, '')) === want) devid = d;
      }
    });
  } else if (/^\d+$/.test(id) && devids.includes(Number(id))) {
    devid = Number(id);
  }
  if (devid === undefined) throw new XlExit(1, `Unknown device ${id}.`);
  if (ctx.dryRun) return 0;
  try {
    await ctx.call('device-detach', { dom: String(domid), type: 'vif', devid });
  } catch (e) {
    throw new XlExit(1, `${(e as Error).message}\nlibxl_device_nic_del failed.`);
  }
  return 0;
}

/** netback's counters, one block per vif: `xl network-stats [Domain...]`. */
async function networkStats(argv: string[], ctx: XlCommandContext): Promise<number> {
  const stats = await ctx.call<Record<string, Record<string, number>>>('device-stats');
  const want = argv.length ? new Set(await Promise.all(argv.map((d) => domidOf(ctx, d)))) : null;
  const keys = Object.keys(stats)
    .filter((k) => k.startsWith('vif/'))
    .filter((k) => !want || want.has(Number(k.split('/')[1])))
    .sort((a, b) => {
      const [, da, ia] = a.split('/').map(Number);
      const [, db, ib] = b.split('/').map(Number);
      return da! - db! || ia! - ib!;
    });
  for (const k of keys) {
    const [, domid, devid] = k.split('/');
    ctx.out(`vif${domid}.${devid} (domain ${domid}, devid ${devid})\n`);
    for (const [name, v] of Object.entries(stats[k]!)) ctx.out(`  ${name.padEnd(18)} ${v}\n`);
  }
  return 0;
}

extraCommands['network-attach'] = wrap(networkAttach);
extraCommands['network-list'] = wrap(networkList);
extraCommands['network-detach'] = wrap(networkDetach);
extraCommands['network-stats'] = wrap(networkStats);
registerSpec({ name: 'network-stats', canDryrun: false, modifies: false, desc: "List netback's per-vif counters (xenode)", usage: '[Domain(s)]' });
