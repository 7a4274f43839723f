// What the device subcommands (network-*, block-*) share: xl's error exits, a xenstore
// connection of their own (xl reads xenstore directly, as libxl does), domain lookup.
import { XsClient } from '../../../../drivers/xenstore/client.js';
import { socketTransport } from '../../../../drivers/xenstore/socket-transport.js';
import type { XlCommandContext } from './registry.js';

/** An xl failure: `message` goes to stderr, `code` is the exit status. */
export class XlExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export async function withXs<T>(fn: (xs: XsClient) => Promise<T>): Promise<T> {
  const xs = new XsClient(await socketTransport());
  try {
    return await fn(xs);
  } finally {
    xs.close();
  }
}

export async function domidOf(ctx: XlCommandContext, dom: string): Promise<number> {
  try {
    return (await ctx.call<{ domid: number }>('domid', { name: dom })).domid;
  } catch (e) {
    if ((e as { code?: string }).code === 'ESRCH') throw new XlExit(1, `${dom} is an invalid domain identifier`);
    throw e;
  }
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

/** XlExit -> its message on stderr and its code; anything else goes to xl's own handler. */
export function wrap(cmd: (argv: string[], ctx: XlCommandContext) => Promise<number>) {
  return async (argv: string[], ctx: XlCommandContext): Promise<number> => {
    try {
      return await cmd(argv, ctx);
    } catch (e) {
      if (e instanceof XlExit) {
        process.stderr.write(`${e.message}\n`);
        return e.code;
      }
      throw e;
    }
  };
}
