// A Debian root filesystem tree from Debian's package repository (`xenode mkimage --from
// debian`): debootstrap into a cache outside the checkout, configured for xenode's guests once
// per (suite, init, network, package list), then copied for each image, which gets its own
// name, root password and machine id. The first image of a kind takes as long as debootstrap
// (a minute or two); the next ones take the copy and mkfs (seconds).
//
// The mirror is the host's own (its apt configuration), so images come from wherever this
// machine already gets its packages.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debianMirror, hostAptSources, hostSuite } from './apt-sources.js';
import { type DebianInit, type DebianNetwork, TREE_CONFIG_VERSION, configureTree } from './debian-config.js';

export interface DebianOptions {
  suite?: string;
  init: DebianInit;
  network: DebianNetwork;
  /** Extra packages (Debian names). */
  packages: string[];
  /** Overrides the host's mirror (a URI as in sources.list). */
  mirror?: string;
}

export function cacheDir(): string {
  return process.env.XENODE_CACHE_DIR ?? '/var/cache/xenode';
}

/** Debian package names: lowercase letters, digits, + - . (Debian policy 5.6.1). */
export function parsePackages(s: string): string[] {
  const list = s.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of list) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new Error(`"${p}" is not a Debian package name`);
  return list;
}

/** The packages debootstrap adds to its default set for an init and a network choice. */
function includes(o: DebianOptions): { include: string[]; exclude: string[] } {
  const include = ['ifupdown', 'isc-dhcp-client', ...o.packages];
  const exclude: string[] = [];
  if (o.init === 'sysvinit') {
    include.push('sysvinit-core');
    exclude.push('systemd-sysv'); // `init` depends on systemd-sysv | sysvinit-core: take the second
  }
  return { include: [...new Set(include)].sort(), exclude };
}

/** Where a configured tree of this kind is cached: DIR/root, with DIR/built.json once complete. */
export function cacheEntry(suite: string, o: DebianOptions): string {
  const { include, exclude } = includes(o);
  const key = createHash('sha256').update(JSON.stringify({ include, exclude, config: TREE_CONFIG_VERSION })).digest('hex').slice(0, 12);
  return join(cacheDir(), 'debian', `${suite}-${o.init}-${o.network}-${key}`);
}

/** The suite and mirror, or a clear error when the host's apt names no Debian archive. */
export function resolveSource(o: DebianOptions): { suite: string; mirror: string } {
  const host = hostSuite();
  const suite = o.suite ?? host;
  if (!suite) throw new Error('the host has no VERSION_CODENAME in /etc/os-release: name a suite (--from debian:bookworm)');
  if (!/^[a-z]+$/.test(suite)) throw new Error(`"${suite}" is not a Debian suite name (bookworm, trixie, ...)`);
  if (o.mirror) return { suite, mirror: o.mirror.replace(/\/+$/, '') };
  const m = debianMirror(hostAptSources(), host);
  if (!m) throw new Error('no Debian archive (a "deb" source with main for a release suite) in /etc/apt/sources.list or /etc/apt/sources.list.d: add one, or give --mirror URI');
  return { suite, mirror: m.uri };
}

/** Fails clearly, before debootstrap starts, when the repository cannot be reached. */
export function checkRepository(mirror: string, suite: string): void {
  const url = `${mirror}/dists/${suite}/Release`;
  // wget, as debootstrap itself uses, so the same proxy settings apply.
  const r = spawnSync('wget', ['-q', '--spider', '-T', '15', '-t', '1', url], { encoding: 'utf8' });
  if (r.error) throw new Error(`wget: ${r.error.message} (install Debian's debootstrap, which needs wget)`);
  if (r.status !== 0) throw new Error(`cannot reach the Debian repository: ${url} (wget exit ${r.status}); check the host's network or apt sources`);
}

/** Checks that debootstrap can run: root and the tool installed. */
export function checkDebootstrap(): void {
  if (process.getuid?.() !== 0) throw new Error('--from debian needs root (debootstrap chroots, makes device nodes and files owned by many users)');
  if (!['/usr/sbin/debootstrap', '/sbin/debootstrap'].some((p) => existsSync(p))) throw new Error("debootstrap not found: install Debian's debootstrap");
}

/** The configured tree for `o`, from the cache or built now (logging progress to `log`). */
export function debianTree(o: DebianOptions, log: (s: string) => void): { tree: string; cached: boolean } {
  checkDebootstrap();
  const { suite, mirror } = resolveSource(o);
  const entry = cacheEntry(suite, o);
  const tree = join(entry, 'root');
  if (existsSync(join(entry, 'built.json'))) return { tree, cached: true };
  checkRepository(mirror, suite);
  const partial = `${entry}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const { include, exclude } = includes(o);
  const args = [`--include=${include.join(',')}`];
  if (exclude.length) args.push(`--exclude=${exclude.join(',')}`);
  args.push(suite, partial, mirror);
  log(`debootstrap ${args.join(' ')} (once; cached in ${entry})`);
  try {
    const r = spawnSync('debootstrap', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error || r.status !== 0) {
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
      throw new Error(`debootstrap failed (exit ${r.status}): ${r.error?.message ?? out}`);
    }
    configureTree(partial, o.init, o.network);
    rmSync(entry, { recursive: true, force: true });
    mkdirSync(entry, { recursive: true });
    renameSync(partial, tree);
    writeFileSync(join(entry, 'built.json'), `${JSON.stringify({ suite, init: o.init, network: o.network, packages: o.packages, mirror, built: new Date().toISOString() })}\n`);
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
  return { tree, cached: false };
}

/**
 * Runs `fn` on a writable view of the cached tree: an overlay mount whose changes (the image's
 * own hostname, password, machine id) land in a scratch directory, so the cache stays as built
 * and no 200 MB copy is made for each image (copying took longer than making the filesystem).
 */
export function withOverlay<T>(tree: string, fn: (view: string) => T): T {
  const work = join(cacheDir(), `work-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  for (const d of ['upper', 'work', 'view']) mkdirSync(join(work, d), { recursive: true });
  const view = join(work, 'view');
  const opts = `lowerdir=${tree},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')}`;
  const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', opts, view], { encoding: 'utf8' });
  if (m.status !== 0) {
    rmSync(work, { recursive: true, force: true });
    throw new Error(`could not mount an overlay on the cached tree: ${(m.stderr || m.error?.message || '').trim()}`);
  }
  try {
    return fn(view);
  } finally {
    spawnSync('umount', [view]);
    rmSync(work, { recursive: true, force: true });
  }
}
