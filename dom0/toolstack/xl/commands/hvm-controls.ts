// xl's HVM controls (tools/xl/xl_misc.c, xl_cdrom.c): trigger, button-press (its deprecated
// alias), cd-insert and cd-eject. Arguments and messages are Xen's; libxl's errors come back
// from the toolstack and are printed as libxl logs them. Where Xen's xl ignores libxl's failure
// and exits 0 (trigger, button-press), this one exits 1: a press nobody can receive is not done.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { cStrto } from '../../../../common/c-strtol.js';
import { switchForeachOpt } from '../getopt.js';
import { domidOf, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

const TRIGGERS = ['power', 'sleep', 'nmi', 'init', 'reset', 's3resume'];

/** libxl_send_trigger through the toolstack; its error as libxl logs it. */
export async function sendTrigger(ctx: XlCommandContext, domid: number, name: string, vcpu = 0): Promise<void> {
  try {
    await ctx.call('trigger', { dom: String(domid), trigger: name, vcpu });
  } catch (e) {
    throw new XlExit(1, `libxl: error: libxl_domain.c: Domain ${domid}:${(e as Error).message}`);
  }
}

/** xl trigger <Domain> <nmi|reset|init|power|sleep|s3resume> [<VCPU>]. */
async function trigger(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'trigger', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  const name = p.args[1]!;
  if (!TRIGGERS.includes(name)) throw new XlExit(1, `Invalid trigger "${name}"`);
  let vcpu = 0;
  const v = p.args[2];
  if (v !== undefined) {
    const n = cStrto(v, 10, false);
    vcpu = Number(BigInt.asIntN(32, n.value));
    if (vcpu === 0 && n.end === 0) process.stderr.write('Invalid vcpuid, using default vcpuid=0.\n\n');
  }
  await sendTrigger(ctx, domid, name, vcpu);
  return 0;
}

/** xl button-press <Domain> <power|sleep>: deprecated for trigger. */
async function buttonPress(argv: string[], ctx: XlCommandContext): Promise<number> {
  process.stderr.write('WARNING: "button-press" is deprecated. Please use "trigger"\n');
  const p = switchForeachOpt(argv, '', null, 'button-press', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  const b = p.args[1]!;
  if (b !== 'power' && b !== 'sleep') throw new XlExit(1, `${b} is an invalid button identifier`);
  await sendTrigger(ctx, domid, b);
  return 0;
}

/** cd_insert(): an image (target) or nothing (eject) in the HVM guest's CD-ROM drive `vdev`. */
async function cdInsert(ctx: XlCommandContext, domid: number, vdev: string, target: string | null): Promise<number> {
  let path: string | null = null;
  if (target !== null && target !== '') {
    // As xl: the backing must exist (stat) before libxl is asked.
    path = resolve(target.replace(/^raw:/, ''));
    try {
      statSync(path);
    } catch {
      throw new XlExit(1, `Cannot stat file: ${target}`);
    }
  }
  // -N (cd-insert and cd-eject are dry-runnable in Xen's table): say what would change.
  if (ctx.dryRun) {
    ctx.out(path === null ? `would eject the disc in ${vdev} of domain ${domid}\n` : `would insert ${path} into ${vdev} of domain ${domid}\n`);
    return 0;
  }
  try {
    await ctx.call('cd-media', { dom: String(domid), vdev, path });
  } catch (e) {
    throw new XlExit(1, `libxl: error: libxl_disk.c: Domain ${domid}:${(e as Error).message}`);
  }
  return 0;
}

async function cdInsertCmd(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'cd-insert', 3);
  const domid = await domidOf(ctx, p.args[0]!);
  return cdInsert(ctx, domid, p.args[1]!, p.args[2]!);
}

async function cdEjectCmd(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'cd-eject', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  return cdInsert(ctx, domid, p.args[1]!, null);
}

extraCommands['trigger'] = trigger;
extraCommands['button-press'] = buttonPress;
extraCommands['cd-insert'] = cdInsertCmd;
extraCommands['cd-eject'] = cdEjectCmd;
