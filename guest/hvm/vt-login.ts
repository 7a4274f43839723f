// Login shells on the consoles a distribution's init puts a getty on: tty1, the PC's screen
// and keyboard (the VGA text console for output, the i8042 keyboard for input), and hvc0, the
// Xen PV console of a guest with PV drivers. Each is /bin/sh -l as a session leader on a pty
// whose master the kernel bridges to that console. The serial console keeps init's shell.
// A shell that exits is started again (as getty respawns), at most RESPAWN_MAX times a minute,
// and never while the domain is shutting down.
import { spawn } from 'node:child_process';
import { native } from '../../native/index.js';
import { connectConsolePty, type ConsolePace } from '../kernel/console-pty.js';
import type { VgaTextConsole } from './drivers/vga-text.js';
import type { I8042Keyboard } from './drivers/i8042-kbd.js';
import type { ConsoleFrontend } from '../kernel/console-frontend.js';

const RESPAWN_MAX = 5;

/** A console a login shell can run on: where its output goes, where its input comes from. */
export interface LoginConsole {
  name: string;
  rows: number;
  cols: number;
  term: string;
  write(b: Uint8Array): void;
  setInput(fn: (b: Uint8Array) => void): void;
  /** A console that can fall behind (hvc0's ring): the shell waits rather than losing output. */
  pace?: ConsolePace;
}

export function startLoginShell(con: LoginConsole, env: Record<string, string>, stopping: () => boolean, printk: (m: string) => void): void {
  const starts: number[] = [];
  const start = () => {
    const now = Date.now();
    while (starts.length && now - starts[0]! > 60_000) starts.shift();
    if (starts.length >= RESPAWN_MAX) {
      printk(`${con.name}: shell respawning too fast; disabled for a minute`);
      setTimeout(start, 60_000).unref();
      return;
    }
    starts.push(now);
    const pty = native().openpty(false);
    try {
      native().setWinsize(pty.master, con.rows, con.cols);
    } catch {
      /* programs assume 80x25 anyway */
    }
    const sh = spawn('/usr/bin/setsid', ['--ctty', '--wait', '/bin/sh', '-l'], {
      stdio: [pty.slave, pty.slave, pty.slave],
      env: { HOME: '/root', TERM: con.term, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      cwd: '/',
    });
    native().close(pty.slave);
    const line = connectConsolePty(pty.master, (b) => con.write(b), con.pace);
    con.setInput(line);
    sh.on('exit', () => {
      line.close();
      try {
        native().close(pty.master);
      } catch {
        /* closed */
      }
      if (!stopping()) start();
    });
  };
  start();
}

export function startVtLogin(
  vt: VgaTextConsole,
  kbd: I8042Keyboard | null,
  env: Record<string, string>,
  stopping: () => boolean,
  printk: (m: string) => void,
): void {
  printk('tty1: login shell on the VGA console');
  startLoginShell({ name: 'tty1', rows: 25, cols: 80, term: 'linux', write: (b) => vt.write(b), setInput: (fn) => kbd && (kbd.onInput = fn) }, env, stopping, printk);
}

/** hvc0: a login shell on the Xen PV console (a guest with PV drivers). */
export function startHvcLogin(hvc: ConsoleFrontend, env: Record<string, string>, stopping: () => boolean, printk: (m: string) => void): void {
  printk('hvc0: login shell on the Xen PV console');
  startLoginShell({ name: 'hvc0', rows: 24, cols: 80, term: 'vt102', write: (b) => hvc.write(b), setInput: (fn) => (hvc.input = fn), pace: hvc }, env, stopping, printk);
}
