// Disk specifications (docs/man/xl-disk-configuration.5), read the way libxlu's flex scanner
// (tools/libs/util/libxlu_disk_l.l) and xlu_disk_parse() read them, into libxl_device_disk's fields.
//
// The scanner is reproduced rule for rule: at each point every rule is tried, the longest match
// wins (a rule's trailing context `r/s` counts towards its length, which is how the deprecated
// prefixes `phy:` etc. beat the positional rule), and ties go to the earlier rule (so a bare
// `cdrom` is the flag, not a target). Positional parameters fill target, format, vdev, access in
// that order; `target=` swallows the rest of the string.
//
// What Xen's parser does NOT do, and neither do we here: it sets no backend for `phy:`/`file:`
// (those prefixes are ignored; libxl picks the backend later), does not check the vdev name (libxl
// does, at attach: see validateDiskVdev), and does not prepend /dev to relative targets.
// Exotic options (COLO replication, virtio specification, grant_usage) parse but are refused
// with "not supported by xenode".

import { COMMAND_LINE, ConfigError, type SourcePos } from './config-error.js';
import { defbool, LibxlMap, libxlJsonText } from './libxl-json.js';
import { parseVdev } from '../../../common/vdev-number.js';

/** libxl_disk_format names as libxl prints them. */
export type DiskFormat = 'unknown' | 'qcow' | 'qcow2' | 'vhd' | 'raw' | 'empty' | 'qed';
/** libxl_disk_backend names as libxl prints them. */
export type DiskBackend = 'unknown' | 'phy' | 'tap' | 'qdisk' | 'standalone';
export type DiskSpecification = 'unknown' | 'xen' | 'virtio';

/** The fields of libxl_device_disk that xlu_disk_parse() fills, under libxl's names. */
export interface LibxlDeviceDisk {
  backend_domname?: string;
  /** Target path; "" for an empty cdrom given as `,hdc:cdrom,r`; undefined when never given. */
  pdev_path?: string;
  vdev: string;
  backend: DiskBackend;
  format: DiskFormat;
  script?: string;
  removable: 0 | 1;
  readwrite: 0 | 1;
  is_cdrom: 0 | 1;
  direct_io_safe: boolean;
  /** libxl_defbool: undefined = default. */
  discard_enable?: boolean;
  specification: DiskSpecification;
  trusted?: boolean;
}

interface Draft extends Omit<LibxlDeviceDisk, 'vdev'> {
  vdev?: string;
}

interface Ctx {
  spec: string;
  disk: Draft;
  hadDeprPrefix: boolean;
  accessSet: boolean;
  errors: string[];
}

const UNSUPPORTED = 'is not supported by xenode';

function err(ctx: Ctx, near: string | undefined, message: string): void {
  ctx.errors.push(near === undefined ? message : `${message}: near \`${near}'`);
}

/** STRIP(','): drop one trailing comma. */
function strip(t: string): string {
  return t.endsWith(',') ? t.slice(0, -1) : t;
}

/** FROMEQUALS: the text after the first '='. */
function fromEquals(t: string): string {
  return t.slice(t.indexOf('=') + 1);
}

/** savestring(): a non-empty value may not be given twice; an empty one may be overwritten. */
function save(ctx: Ctx, what: string, field: 'pdev_path' | 'vdev' | 'script' | 'backend_domname', value: string): void {
  const cur = ctx.disk[field];
  if (cur !== undefined && cur !== '') {
    err(ctx, value, `${what} respecified`);
    return;
  }
  ctx.disk[field] = value;
}

/** DSET(): an enum may be set again only to the same value. */
function dset<K extends 'format' | 'backend' | 'specification'>(ctx: Ctx, member: K, value: Draft[K], near: string): void {
  const cur = ctx.disk[member];
  if (cur !== 'unknown' && cur !== value) err(ctx, near, `${member} respecified`);
  else ctx.disk[member] = value;
}

function setFormat(ctx: Ctx, s: string): void {
  const map: Record<string, DiskFormat> = { '': 'raw', raw: 'raw', qcow: 'qcow', qcow2: 'qcow2', vhd: 'vhd', empty: 'empty', qed: 'qed' };
  const f = map[s];
  if (f === undefined) err(ctx, s, 'unknown value for format');
  else dset(ctx, 'format', f, s);
}

function setAccess(ctx: Ctx, s: string): void {
  if (s === 'r' || s === 'ro') ctx.disk.readwrite = 0;
  else if (s === 'rw' || s === 'w' || s === '') ctx.disk.readwrite = 1;
  else err(ctx, s, 'unknown value for access');
}

function setBackendType(ctx: Ctx, s: string): void {
  if (s === 'phy' || s === 'tap' || s === 'qdisk' || s === 'standalone') dset(ctx, 'backend', s, s);
  else err(ctx, s, 'unknown value for backendtype');
}

function setSpecification(ctx: Ctx, s: string): void {
  if (s === 'xen') dset(ctx, 'specification', 'xen', s);
  else if (s === 'virtio') err(ctx, s, `specification=virtio ${UNSUPPORTED}`);
  else err(ctx, s, 'unknown value for specification');
}

/** vdev_and_devtype(): `<vdev>:<devtype>`, the deprecated way to say cdrom. */
function vdevAndDevtype(ctx: Ctx, s: string): boolean {
  const colon = s.lastIndexOf(':');
  if (colon < 0) return false;
  save(ctx, 'vdev', 'vdev', s.slice(0, colon));
  const type = s.slice(colon + 1);
  if (type === 'cdrom') ctx.disk.is_cdrom = 1;
  else if (type === 'disk') ctx.disk.is_cdrom = 0;
  else err(ctx, type, 'unknown deprecated type');
  return true;
}

function positional(ctx: Ctx, text: string): boolean {
  const t = strip(text);
  const d = ctx.disk;
  if (ctx.errors.length) {
    // libxlu: previous errors may just lead to subsequent ones.
  } else if (d.pdev_path === undefined) {
    save(ctx, 'target', 'pdev_path', t);
  } else if (!ctx.hadDeprPrefix && d.format === 'unknown') {
    if (d.pdev_path === '' && vdevAndDevtype(ctx, t)) d.format = 'empty';
    else setFormat(ctx, t);
  } else if (d.vdev === undefined) {
    if (!vdevAndDevtype(ctx, t)) save(ctx, 'vdev', 'vdev', t);
  } else if (!ctx.accessSet) {
    ctx.accessSet = true;
    setAccess(ctx, t);
  } else {
    err(ctx, t, 'too many positional parameters');
    return false;
  }
  return true;
}

/** A scanner rule: `re` is what it consumes, `trail` its flex trailing context. Returns false to stop. */
interface Rule {
  re: RegExp;
  trail?: RegExp;
  act: (ctx: Ctx, text: string) => boolean | void;
}

const kv = (name: string, act: (ctx: Ctx, value: string, text: string) => void): Rule => ({
  re: new RegExp(`${name}=[^,]*,?`, 'y'),
  act: (ctx, t) => act(ctx, fromEquals(strip(t)), t),
});
const flag = (name: string, act: (ctx: Ctx) => void): Rule => ({ re: new RegExp(`${name},?`, 'y'), act: (ctx) => act(ctx) });
const refuse = (what: string) => (ctx: Ctx, _v: string, t: string) => err(ctx, strip(t), `${what} ${UNSUPPORTED}`);
const prefix = (re: string, act: (ctx: Ctx, text: string) => void): Rule => ({
  re: new RegExp(re, 'y'), trail: /[^\n]*/y,
  act: (ctx, t) => { ctx.hadDeprPrefix = true; act(ctx, t); },
});

const RULES: Rule[] = [
  { re: /[ \t\n]+/y, trail: /(?:[^ \t\n][^\n]*)?/y, act: () => {} },
  kv('format', (ctx, v) => setFormat(ctx, v)),
  flag('cdrom', (ctx) => { ctx.disk.is_cdrom = 1; }),
  flag('devtype=cdrom', (ctx) => { ctx.disk.is_cdrom = 1; }),
  flag('devtype=disk', (ctx) => { ctx.disk.is_cdrom = 0; }),
  { re: /devtype=[^,]*,?/y, act: (ctx, t) => err(ctx, t, 'unknown value for type') },
  kv('access', (ctx, v) => setAccess(ctx, v)),
  kv('backend', (ctx, v) => save(ctx, 'backend', 'backend_domname', v)),
  kv('backendtype', (ctx, v) => setBackendType(ctx, v)),
  kv('specification', (ctx, v) => setSpecification(ctx, v)),
  kv('vdev', (ctx, v) => save(ctx, 'vdev', 'vdev', v)),
  kv('script', (ctx, v) => save(ctx, 'script', 'script', v)),
  flag('direct-io-safe', (ctx) => { ctx.disk.direct_io_safe = true; }),
  flag('discard', (ctx) => { ctx.disk.discard_enable = true; }),
  flag('no-discard', (ctx) => { ctx.disk.discard_enable = false; }),
  { re: /colo,?/y, act: (ctx, t) => err(ctx, strip(t), `COLO disk replication ${UNSUPPORTED}`) },
  { re: /no-colo,?/y, act: () => {} },
  kv('colo-host', refuse('colo-host (COLO)')),
  kv('colo-port', refuse('colo-port (COLO)')),
  kv('colo-export', refuse('colo-export (COLO)')),
  kv('active-disk', refuse('active-disk (COLO)')),
  kv('hidden-disk', refuse('hidden-disk (COLO)')),
  flag('trusted', (ctx) => { ctx.disk.trusted = true; }),
  flag('untrusted', (ctx) => { ctx.disk.trusted = false; }),
  { re: /grant_usage=[01],?/y, act: (ctx, t) => err(ctx, strip(t), `grant_usage (virtio only) ${UNSUPPORTED}`) },
  { re: /target=[^\n]*/y, act: (ctx, t) => save(ctx, 'target', 'pdev_path', fromEquals(strip(t))) },
  { re: /[a-z][-a-z0-9]*=[^,],?/y, act: (ctx, t) => err(ctx, t, 'unknown parameter') },
  prefix('(?:raw|qcow2?|vhd):', (ctx, t) => setFormat(ctx, t.slice(0, -1))),
  prefix('(?:iscsi|e?nbd|drbd):', (ctx, t) => save(ctx, 'script', 'script', `block-${t.slice(0, -1)}`)),
  prefix('tapdisk:', () => {}),
  prefix('tap2?:', () => {}),
  prefix('aio:', () => {}),
  prefix('ioemu:', () => {}),
  prefix('file:', () => {}),
  prefix('phy:', () => {}),
  {
    re: /[a-z][a-z0-9]*:/y, trail: /(?:[^a-z0-9\n][^\n]*)?/y,
    act: (ctx, t) => { err(ctx, t, 'unknown deprecated disk prefix'); return false; },
  },
  { re: /[^=,\n]*,|[^=,\n]+/y, act: (ctx, t) => positional(ctx, t) },
];

function matchAt(rule: Rule, s: string, at: number): { len: number; total: number } | undefined {
  rule.re.lastIndex = at;
  const m = rule.re.exec(s);
  if (!m) return undefined;
  let total = m[0].length;
  if (rule.trail) {
    rule.trail.lastIndex = at + m[0].length;
    total += rule.trail.exec(s)?.[0].length ?? 0;
  }
  return { len: m[0].length, total };
}

function scan(ctx: Ctx, s: string): void {
  let at = 0;
  while (at < s.length) {
    let best: { rule: Rule; len: number; total: number } | undefined;
    for (const rule of RULES) {
      const m = matchAt(rule, s, at);
      if (m && m.total > 0 && (!best || m.total > best.total)) best = { rule, ...m };
    }
    if (!best) {
      err(ctx, s.slice(at), 'bad disk syntax');
      return;
    }
    const text = s.slice(at, at + best.len);
    at += best.len;
    if (best.rule.act(ctx, text) === false) return;
  }
}

/**
 * Parses one disk spec, or several that together describe one disk (`xl block-attach` takes the
 * spec split over several arguments). Throws ConfigError naming `where` (file, line, key) and
 * quoting the spec.
 */
export function parseDiskSpec(specs: string | readonly string[], where: SourcePos = { ...COMMAND_LINE, key: 'disk' }): LibxlDeviceDisk {
  const list = typeof specs === 'string' ? [specs] : specs;
  const disk: Draft = {
    backend: 'unknown', format: 'unknown', removable: 0, readwrite: 1, is_cdrom: 0,
    direct_io_safe: false, specification: 'unknown',
  };
  const problems: string[] = [];
  const quoted = list.map((s) => `\`${s}'`).join(' ');
  for (const spec of list) {
    const ctx: Ctx = { spec, disk, hadDeprPrefix: false, accessSet: false, errors: [] };
    scan(ctx, spec);
    problems.push(...ctx.errors);
    if (problems.length) break;
  }
  if (!problems.length) {
    if (disk.format === 'unknown') disk.format = 'raw';
    if (disk.is_cdrom) {
      disk.removable = 1;
      disk.readwrite = 0;
      if (!disk.pdev_path) disk.format = 'empty';
    }
    if (disk.vdev === undefined) problems.push('no vdev specified');
    else if (disk.pdev_path === undefined && !disk.removable) problems.push('no target specified (and device not removable)');
  }
  if (problems.length) {
    ConfigError.throwIfAny(problems.map((p) => new ConfigError(where, `disk specification ${quoted}: ${p}`)));
  }
  return disk as LibxlDeviceDisk;
}

/**
 * libxl's check at attach time: the vdev must name a disk it can number. Returns the device number
 * (the xenstore devid) or throws ConfigError.
 */
export function validateDiskVdev(disk: LibxlDeviceDisk, where: SourcePos = { ...COMMAND_LINE, key: 'disk' }): number {
  const info = parseVdev(disk.vdev);
  if (!info) {
    throw new ConfigError(where, `invalid or unsupported virtual disk identifier \`${disk.vdev}' (use xvdX, hdX, sdX or dNpN)`);
  }
  return info.devid;
}

/** libxl_device_disk as libxl_device_disk_to_json() prints it: only fields off their defaults, in IDL order. */
export function diskToLibxlJson(d: LibxlDeviceDisk): LibxlMap {
  return new LibxlMap()
    .set('backend_domname', d.backend_domname)
    .set('pdev_path', d.pdev_path)
    .set('vdev', d.vdev)
    .set('backend', d.backend === 'unknown' ? undefined : d.backend)
    .set('format', d.format === 'unknown' ? undefined : d.format)
    .set('script', d.script)
    .set('removable', d.removable || undefined)
    .set('readwrite', d.readwrite || undefined)
    .set('is_cdrom', d.is_cdrom || undefined)
    .set('direct_io_safe', d.direct_io_safe || undefined)
    .set('discard_enable', defbool(d.discard_enable))
    .set('specification', d.specification === 'unknown' ? undefined : d.specification)
    .set('trusted', defbool(d.trusted));
}

/** Exactly what `xl -N block-attach DOM SPEC` writes to stdout: `disk: ` + libxl's JSON + newline. */
export function diskDryRunJson(d: LibxlDeviceDisk): string {
  return `disk: ${libxlJsonText(diskToLibxlJson(d))}\n`;
}
