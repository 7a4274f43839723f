// iproute2 from TypeScript: the host-side network plumbing (bridges, veths, namespaces) is done
// with the same `ip` commands an administrator would type, so every step can be read, logged
// and repeated by hand. Only for control paths; no packet ever goes through here.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** Where iproute2's `ip` lives on Debian (and everywhere merged-/usr). */
export const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

export class IpError extends Error {
  constructor(readonly args: string[], readonly stderr: string) {
    super(`ip ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
  }
}

/** Runs `ip ARGS...` and returns its stdout; throws IpError with ip's own message. */
export function ipSync(args: string[]): string {
  try {
    return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new IpError(args, String((e as { stderr?: string }).stderr ?? (e as Error).message));
  }
}

/** The same, without blocking the event loop (dom0 and the guest kernel use this). */
export function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(IP, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new IpError(args, stderr || err.message));
      else resolve(stdout);
    });
  });
}

export function linkExists(name: string, netns?: string): boolean {
  if (!netns) return existsSync(`/sys/class/net/${name}`);
  try {
    ipSync(['-n', netns, 'link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** Linux interface names: 1..15 bytes, no '/', ':' or blanks. */
export function validIfname(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/** The kernel's packet counters of an interface (from sysfs). */
export function linkStats(name: string): { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; rxDropped: number; txDropped: number } {
  const rd = (k: string) => {
    try {
      return Number(readFileSync(`/sys/class/net/${name}/statistics/${k}`, 'utf8').trim());
    } catch {
      return 0;
    }
  };
  return {
    rxPackets: rd('rx_packets'),
    txPackets: rd('tx_packets'),
    rxBytes: rd('rx_bytes'),
    txBytes: rd('tx_bytes'),
    rxDropped: rd('rx_dropped'),
    txDropped: rd('tx_dropped'),
  };
}
