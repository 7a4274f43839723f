// Where netfront's eth TAPs come from. In a domain, the jailer opened /dev/net/tun a few
// times inside the domain's network namespace before dropping to the guest's unprivileged
// uid (native/jailer.c --tun-fds); the kernel holds them as fds 4.. (XENODE_TUN_FDS=4-35)
// and netfront attaches one per vif with TUNSETIFF: guest root has CAP_NET_ADMIN over its own
// namespace only. An fd, once used, goes with its interface: a domain gets that many vifs
// over its life.
// netfront sees its eth only as a FramePort (net/frame-port.ts); a test without root gives
// it a socketpair through `openPort` and `setLink` instead of a TAP and `ip`.
import { native } from '../../../../native/index.js';
import { ip } from '../../../../net/ip.js';
import { tapPort, type FramePort } from '../../../../net/frame-port.js';

/** What netfront sets on its interface. */
export interface LinkSettings {
  mac?: string;
  mtu?: number;
  up?: boolean;
}

export interface NetTapProvider {
  /** A TAP named `name` with a 12-byte vnet header and `offloads`, where the guest's stack is. */
  create(name: string, offloads: number): { fd: number; name: string };
  /** Gives it up: the interface disappears. */
  destroy(fd: number): void;
  /** `ip` arguments reaching the TAP's namespace (empty: the caller's own). */
  readonly ipNetns: string[];
  /** Instead of create/destroy: the frame port itself (a socketpair in tests). */
  openPort?(name: string): FramePort;
  /** Instead of `ip link set`: how the interface's MAC, MTU and state are set. */
  setLink?(name: string, l: LinkSettings): Promise<void>;
}

/** The eth a provider gives (`name`), as a FramePort. */
export function providerPort(p: NetTapProvider, name: string): FramePort {
  return p.openPort ? p.openPort(name) : tapPort(p.create(name, 0), (fd) => p.destroy(fd));
}

/** Sets the interface's MAC, MTU and state through the provider, or with `ip`. */
export async function providerSetLink(p: NetTapProvider, name: string, l: LinkSettings): Promise<void> {
  if (p.setLink) return p.setLink(name, l);
  const args = [...p.ipNetns, 'link', 'set', 'dev', name];
  if (l.mac) args.push('address', l.mac);
  if (l.mtu !== undefined) args.push('mtu', String(l.mtu));
  if (l.up) args.push('up');
  await ip(args);
}

/** Parses "4-11" (or "4,5,6") into fd numbers. */
export function parseTunFds(spec: string | undefined): number[] {
  if (!spec) return [];
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let fd = a; fd <= b && out.length < 64; fd++) out.push(fd);
  }
  return out;
}

export function jailerTapProvider(spec = process.env.XENODE_TUN_FDS): NetTapProvider {
  const pool = parseTunFds(spec);
  const n = native();
  // Not for the guest's userland: nothing the kernel spawns may inherit them.
  for (const fd of pool) {
    try {
      n.setCloexec(fd, true);
    } catch {
      /* not open: the pool is smaller than announced */
    }
  }
  return {
    ipNetns: [],
    create(name, offloads) {
      const fd = pool.shift();
      if (fd === undefined) throw new Error('no TAP handle left: this domain has used all the vifs its jailer prepared');
      try {
        return n.tapAttach(fd, name, true, offloads);
      } catch (e) {
        pool.unshift(fd); // still unattached: usable next time
        throw e;
      }
    },
    destroy(fd) {
      n.close(fd);
    },
  };
}
