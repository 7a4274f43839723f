// A bootable busybox root filesystem tree: Debian's statically linked busybox (`busybox-static`)
// with a link for every applet, busybox init's /etc/inittab and the few files a machine needs
// to boot to a login prompt on its console, log root in and get an address by DHCP.
//
// Made for a guest whose kernel has already mounted /proc, /sys, /dev (with /dev/console) and
// maybe /run before init starts, as xenode's does: rcS mounts only what is missing, so the same
// tree also boots where nothing is mounted yet.
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { busyboxFiles } from './busybox-etc.js';

/** Where Debian's busybox-static installs its binary. */
export const BUSYBOX = '/bin/busybox';

export interface BusyboxRootOptions {
  hostname: string;
  /** crypt(3) hash for root's /etc/shadow entry; empty = log in without a password. */
  rootPasswordHash: string;
}

/** True when an ELF executable has no PT_INTERP, i.e. it runs without a dynamic loader. */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const h = Buffer.alloc(64);
    readSync(fd, h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2) return false; // 64-bit ELF only
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

function busyboxRun(args: string[], input?: string): string {
  const r = spawnSync(BUSYBOX, args, { encoding: 'utf8', input });
  if (r.error || r.status !== 0) throw new Error(`busybox ${args[0]}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

/** The SHA-512 crypt hash busybox's own login checks (password read from stdin, not argv). */
export function busyboxPasswordHash(password: string): string {
  return busyboxRun(['mkpasswd', '-m', 'sha512', '-P', '0'], password).trim();
}

/** Checks the host has a static busybox to copy, with a message saying what to install. */
export function checkBusybox(): void {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} not found: install Debian's busybox-static`);
  if (!isStaticElf(BUSYBOX)) throw new Error(`${BUSYBOX} is dynamically linked: install Debian's busybox-static (not busybox)`);
}

/** Fills the empty directory `root` with the busybox system. */
export function buildBusyboxRoot(root: string, o: BusyboxRootOptions): void {
  checkBusybox();
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/init.d', 'etc/network/if-pre-up.d', 'etc/network/if-up.d', 'etc/network/if-down.d', 'etc/network/if-post-down.d', 'proc', 'sys', 'dev', 'run', 'mnt', 'home', 'var/log', 'etc/udhcpc']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  mkdirSync(join(root, 'root'), { mode: 0o700 });
  for (const d of ['tmp', 'var/tmp']) {
    mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, d), 0o1777);
  }
  symlinkSync('/run', join(root, 'var/run'));
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  // `--list-full` names each applet's usual place (bin/sh, sbin/init, usr/bin/wget...).
  for (const applet of busyboxRun(['--list-full']).split('\n').filter(Boolean)) {
    if (applet === 'bin/busybox' || applet === 'linuxrc') continue;
    mkdirSync(dirname(join(root, applet)), { recursive: true });
    symlinkSync('/bin/busybox', join(root, applet));
  }
  for (const f of busyboxFiles(o)) {
    writeFileSync(join(root, f.path), f.text, { mode: f.mode });
    chmodSync(join(root, f.path), f.mode); // not narrowed by the umask
  }
}
