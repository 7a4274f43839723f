// `xl console`: attach the terminal to a guest's console pty (the one xenconsoled wrote to
// console/tty), as xenconsole does. Raw mode, Ctrl-] detaches, window size is passed on.
import { openSync, constants } from 'node:fs';
import tty from 'node:tty';
import { toolstackSocket } from '../../../common/paths.js';
import { rpcCall, ToolstackError } from '../rpc.js';

const CTRL_RIGHT_BRACKET = 0x1d;

export interface ConsoleSession {
  done: Promise<void>;
}

export function attachConsole(ttyPath: string, onResize: (rows: number, cols: number) => void): ConsoleSession {
  const fd = openSync(ttyPath, constants.O_RDWR | constants.O_NOCTTY);
  const peer = new tty.ReadStream(fd);
  const peerOut = new tty.WriteStream(fd);
  peer.setRawMode(true);
  const stdin = process.stdin;
  const interactive = stdin.isTTY === true;
  if (interactive) stdin.setRawMode(true);
  stdin.resume();

  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let closed = false;
  const detach = () => {
    if (closed) return;
    closed = true;
    if (interactive) stdin.setRawMode(false);
    stdin.pause();
    stdin.off('data', onInput);
    process.stdout.off('resize', resize);
    peer.destroy();
    finish();
  };
  const onInput = (chunk: Buffer) => {
    const cut = chunk.indexOf(CTRL_RIGHT_BRACKET);
    if (cut >= 0) {
      if (cut > 0) peerOut.write(chunk.subarray(0, cut));
      detach();
      return;
    }
    peerOut.write(chunk);
  };
  const resize = () => {
    if (process.stdout.rows && process.stdout.columns) onResize(process.stdout.rows, process.stdout.columns);
  };
  stdin.on('data', onInput);
  stdin.on('end', detach);
  peer.on('data', (b: Buffer) => process.stdout.write(b));
  peer.on('error', detach);
  peer.on('close', detach);
  process.stdout.on('resize', resize);
  resize();
  return { done };
}

/** `xl console [-t pv|serial] [-n num] <Domain>` (and `xl create -c`), start to end: asks the
 * toolstack for the tty and attaches. It calls the toolstack itself so its errors reach the user
 * as they are ("no such domain", "has no serial console"); only a toolstack socket nobody
 * answers means xenode is not running. */
export async function consoleCommand(argv: string[]): Promise<number> {
  let type: string | undefined;
  let num: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^-([tn])(.*)$/.exec(a);
    if (m) {
      const v = m[2] || argv[++i];
      if (v === undefined) throw new ConsoleUsageError(`option -${m[1]} needs a value`);
      if (m[1] === 't') type = v;
      else num = v;
    } else if (a.startsWith('-') && a !== '-') throw new ConsoleUsageError(`unknown option ${a}`);
    else rest.push(a);
  }
  if (rest.length !== 1) throw new ConsoleUsageError('usage: xl console [-t <type>] [-n <number>] <Domain>');
  if (type !== undefined && type !== 'pv' && type !== 'serial') throw new ConsoleUsageError(`console type must be "pv" or "serial", not "${type}"`);
  if (num !== undefined && !/^\d+$/.test(num)) throw new ConsoleUsageError(`console number must be a number, not "${num}"`);
  const ask = <T>(cmd: string, args: Record<string, unknown>) =>
    rpcCall<T>(toolstackSocket(), cmd, args).catch((e: ToolstackError) => {
      // The socket's own connect failure, not an answer of the toolstack.
      if ((e.code === 'ENOENT' || e.code === 'ECONNREFUSED') && e.message.startsWith('connect ')) {
        throw new ToolstackError(e.code, `xenode is not running (no toolstack at ${toolstackSocket()}): start it with "xenode start"`);
      }
      throw e;
    });
  const { domid, tty } = await ask<{ domid: number; tty: string }>('console', { dom: rest[0], type, num: num === undefined ? undefined : Number(num) });
  const session = attachConsole(tty, (rows, cols) => {
    void ask('console-resize', { dom: String(domid), rows, cols }).catch(() => {});
  });
  await session.done;
  return 0;
}

/** A mistake on the command line (xl prints it and exits 1). */
export class ConsoleUsageError extends Error {}
