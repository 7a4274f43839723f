// xl's domain lifecycle commands (tools/xl/xl_vmcontrol.c, xl_misc.c): create, config-update,
// destroy, shutdown, reboot, pause, unpause, rename, sysrq. Options, messages and exit codes
// are Xen's; where xenode acts differently the message says what it does instead.
import { loadBuildSpec } from '../config-to-spec.js';
import { switchForeachOpt } from '../getopt.js';
import { consoleCmd } from '../xl.js';
import { cmdHelp } from '../help.js';
import { domidOf, sleep, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';
import { sendTrigger } from './hvm-controls.js';
import type { NamedInfo } from '../format.js';

const code = (e: unknown) => (e as { code?: string }).code;
const msg = (e: unknown) => (e as Error).message;

/** xl create [options] <ConfigFile> [vars]: "AFVcdef:inpq". */
async function create(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(
    argv,
    'AFVcdef:inpq',
    [
      { name: 'defconfig', hasArg: 1, val: 'f' },
      { name: 'dryrun', hasArg: 0, val: 'n' },
      { name: 'ignore-global-affinity-masks', hasArg: 0, val: 'i' },
      { name: 'quiet', hasArg: 0, val: 'q' },
      { name: 'vncviewer', hasArg: 0, val: 'V' },
      { name: 'vncviewer-autopass', hasArg: 0, val: 'A' },
    ],
    'create',
    0,
  );
  const args = [...p.args];
  // As main_create: the first word is the file unless -f named it or it is a key=value.
  let file = p.val('f');
  if (file === undefined && args[0] !== undefined && !args[0].includes('=')) file = args.shift();
  if (file === undefined) throw new XlExit(1, 'Config file not specified.\n', cmdHelp('create'));
  const dry = ctx.dryRun || p.has('n');
  const vnc = p.has('V') || p.has('A');
  if (vnc && !extraCommands['vncviewer']) throw new XlExit(1, 'xl create -V: this xenode has no `xl vncviewer\' to connect to the display with');
  if (!p.has('q')) process.stderr.write(`Parsing config from ${file}\n`);
  const { spec, warnings, dryRun: json } = loadBuildSpec(file, args);
  for (const w of warnings) process.stderr.write(`${w}\n`);
  // -n prints the config; -d (debug) prints it too and goes on, as create_domain does.
  if (dry || p.has('d')) ctx.out(json.endsWith('\n') ? json : json + '\n');
  if (dry) return 0;
  let domid: number;
  try {
    // -e: no one watches the domain for on_poweroff/on_reboot/on_crash (xl's monitoring
    // process is what applies them; here the toolstack does, unless told not to).
    ({ domid } = await ctx.call<{ domid: number }>('create', { spec, paused: p.has('p'), monitor: !p.has('e') }));
  } catch (e) {
    if (e instanceof XlExit) throw e;
    // libxl's messages, then xl's exit status for ERROR_FAIL.
    throw new XlExit(3, msg(e));
  }
  if (vnc) await extraCommands['vncviewer']!(p.has('A') ? ['--autopass', String(domid)] : [String(domid)], ctx);
  if (p.has('c')) return consoleCmd(String(domid));
  if (p.has('F')) return followUntilGone(ctx, spec.name);
  return 0;
}

/** create -F: stay until the domain (under its name, through restarts) is gone. */
async function followUntilGone(ctx: XlCommandContext, name: string): Promise<number> {
  for (;;) {
    try {
      await ctx.call('domid', { name });
    } catch (e) {
      if (code(e) === 'ESRCH') return 0;
      throw e;
    }
    await sleep(500);
  }
}

/** xl config-update <Domain> <ConfigFile> [options] [vars]. */
async function configUpdate(argv: string[], ctx: XlCommandContext): Promise<number> {
  if (argv.length < 1) throw new XlExit(1, 'xl config-update requires a domain argument', cmdHelp('config-update'));
  process.stderr.write('WARNING: xl now has better capability to manage domain configuration, avoid using this command when possible\n');
  const [dom, ...rest] = argv as [string, ...string[]];
  const domid = await domidOf(ctx, dom);
  let file: string | undefined;
  if (rest[0] !== undefined && !rest[0].startsWith('-') && !rest[0].includes('=')) file = rest.shift();
  const p = switchForeachOpt(rest, 'dqf:', [{ name: 'defconfig', hasArg: 1, val: 'f' }], 'config-update', 0);
  file = p.val('f') ?? file;
  if (file === undefined) throw new XlExit(1, 'Config file not specified');
  process.stderr.write(`Parsing config from ${file}\n`);
  const { spec, warnings, dryRun: json } = loadBuildSpec(file, p.args);
  for (const w of warnings) process.stderr.write(`${w}\n`);
  if (ctx.dryRun || p.has('d')) ctx.out(json.endsWith('\n') ? json : json + '\n');
  if (ctx.dryRun) return 0;
  process.stderr.write(`setting dom${domid} configuration\n`);
  try {
    await ctx.call('config-update', { dom: String(domid), spec });
  } catch (e) {
    throw new XlExit(1, `${msg(e)}\nfailed to update configuration`);
  }
  return 0;
}

async function destroy(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'f', null, 'destroy', 1);
  const domid = await domidOf(ctx, p.args[0]!);
  if (domid === 0) {
    throw new XlExit(1, 'Not destroying domain 0; use -f to force.\nThis can only be done when using a disaggregated hardware domain and toolstack.\n' + (p.has('f') ? '(xenode\'s dom0 is its toolstack: it cannot be destroyed, -f or not)\n' : ''));
  }
  try {
    await ctx.call('destroy', { dom: String(domid) });
  } catch (e) {
    throw new XlExit(1, `${msg(e)}\ndestroy failed (rc=-3)`);
  }
  return 0;
}

/** xl shutdown / reboot [-a] [-w[w]] [-F] <Domain>. */
function shutdownOrReboot(reboot: boolean) {
  const what = reboot ? 'reboot' : 'shutdown';
  return async (argv: string[], ctx: XlCommandContext): Promise<number> => {
    const p = switchForeachOpt(argv, 'awF', [{ name: 'all', hasArg: 0, val: 'a' }, { name: 'wait', hasArg: 0, val: 'w' }], what, 0);
    const waits = p.opts.filter(([c]) => c === 'w').length;
    if (p.args.length === 0 && !p.has('a')) throw new XlExit(1, 'You must specify -a or a domain id.\n');
    const domids = p.has('a')
      ? (await ctx.call<NamedInfo[]>('list')).filter((i) => i.domid !== 0).map((i) => i.domid)
      : [await domidOf(ctx, p.args[0]!)];
    for (const domid of domids) {
      process.stderr.write(`${reboot ? 'Rebooting' : 'Shutting down'} domain ${domid}\n`);
      try {
        await ctx.call('shutdown', { dom: String(domid), reboot });
      } catch (e) {
        if (code(e) !== 'ENOPARAVIRT') throw new XlExit(1, `${msg(e)}\n${what} failed (rc=-3)`);
        const event = reboot ? 'reset' : 'power';
        if (p.has('F')) {
          process.stderr.write(`PV control interface not available: sending ACPI ${event} button event.\n`);
          try {
            await sendTrigger(ctx, domid, event);
          } catch (t) {
            throw new XlExit(1, `${(t as XlExit).message}\n${what} failed (rc=-3)`);
          }
          continue;
        }
        throw new XlExit(
          1,
          `PV control interface not available: external graceful ${reboot ? 'reboot' : 'shutdown'} not possible.\nUse "-F" to fallback to ACPI ${event} event.\n${what} failed (rc=-8)`,
        );
      }
    }
    if (waits > 0) {
      process.stderr.write(`Waiting for ${domids.length} domains\n`);
      await Promise.all(
        domids.map(async (domid) => {
          // -w: until it has shut down (or is gone); -ww: until it is gone.
          for (;;) {
            const info = (await ctx.call<NamedInfo[]>('list')).find((i) => i.domid === domid);
            if (!info) return process.stderr.write(`Domain ${domid} has been destroyed\n`);
            if (waits === 1 && (info.shutdown || info.crashed)) return process.stderr.write(`Domain ${domid} has been shut down, reason code ${['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset'].indexOf(info.shutdownReason ?? 'poweroff')}\n`);
            await sleep(200);
          }
        }),
      );
    }
    return 0;
  };
}

function pauseOrUnpause(cmd: 'pause' | 'unpause') {
  return async (argv: string[], ctx: XlCommandContext): Promise<number> => {
    const p = switchForeachOpt(argv, '', null, cmd, 1);
    const domid = await domidOf(ctx, p.args[0]!);
    if (domid === 0) throw new XlExit(1, `libxl: error: libxl_domain.c: Domain 0:${cmd === 'pause' ? 'Pausing' : 'Unpausing'} domain 0 is not possible: it is xenode's dom0`);
    await ctx.call(cmd, { dom: String(domid) });
    return 0;
  };
}

async function rename(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'rename', 2);
  const [dom, name] = p.args as [string, string];
  const domid = await domidOf(ctx, dom);
  try {
    if (domid === 0) throw new Error('libxl: error: libxl_domain.c: Domain 0:Domain-0 keeps its name here');
    await ctx.call('rename', { dom: String(domid), name });
  } catch (e) {
    throw new XlExit(1, `${msg(e)}\nCan't rename domain '${dom}'.`);
  }
  return 0;
}

async function sysrq(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'sysrq', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  const key = p.args[1]!;
  if (key.length !== 1) throw new XlExit(1, 'Invalid sysrq.\n', cmdHelp('sysrq'));
  await ctx.call('sysrq', { dom: String(domid), key });
  return 0;
}

extraCommands['create'] = create;
extraCommands['config-update'] = configUpdate;
extraCommands['destroy'] = destroy;
extraCommands['shutdown'] = shutdownOrReboot(false);
extraCommands['reboot'] = shutdownOrReboot(true);
extraCommands['pause'] = pauseOrUnpause('pause');
extraCommands['unpause'] = pauseOrUnpause('unpause');
extraCommands['rename'] = rename;
extraCommands['sysrq'] = sysrq;
