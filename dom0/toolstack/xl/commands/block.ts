// xl block-attach, block-list, block-detach (tools/xl/xl_block.c): hot-plug PV disks into a
// running guest, list them with Xen's columns, and unplug them.
//
//   xl block-attach <Domain> <disk-spec-component(s)>...   (docs/man/xl-disk-configuration.5)
//   xl -N block-attach <Domain> <spec>                      prints `disk: {libxl JSON}`, does nothing
//   xl block-list <Domain(s)>
//   xl block-detach <Domain> <DevId>                        DevId: a vdev (xvde) or its number
//
// As libxl, xl reads xenstore itself for what it lists and waits on: the toolstack only adds
// and removes the devices. A dry run contacts nothing: it parses and prints.
import { diskDryRunJson, parseDiskSpec, validateDiskVdev } from '../../config/disk-spec.js';
import { parseVdev } from '../../../../common/vdev-number.js';
import { diskDeviceEntries } from '../../devices/vbd.js';
import { awaitHotplug, domidOf, forEachDomain, num, readOr, wrap, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';
import { switchForeachOpt } from '../getopt.js';

async function blockAttach(argv: string[], ctx: XlCommandContext): Promise<number> {
  argv = switchForeachOpt(argv, '', null, 'block-attach', 2).args; // usage errors: exit 2 and the help, as xl
  const [dom, ...spec] = argv as [string, ...string[]];
  const disk = parseDiskSpec(spec);
  if (ctx.dryRun) {
    ctx.out(diskDryRunJson(disk));
    return 0;
  }
  const domid = await domidOf(ctx, dom, { rc: false });
  const devid = validateDiskVdev(disk);
  await ctx.call('device-attach', { dom: String(domid), device: diskDeviceEntries(disk, devid) });
  // libxl waits for the hotplug script; here blkback plays its part and says how it went.
  await awaitHotplug(ctx, { domid, type: 'vbd', devid, what: `vbd ${devid} (${disk.vdev})`, addFn: 'libxl_device_disk_add' }, 'timed out waiting for the backend (blkback) to open the disk');
  return 0;
}

function row(devid: number, be: number, handle: number, state: number, evtch: number, rref: number, path: string): string {
  const l = (v: string | number, w: number) => String(v).padEnd(w);
  return `${l(devid, 5)} ${l(be, 3)} ${l(handle, 6)} ${l(state, 5)} ${l(evtch, 6)} ${l(rref, 8)} ${l(path, 30)}\n`;
}


async function blockList(argv: string[], ctx: XlCommandContext): Promise<number> {
  argv = switchForeachOpt(argv, '', null, 'block-list', 1).args; // usage errors: exit 2 and the help, as xl
  ctx.out(`${'Vdev'.padEnd(5)} ${'BE'.padEnd(3)} ${'handle'.padEnd(6)} ${'state'.padEnd(5)} ${'evt-ch'.padEnd(6)} ${'ring-ref'.padEnd(8)} ${'BE-path'.padEnd(30)}\n`);
  return forEachDomain(ctx, argv, async (xs, domid) => {
    const fe = `/local/domain/${domid}/device/vbd`;
    const ids = (await xs.directory(fe).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => a - b);
    for (const devid of ids) {
      const dir = `${fe}/${devid}`;
      const backend = await readOr(xs, `${dir}/backend`, '');
      const m = /^\/local\/domain\/(\d+)\//.exec(backend);
      if (!m) continue; // libxl_device_disk_getinfo fails: the row is skipped
      ctx.out(
        row(
          devid,
          Number(m[1]),
          domid,
          num(await readOr(xs, `${dir}/state`, '-1')),
          num(await readOr(xs, `${dir}/event-channel`, '-1')),
          num(await readOr(xs, `${dir}/ring-ref`, '-1')),
          backend,
        ),
      );
    }
  }, { rc: false });
}

async function blockDetach(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'f', [{ name: 'force', hasArg: 0, val: 'f' }], 'block-detach', 2);
  const force = p.has('f'); // -f: remove without waiting for the guest to let go
  const [dom, id] = p.args as [string, string];
  const domid = await domidOf(ctx, dom);
  const devid = parseVdev(id)?.devid;
  const { devices } = await ctx.call<{ devices: { type: string; devid: number }[] }>('device-list', { dom: String(domid) });
  if (devid === undefined || !devices.some((d) => d.type === 'vbd' && d.devid === devid)) {
    throw new XlExit(1, `Error: Device ${id} not connected.`);
  }
  if (ctx.dryRun) return 0;
  try {
    await ctx.call('device-detach', { dom: String(domid), type: 'vbd', devid, force });
  } catch (e) {
    throw new XlExit(1, `${(e as Error).message}\nlibxl_device_disk_${force ? 'destroy' : 'safe_remove'} failed.`);
  }
  return 0;
}

extraCommands['block-attach'] = wrap(blockAttach);
extraCommands['block-list'] = wrap(blockList);
extraCommands['block-detach'] = wrap(blockDetach);
