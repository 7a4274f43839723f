// The root filesystem as the kernel command line names it, read the way Linux's
// init/do_mounts.c reads it: root=, rootfstype=, rootflags=, ro / rw, rootwait, rootdelay=.
import { parseCmdline } from '../cmdline.js';

export interface RootParams {
  /** root= as given ("/dev/xvda1", "LABEL=guest", "UUID=...", "xvda", "PARTUUID=..."). */
  root: string;
  /** rootfstype= split on commas; empty: probe. */
  fstypes: string[];
  /** rootflags= split on commas. */
  flags: string[];
  /** `ro` (Linux's default is ro too, but every distribution passes rw or remounts). */
  readonly: boolean;
  /** rootwait / rootdelay=: how long to wait for the device to appear, in ms. */
  waitMs: number;
}

/** null when the command line names no root device: the guest runs the minimal userland. */
export function rootParams(cmdline: string): RootParams | null {
  const p = parseCmdline(cmdline).params;
  const root = p.root?.trim();
  if (!root) return null;
  const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const delay = Number(p.rootdelay);
  return {
    root,
    fstypes: list(p.rootfstype),
    flags: list(p.rootflags),
    // Whichever of ro / rw comes last wins in Linux; parseCmdline keeps both as flags, so ask
    // the raw words.
    readonly: lastOf(cmdline, ['ro', 'rw']) === 'ro',
    waitMs: 'rootwait' in p ? 30_000 : Number.isFinite(delay) && delay > 0 ? Math.min(delay, 300) * 1000 : 0,
  };
}

function lastOf(cmdline: string, words: string[]): string | undefined {
  let last: string | undefined;
  for (const w of cmdline.split(/\s+/)) if (words.includes(w)) last = w;
  return last;
}
