// xl vncviewer [--autopass] <Domain> (libxl_console.c: libxl_vncviewer_exec): reads where the
// guest's VNC server listens from xenstore (console/vnc-listen and vnc-port, as libxl writes
// them) and runs $VNCVIEWER, or `vncviewer`, with host:display. Without a viewer installed it
// prints where to connect instead. --autopass needs the password in xenstore, which xenode
// does not keep there (a guest can read its own console directory): it is refused.
import { spawn, spawnSync } from 'node:child_process';
import { domidOf, readOr, withXs, wrap, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

async function vncviewer(argv: string[], ctx: XlCommandContext): Promise<number> {
  const rest = argv.filter((a) => a !== '-a' && a !== '--autopass');
  if (rest.length !== argv.length) throw new XlExit(1, 'xl vncviewer: --autopass is not supported: xenode does not keep VNC passwords in xenstore');
  if (rest.length !== 1 || rest[0]!.startsWith('-')) throw new XlExit(1, 'Usage: xl vncviewer [--autopass] <Domain>');
  const domid = await domidOf(ctx, rest[0]!);
  const { listen, port } = await withXs(async (xs) => ({
    listen: await readOr(xs, `/local/domain/${domid}/console/vnc-listen`, ''),
    port: await readOr(xs, `/local/domain/${domid}/console/vnc-port`, ''),
  }));
  if (!/^\d+$/.test(port)) throw new XlExit(1, `domain ${domid} has no VNC display (vnc = 0, vga = "none", or not an HVM guest)`);
  const host = listen && listen !== '0.0.0.0' ? listen : '127.0.0.1';
  const target = `${host}:${Number(port) - 5900}`;
  const viewer = process.env.VNCVIEWER || 'vncviewer';
  if (ctx.dryRun || !onPath(viewer)) {
    ctx.out(`${ctx.dryRun ? 'would run' : 'no VNC viewer installed (set $VNCVIEWER or install one, e.g. tigervnc-viewer); connect one to'}: ${ctx.dryRun ? `${viewer} ` : ''}${target} (port ${port})\n`);
    return 0;
  }
  const child = spawn(viewer, [target], { stdio: 'inherit' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

extraCommands['vncviewer'] = wrap(vncviewer);
