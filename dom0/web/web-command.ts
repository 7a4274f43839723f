// `xenode web`: the browser console, in the foreground (Ctrl-C ends it). It is a client of a
// running xenode, as `xl` is: the toolstack's socket for counters, consoles and actions,
// xenstored for domain announcements and display ports. It prints the URL with its token.
//
//   xenode web [--port N] [--listen ADDR] [--bench FILE]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolstackSocket } from '../../common/paths.js';
import { XenstoreLink } from './xenstore-link.js';
import { rpcCall } from '../toolstack/rpc.js';
import type { ToolstackCall } from '../toolstack/domain-counters.js';
import { StatsSampler } from './stats-sampler.js';
import { WsEndpoints } from './ws-endpoints.js';
import { WebServer } from './web-server.js';
import { ROOT } from './static-assets.js';

export const DEFAULT_PORT = 8090;

/** The warning for an address other hosts can reach, or null for loopback. */
export function exposureWarning(host: string): string | null {
  if (host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return null;
  return `xenode web: WARNING: listening on ${host}, not loopback: anyone who can reach it and has the token controls every guest; the traffic is not encrypted`;
}

const USAGE = `usage: xenode web [--port N] [--listen ADDR] [--bench FILE]
  --port N       TCP port (default ${DEFAULT_PORT}; 0 picks a free one)
  --listen ADDR  address to bind (default 127.0.0.1; anything else is reachable from other hosts)
  --bench FILE   the driver comparison JSON to chart (default bench/results/compare-latest.json)
`;

export function parseWebArgs(argv: string[]): { port: number; host: string; benchFile?: string } {
  const o: { port: number; host: string; benchFile?: string } = { port: DEFAULT_PORT, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === '--port') {
      const v = value();
      if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new Error(`--port must be 0..65535, got ${JSON.stringify(v)}`);
      o.port = Number(v);
    } else if (flag === '--listen') o.host = value();
    else if (flag === '--bench') o.benchFile = value();
    else throw new Error(`unknown option ${JSON.stringify(argv[i])}\n${USAGE}`);
  }
  return o;
}

export async function webCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'help' || argv[0] === '--help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const opts = parseWebArgs(argv);
  const call: ToolstackCall = (cmd, args = {}) => rpcCall(toolstackSocket(), cmd, args, 10_000);
  try {
    await call('ping');
  } catch {
    throw new Error(`xenode is not running (no toolstack at ${toolstackSocket()}): start it with "xenode start"`);
  }
  const xs = new XenstoreLink();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const sampler = new StatsSampler(call, xs, version);
  await xs.open();
  await sampler.start();
  const ws = new WsEndpoints(call, xs, sampler);
  const server = new WebServer(opts, call, sampler, ws);
  const url = await server.listen();
  const warning = exposureWarning(opts.host);
  if (warning) process.stderr.write(`${warning}\n`);
  process.stdout.write(`xenode web: the console is at ${url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  server.close();
  ws.close();
  sampler.stop();
  xs.close();
  return 0;
}
