// A login shell on tty1, the PC's screen and keyboard, as a distribution's init starts a getty
// there: /bin/sh -l as a session leader on a pty whose master the kernel bridges to the VGA
// text console (output) and the i8042 keyboard (input). The serial console keeps init's shell.
// A shell that exits is started again (as getty respawns), at most RESPAWN_MAX times a minute,
// and never while the domain is shutting down.
import { spawn } from 'node:child_process';
import { native } from '../../native/index.js';
import { connectConsolePty } from '../kernel/console-pty.js';
import type { VgaTextConsole } from './drivers/vga-text.js';
import type { I8042Keyboard } from './drivers/i8042-kbd.js';

const RESPAWN_MAX = 5;

export function startVtLogin(
  vt: VgaTextConsole,
  kbd: I8042Keyboard | null,
  env: Record<string, string>,
  stopping: () => boolean,
  printk: (m: string) => void,
): void {
  const starts: number[] = [];
  const start = () => {
    const now = Date.now();
    while (starts.length && now - starts[0]! > 60_000) starts.shift();
    if (starts.length >= RESPAWN_MAX) {
      printk(`tty1: shell respawning too fast; disabled for a minute`);
      setTimeout(start, 60_000).unref();
      return;
    }
    starts.push(now);
    const pty = native().openpty(false);
    try {
      native().setWinsize(pty.master, 25, 80);
    } catch {
      /* programs assume 80x25 anyway */
    }
    const sh = spawn('/usr/bin/setsid', ['--ctty', '--wait', '/bin/sh', '-l'], {
      stdio: [pty.slave, pty.slave, pty.slave],
      env: { HOME: '/root', TERM: 'linux', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      cwd: '/',
    });
    native().close(pty.slave);
    const input = connectConsolePty(pty.master, (b) => vt.write(b));
    if (kbd) kbd.onInput = input;
    sh.on('exit', () => {
      try {
        native().close(pty.master);
      } catch {
        /* closed */
      }
      if (!stopping()) start();
    });
  };
  printk('tty1: login shell on the VGA console');
  start();
}
