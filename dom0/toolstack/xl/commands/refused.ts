// xl commands whose work xenode cannot do (yet), answered with exactly why and exit 1 rather
// than "command not implemented": suspending and resuming guests (save, restore and migrate
// are in saverestore.ts, for the guests they can move). Also dump-core, which is cheap: the
// toolstack already writes cores for on_crash=coredump-*.
import { resolve } from 'node:path';
import { switchForeachOpt } from '../getopt.js';
import { domidOf, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

async function guestType(ctx: XlCommandContext, domid: number): Promise<string> {
  if (domid === 0) return 'dom0';
  const long = await ctx.call<{ domid: number; config?: { c_info?: { type?: string } } }[]>('list-long');
  return long.find((l) => l.domid === domid)?.config?.c_info?.type ?? 'pv';
}

const WHY: Record<string, string> = {
  pv: 'a PV guest\'s kernel here is a Node program in its own process: its state (heap, timers, open rings) cannot be written out and rebuilt',
  pvh: 'a PV guest\'s kernel here is a Node program in its own process: its state (heap, timers, open rings) cannot be written out and rebuilt',
  hvm: 'suspending to RAM needs the guest\'s cooperation (ACPI S3 or PV drivers), which xenode\'s device models do not offer; `xl save\' writes an HVM guest on the KVM engine to a file instead',
  dom0: 'Domain-0 is xenode itself',
};

/** suspend / resume: refused per guest type, after the arguments are checked as xl does. */
function refusedPerGuest(cmd: string, optstring: string, reqargs: number, what: string) {
  return async (argv: string[], ctx: XlCommandContext): Promise<number> => {
    const p = switchForeachOpt(argv, optstring, null, cmd, reqargs);
    const dom = p.args[0]!;
    const domid = await domidOf(ctx, dom);
    throw new XlExit(1, `xenode cannot ${what} ${dom}: ${WHY[await guestType(ctx, domid)] ?? WHY.pv}.`);
  };
}

async function dumpCore(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'dump-core', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  if (domid === 0) throw new XlExit(1, 'core dump failed (rc=-3)\nDomain-0 is xenode itself: dump its process instead');
  try {
    await ctx.call('dump-core', { dom: String(domid), path: resolve(p.args[1]!) });
  } catch (e) {
    throw new XlExit(1, `${(e as Error).message}\ncore dump failed (rc=-3)`);
  }
  return 0;
}

extraCommands['suspend'] = refusedPerGuest('suspend', '', 1, 'suspend');
extraCommands['resume'] = refusedPerGuest('resume', '', 1, 'resume');
extraCommands['dump-core'] = dumpCore;
