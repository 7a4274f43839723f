// The guest's own init, run from its root filesystem in a pid namespace of its own
// (native/rootboot.c does the namespace work; this is the kernel's side of it).
//
// What the kernel asks of init, and what it learns from it, is what Linux's Xen PV kernel
// does (drivers/xen/manage.c, kernel/reboot.c):
//   xl shutdown / halt  -> orderly_poweroff(): run /sbin/poweroff in the guest
//   xl reboot           -> ctrl_alt_del(): SIGINT to init (ctrlaltdel in inittab, systemd's
//                          ctrl-alt-del.target)
//   init calls reboot(2) -> in a child pid namespace Linux kills init with SIGINT for power-off
//                          and halt, SIGHUP for restart: we read that from its end
//   init dies otherwise  -> "Attempted to kill init!": a panic, which follows on_crash
import { spawn, type ChildProcess } from 'node:child_process';
import { native, type PtyPair } from '../../../native/index.js';

export const ROOTBOOT = '/boot/xenode-rootboot';

export type InitOutcome =
  | { reason: 'poweroff' | 'reboot'; message: string }
  | { reason: 'crash'; message: string };

export interface OwnInitSpec {
  root: string;
  readonly: boolean;
  init: string;
  argv: string[];
  env: Record<string, string>;
  /** Files bound over the guest's /proc (the kernel's views of the domain). */
  procBinds: { source: string; name: string }[];
  /** Size of the guest's /run and /dev/shm tmpfs. */
  runBytes: number;
}

export interface OwnInit {
  pty: PtyPair;
  /** The init's pid in the kernel's pid namespace (once known). */
  pid(): number | null;
  /** xl shutdown: run the image's /sbin/poweroff inside the guest. */
  poweroff(log: (msg: string) => void): void;
  /** xl reboot: ctrl-alt-del. */
  ctrlAltDel(): void;
  /** Run a program of the image inside the guest (its namespaces, root and console); resolves
   * with its exit status. */
  run(argv: string[]): Promise<number>;
}

/** What the exit status of rootboot (init's, 128+signal when killed) means. */
export function ownInitOutcome(status: number): InitOutcome {
  if (status === 128 + 2) return { reason: 'poweroff', message: 'reboot: Power down' };
  if (status === 128 + 1) return { reason: 'reboot', message: 'reboot: Restarting system' };
  if (status === 126) return { reason: 'crash', message: 'Kernel panic - not syncing: could not start init (the reason is above)' };
  if (status === 127) return { reason: 'crash', message: 'Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.' };
  const code = status > 128 ? status - 128 : status << 8;
  return { reason: 'crash', message: `Kernel panic - not syncing: Attempted to kill init! exitcode=0x${code.toString(16).padStart(8, '0')}` };
}

export function startOwnInit(spec: OwnInitSpec, log: (msg: string) => void, onExit: (o: InitOutcome) => void): OwnInit {
  const pty = native().openpty(false);
  const args = ['boot', '--root', spec.root, '--run-size', String(spec.runBytes)];
  if (spec.readonly) args.push('--ro');
  for (const b of spec.procBinds) args.push('--bind', `${b.source}:/proc/${b.name}`);
  for (const [k, v] of Object.entries(spec.env)) args.push('--env', `${k}=${v}`);
  args.push('--', spec.init, ...spec.argv);
  const child: ChildProcess = spawn(ROOTBOOT, args, { stdio: ['ignore', 'pipe', 'pipe', pty.slave], env: {} });
  // The slave lives on as the guest's /dev/console; the kernel keeps only the master.
  native().close(pty.slave);
  let initPid: number | null = null;
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString('utf8');
    const m = /init-pid (\d+)/.exec(out);
    if (m && initPid === null) initPid = Number(m[1]);
  });
  // rootboot's own complaints (a missing /dev in the image, an init that cannot run) are the
  // kernel's messages: on the console.
  let errTail = '';
  child.stderr!.on('data', (b: Buffer) => {
    const lines = (errTail + b.toString('utf8')).split('\n');
    errTail = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) log(l.replace(/^xenode-rootboot: /, ''));
  });
  child.on('exit', (code, signal) => {
    if (errTail.trim()) log(errTail);
    onExit(ownInitOutcome(signal ? 128 : (code ?? 127)));
  });
  const enter = (argv: string[]): Promise<{ code: number; err: string }> =>
    new Promise((resolve) => {
      if (initPid === null) return resolve({ code: 126, err: 'init has not started' });
      const p = spawn(ROOTBOOT, ['enter', '--pid', String(initPid), '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
      p.on('exit', (code, signal) => resolve({ code: signal ? 128 : (code ?? 126), err: err.trim().replace(/^xenode-rootboot: /, '') }));
    });
  return {
    pty,
    pid: () => initPid,
    poweroff(logp) {
      // orderly_poweroff(false): the guest's own poweroff program does it its own way
      // (systemctl, telinit 0, busybox's signal to init).
      void enter(['/sbin/poweroff']).then(({ code, err }) => {
        if (code !== 0) logp(`Failed to start orderly shutdown: /sbin/poweroff ${code === 126 ? `could not run (${err})` : `exited with ${code}`}`);
      });
    },
    run: async (argv) => (await enter(argv)).code,
    ctrlAltDel() {
      if (initPid !== null) {
        try {
          process.kill(initPid, 'SIGINT');
        } catch {
          /* gone */
        }
      }
    },
  };
}
