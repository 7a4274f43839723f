// `xl console`: attach the terminal to a guest's console pty (the one xenconsoled wrote to
// console/tty), as xenconsole does. Raw mode, Ctrl-] detaches, window size is passed on.
import { openSync, constants } from 'node:fs';
import tty from 'node:tty';

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
