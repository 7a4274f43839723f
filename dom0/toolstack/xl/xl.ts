// xl: the command-line toolstack client. Parses arguments and config files here (so errors
// name the file, line and key before anything happens), asks dom0's toolstack over its
// control socket, and prints Xen's formats, messages and exit codes (tools/xl/xl.c's main:
// global options, unique prefixes, -N only where the command implements it).
import { existsSync } from 'node:fs';
import { toolstackSocket } from '../../../common/paths.js';
import { rpcCall, ToolstackUnreachable } from '../rpc.js';
import { attachConsole } from './console-client.js';
import { extraCommands } from './commands/index.js';
import { cmdHelp, extraSpecList, findSpec, fullHelp } from './help.js';
import { XlExit } from './exit.js';
import { switchForeachOpt } from './getopt.js';
import { domidOf } from './commands/common.js';

export { XlExit };

/** -v: each request to the toolstack (libxl's calls, in effect) on stderr; -T: with a timestamp. */
const debug = { verbose: false, timestamps: false };

function call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
  const sock = toolstackSocket();
  if (debug.verbose) {
    const stamp = debug.timestamps ? `${new Date().toISOString().replace('T', ' ').slice(0, 23)} ` : '';
    const shown = JSON.stringify(args, (k, v) => (k === 'spec' ? '<config>' : v));
    process.stderr.write(`${stamp}libxl: debug: toolstack request ${cmd} ${shown}\n`);
  }
  return rpcCall<T>(sock, cmd, args).catch((e: Error) => {
    // Only a socket nobody answers means xenode is down: an ENOENT the toolstack answered
    // with (a missing device, console, file) is that error, reported as such.
    if (e instanceof ToolstackUnreachable) {
      if (!existsSync(sock)) throw new XlExit(1, `xenode is not running (no toolstack at ${sock}): start it with "xenode start"`);
      throw new XlExit(1, `xenode's toolstack does not answer at ${sock} (${e.code}): it has stopped; start it again with "xenode start"`);
    }
    throw e;
  });
}

/** xl's global options: getopt "+vftTN" (they end at the subcommand). */
function globalOptions(argv: string[]): { dryRun: boolean; force: boolean } {
  let dryRun = false;
  let force = false;
  while (argv[0] !== undefined && /^-./.test(argv[0])) {
    const g = argv.shift()!;
    if (g === '--') break;
    if (g === '-h' || g === '--help') throw new XlExit(0, '', helpAll());
    for (const c of g.slice(1)) {
      if (c === 'N') dryRun = true;
      else if (c === 'f') force = true;
      else if (c === 'v') debug.verbose = true;
      else if (c === 'T') debug.timestamps = true;
      else if (c === 't') continue; // progress with CR: xl here prints no progress meters
      else throw new XlExit(1, 'unknown global option');
    }
  }
  return { dryRun, force };
}

function helpAll(): string {
  return fullHelp((name) => name in extraCommands, extraSpecList());
}

export async function xl(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  argv = [...argv];
  const { dryRun, force } = globalOptions(argv);
  const cmd = argv.shift();
  if (cmd === undefined) throw new XlExit(1, '', helpAll());
  const spec = findSpec(cmd);
  // A command registered without a help text (registerSpec) still runs under its exact name
  // and decides about -N itself.
  const handler = spec ? extraCommands[spec.name] : extraCommands[cmd];
  if (handler) {
    if (dryRun && spec && !spec.canDryrun) throw new XlExit(1, 'command does not implement -N (dryrun) option');
    return handler(argv, { call, out, dryRun, force });
  }
  if (cmd === 'help') {
    const topic = argv[0];
    out(topic === undefined || topic === 'help' ? helpAll() : findSpec(topic) && extraCommands[findSpec(topic)!.name] ? cmdHelp(topic) : `command "${topic}" not implemented\n`);
    return 0;
  }
  // Xen's own line; then, for a command Xen has, that this xl does not.
  throw new XlExit(1, spec ? `command not implemented\nxenode's xl does not provide \`xl ${spec.name}' (${spec.desc.split('\n')[0]})` : 'command not implemented');
}

/** xl console [-t type] [-n num] [-e escape] <Domain> (xl_console.c). */
async function consoleMain(argv: string[]): Promise<number> {
  const p = switchForeachOpt(argv, 'n:t:e:', null, 'console', 1);
  const type = p.val('t');
  if (type !== undefined && type !== 'pv' && type !== 'serial' && type !== 'vuart') {
    throw new XlExit(1, 'console type supported are: pv, serial, vuart');
  }
  // -n is atoi()'d, as xl does. One console per domain here (the PV console of a PV guest,
  // the emulated serial line of an HVM guest): another number is refused, not ignored.
  const num = p.val('n') === undefined ? 0 : parseInt(p.val('n')!, 10) || 0;
  if (num !== 0) throw new XlExit(1, `Unable to attach console\n(xenode gives each domain one console, number 0; there is no console ${num})`);
  if (p.val('e') !== undefined) throw new XlExit(1, 'Unable to attach console\n(xenode\'s console client leaves with Ctrl-]; another escape character (-e) is not supported)');
  const dom = p.args[0]!;
  const domid = await domidOf({ call, out: () => {}, dryRun: false }, dom);
  if (type !== undefined && type !== 'vuart') {
    // A PV guest has only its PV console; an HVM guest its serial line and, with PV drivers,
    // its PV console too (hvc0, the toolstack says whether the drivers run).
    const long = await call<{ domid: number; config?: { c_info?: { type?: string } } }[]>('list-long');
    const hvm = long.find((l) => l.domid === domid)?.config?.c_info?.type === 'hvm';
    if (type === 'serial' && !hvm) throw new XlExit(1, 'Unable to attach console\n(a PV guest\'s console here is its PV console: -t pv)');
    if (type === 'pv' && hvm) {
      try {
        return await consoleCmd(dom, type);
      } catch (e) {
        if ((e as { code?: string }).code === 'ENODEV') throw new XlExit(1, `${(e as Error).message}\nUnable to attach console`);
        throw e;
      }
    }
  } else if (type === 'vuart') throw new XlExit(1, 'Unable to attach console\n(vuart consoles are for ARM guests; xenode has none)');
  return consoleCmd(dom, type);
}
extraCommands['console'] = consoleMain;

/** Attach to a domain's console; the toolstack picks the primary one (an HVM guest's serial
 * line, a PV guest's PV console) unless `type` names it. */
export async function consoleCmd(dom: string, type?: string): Promise<number> {
  const { domid, tty } = await call<{ domid: number; tty: string }>('console', { dom, type });
  const session = attachConsole(tty, (rows, cols) => {
    void call('console-resize', { dom: String(domid), rows, cols }).catch(() => {});
  });
  await session.done;
  return 0;
}
