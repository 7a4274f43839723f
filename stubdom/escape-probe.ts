// What a device model a guest has subverted would try first, run on request (dom0's fault
// injection, for the confinement tests): each attempt says what the kernel answered. In a
// confined stub domain every one fails; none of them is ever made otherwise.
import { spawnSync } from 'node:child_process';
import { openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface EscapeTargets {
  /** A TCP port listening on the host's 127.0.0.1. */
  tcpPort?: number;
  /** A host file (another guest's disk image, say). */
  path?: string;
  /** A host process to signal. */
  pid?: number;
}

/** 'ok' when the attempt worked, else the error code it got. */
export type EscapeResults = Record<string, string>;

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e);

function attempt(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return code(e);
  }
}

export async function tryEscapes(t: EscapeTargets): Promise<EscapeResults> {
  const r: EscapeResults = {};
  // A shell: fork is refused.
  const sh = spawnSync('/bin/sh', ['-c', 'id'], { timeout: 2000 });
  r.spawnShell = sh.error ? code(sh.error) : `ok (${String(sh.stdout).trim()})`;
  r.readHostShadow = attempt(() => readFileSync('/etc/shadow'));
  if (t.path) r.openHostFile = attempt(() => closeSync(openSync(t.path!, 'r')));
  r.writeOwnCode = attempt(() => writeFileSync(fileURLToPath(import.meta.url), '// changed\n', { flag: 'a' }));
  if (t.pid) r.signalHostProcess = attempt(() => process.kill(t.pid!, 0));
  if (t.tcpPort) {
    r.connectHostLoopback = await new Promise<string>((resolve) => {
      try {
        const s = connect({ host: '127.0.0.1', port: t.tcpPort! });
        s.once('connect', () => (s.destroy(), resolve('ok')));
        s.once('error', (e) => resolve(code(e)));
        setTimeout(() => (s.destroy(), resolve('ETIMEDOUT')), 2000).unref();
      } catch (e) {
        resolve(code(e));
      }
    });
  }
  return r;
}
