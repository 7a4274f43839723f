// xl save, restore, migrate and migrate-receive (tools/xl/xl_saverestore.c, xl_migrate.c) for
// HVM guests on the KVM engine (docs/kvm.md, "Save, restore, migration"). Options and their
// meaning are Xen's. The toolstack does the work; for a migration xl is the relay between the
// toolstack and the other host (`ssh HOST xl migrate-receive`, or the -s command), carrying
// the image and the handshake both ways (migration-relay.ts).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { loadBuildSpec } from '../config-to-spec.js';
import { switchForeachOpt } from '../getopt.js';
import { cmdHelp } from '../help.js';
import type { BuildSpec } from '../../build-spec.js';
import type { SaveStats } from '../../save/image-writer.js';
import { domidOf, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';
import { withRelay } from '../migration-relay.js';

/** What the toolstack answers for a save or a migration (image-writer.ts, domain-transfer.ts). */
type Stats = SaveStats & { downtimeMs?: number; debug?: string[] };

const MiB = 1048576;

function configFrom(file: string | undefined): BuildSpec | null {
  if (file === undefined) return null;
  process.stderr.write(`Parsing config from ${file}\n`);
  const { spec, warnings } = loadBuildSpec(file);
  for (const w of warnings) process.stderr.write(`${w}\n`);
  return spec;
}

const failure = (e: unknown) => (e instanceof XlExit ? e : new XlExit(1, (e as Error).message));

/** xl save [-c] [-p] <Domain> <CheckpointFile> [<ConfigFile>]. */
async function save(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'cp', null, 'save', 2);
  if (p.args.length > 3) throw new XlExit(1, '', cmdHelp('save'));
  const [dom, file, config] = p.args as [string, string, string | undefined];
  const domid = await domidOf(ctx, dom);
  await ctx.call('can-save', { dom: String(domid), what: 'save' }).catch((e) => {
    throw failure(e);
  });
  const spec = configFrom(config);
  const path = resolve(file);
  process.stderr.write(`Saving to ${file} new xl format (xenode image v1)\n`);
  let s: Stats;
  try {
    s = await ctx.call<Stats>('save', { dom: String(domid), path, checkpoint: p.has('c'), leavePaused: p.has('p'), spec });
  } catch (e) {
    throw failure(e);
  }
  process.stderr.write(`Saved ${(s.ramBytes / MiB).toFixed(0)} MiB of RAM in ${(s.bytesSent / MiB).toFixed(1)} MiB (${s.totalMs} ms)\n`);
  return 0;
}

/** xl restore [options] [<ConfigFile>] <CheckpointFile>. */
async function restore(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'FhcpdeVA', [{ name: 'vncviewer', hasArg: 0, val: 'V' }, { name: 'vncviewer-autopass', hasArg: 0, val: 'A' }], 'restore', 1);
  let config: string | undefined;
  let file: string;
  if (p.args.length === 1) file = p.args[0]!;
  else if (p.args.length === 2) [config, file] = p.args as [string, string];
  else throw new XlExit(1, '', cmdHelp('restore'));
  const spec = configFrom(config);
  process.stderr.write(`Loading new save file ${file} (xenode image v1)\n`);
  try {
    const r = await ctx.call<{ domid: number; name: string }>('restore', { path: resolve(file), paused: p.has('p'), monitor: !p.has('e'), spec });
    if (p.has('d')) process.stderr.write(`restored domain ${r.domid} (${r.name})\n`);
  } catch (e) {
    throw new XlExit(1, `xenode cannot restore ${file}: ${(e as Error).message}`);
  }
  return 0;
}

/** xl migrate [options] <Domain> <host>: "FC:s:epD" and --debug. */
async function migrate(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'FC:s:epD', [{ name: 'debug', hasArg: 0, val: '0' }], 'migrate', 2);
  const [dom, host] = p.args as [string, string];
  const domid = await domidOf(ctx, dom);
  await ctx.call('can-save', { dom: String(domid), what: 'migrate' }).catch((e) => {
    throw failure(e);
  });
  if (p.has('p')) throw new XlExit(1, 'xl migrate -p (leave the domain paused on the target) is not supported by xenode');
  if (p.has('D')) throw new XlExit(1, 'xl migrate -D (keep the domain id) is not supported by xenode: the target picks a free id');
  const spec = configFrom(p.val('C'));
  const debug = p.has('0');
  // As xl_migrate.c: -s replaces "ssh"; an empty -s runs <host> itself.
  const receive = `xl migrate-receive${debug ? ' -d' : ''}${p.has('e') ? ' -e' : ''}`;
  const ssh = p.val('s');
  const rune = ssh === undefined ? `ssh ${host} ${receive}` : ssh === '' ? host : `${ssh} ${host} ${receive}`;
  if (debug) process.stderr.write(`migration sender: running: ${rune}\n`);
  const child = spawn('sh', ['-c', rune], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let s: Stats;
  try {
    s = await withRelay(child.stdout!, child.stdin!, (relay) =>
      ctx.call<Stats>('migrate-send', { dom: String(domid), relay, spec, debug }),
    );
  } catch (e) {
    child.kill('SIGTERM');
    throw new XlExit(1, `${(e as Error).message}\nMigration failed, resuming at sender.`);
  }
  for (const l of s.debug ?? []) process.stderr.write(`migration sender: ${l}\n`);
  if (s.note) process.stderr.write(`migration sender: ${s.note}\n`);
  process.stderr.write(
    `migration sender: ${s.live ? `${s.rounds} pre-copy round(s), pages per round ${s.roundPages.join(' ')}` : 'stop-and-copy'}; ` +
      `${(s.bytesSent / MiB).toFixed(1)} MiB sent for ${(s.ramBytes / MiB).toFixed(0)} MiB of RAM; downtime ${s.downtimeMs} ms, total ${s.totalMs} ms\n`,
  );
  process.stderr.write('Migration successful.\n');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  return 0;
}

/** xl migrate-receive (run by the sender through ssh): the image on stdin, answers on stdout. */
async function migrateReceive(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'Fedrp', null, 'migrate-receive', 0);
  process.stderr.write('migration target: Ready to receive domain.\n');
  try {
    const r = await withRelay(process.stdin, process.stdout, (relay) =>
      ctx.call<{ domid: number; name: string }>('migrate-receive', { relay, monitor: !p.has('e'), paused: p.has('p') }),
    );
    process.stderr.write(`migration target: Domain started successsfully (domain ${r.domid}, ${r.name}).\n`);
  } catch (e) {
    throw new XlExit(1, `migration target: ${(e as Error).message}`);
  }
  return 0;
}

// `refused.ts` answers for the guests these cannot move (the toolstack says why per guest).
extraCommands['save'] = save;
extraCommands['restore'] = restore;
extraCommands['migrate'] = migrate;
extraCommands['migrate-receive'] = migrateReceive;
