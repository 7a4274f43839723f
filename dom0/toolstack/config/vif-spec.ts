// Network interface specifications (docs/man/xl-network-configuration.5), read as xl's
// parse_nic_config() reads them (tools/xl/xl_parse.c), into libxl_device_nic's fields.
//
// Two stages, because Xen has two:
//  - parse (xl): only what the user wrote is set; this is what `xl -N network-attach` prints;
//  - resolve (libxl__device_nic_setdefault): mtu 1500, model rtl8139, a random MAC under Xen's OUI
//    00:16:3e with the fourth byte's top bit clear, bridge xenbr0, script vif-bridge, type
//    vif_ioemu for HVM guests at creation, vif for hot-plugged NICs and for PV/PVH guests (where
//    type=ioemu is an error), trusted.
//
// Where we are stricter than xl, on purpose: xl prints "unrecognized argument" for a bad token in
// a config file and carries on; we fail. We also check what xl leaves to later failures: the MAC
// must be six hex bytes and unicast, ip must be IP addresses, mtu 68..65535, vifname a legal Linux
// interface name of at most 15 characters (IFNAMSIZ - 1), bridge likewise.

import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { COMMAND_LINE, ConfigError, type SourcePos } from './config-error.js';
import { defbool, LibxlMap, libxlJsonText } from './libxl-json.js';
import { parseVifRate, VifRateError } from './vif-rate.js';
import { parseXlUlong } from '../../../common/c-strtol.js';

export type NicType = 'vif' | 'vif_ioemu';
export type GuestType = 'pv' | 'pvh' | 'hvm';

/** libxl_device_nic fields xl can set, under libxl's names; undefined = left at libxl's default. */
export interface LibxlDeviceNic {
  backend_domname?: string;
  devid?: number;
  mtu?: number;
  model?: string;
  /** Lower-case `xx:xx:xx:xx:xx:xx`. */
  mac?: string;
  ip?: string;
  bridge?: string;
  ifname?: string;
  script?: string;
  nictype?: NicType;
  rate_bytes_per_interval?: number;
  rate_interval_usecs?: number;
  gatewaydev?: string;
  trusted?: boolean;
}

/** A NIC with libxl's defaults applied: what the backend is built from. */
export interface ResolvedNic extends LibxlDeviceNic {
  devid: number;
  mtu: number;
  model: string;
  mac: string;
  bridge: string;
  script: string;
  nictype: NicType;
  trusted: boolean;
}

export const XEN_OUI = '00:16:3e';
export const DEFAULT_BRIDGE = 'xenbr0';
export const DEFAULT_VIF_SCRIPT = 'vif-bridge';
export const DEFAULT_NIC_MODEL = 'rtl8139';
export const DEFAULT_MTU = 1500;
/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME_LEN = 15;
const MIN_MTU = 68;
const MAX_MTU = 65535;
const UNSUPPORTED_PREFIXES = ['forwarddev', 'colo_', 'vlan', 'vid'];

function fail(where: SourcePos, spec: string, detail: string): never {
  throw new ConfigError(where, `vif specification \`${spec}': ${detail}`);
}

/** Six groups of one or two hex digits separated by colons; returns the canonical lower-case form. */
export function parseMac(text: string): string | undefined {
  const parts = text.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) return undefined;
  return parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':');
}

function checkIfname(name: string, what: string): string | undefined {
  if (name.length === 0) return `${what} is empty`;
  if (name.length > MAX_IFNAME_LEN) return `${what} \`${name}' is longer than ${MAX_IFNAME_LEN} characters (Linux IFNAMSIZ)`;
  if (name === '.' || name === '..' || /[\s/:]/.test(name)) return `${what} \`${name}' is not a valid interface name (no spaces, / or :)`;
  return undefined;
}

function checkIp(text: string): string | undefined {
  // The hotplug scripts take a blank-separated list of addresses, each optionally with a prefix length.
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return 'ip is empty';
  for (const w of words) {
    const [addr, len, extra] = w.split('/');
    const fam = isIP(addr ?? '');
    const maxLen = fam === 6 ? 128 : 32;
    if (!fam || extra !== undefined || (len !== undefined && !(/^\d+$/.test(len) && Number(len) <= maxLen))) {
      return `ip \`${w}' is not an IP address`;
    }
  }
  return undefined;
}

/** Applies one `key=value` token to the NIC: parse_nic_config(). */
function applyToken(nic: LibxlDeviceNic, token: string, spec: string, where: SourcePos, warnings: string[]): void {
  if (token === 'trusted' || token === 'untrusted') {
    nic.trusted = token === 'trusted';
    return;
  }
  const eq = token.indexOf('=');
  if (eq < 0) fail(where, spec, `unrecognized argument \`${token}'`);
  const key = token.slice(0, eq);
  const value = token.slice(eq + 1);
  switch (key) {
    case 'type':
      if (value === 'vif') nic.nictype = 'vif';
      else if (value === 'ioemu') nic.nictype = 'vif_ioemu';
      else fail(where, spec, `invalid type \`${value}' (vif or ioemu)`);
      return;
    case 'mac': {
      const mac = parseMac(value);
      if (!mac) fail(where, spec, `invalid mac \`${value}' (six hex bytes separated by colons)`);
      if (parseInt(mac.slice(0, 2), 16) & 1) fail(where, spec, `mac \`${value}' is a multicast address; a NIC needs a unicast one`);
      nic.mac = mac;
      return;
    }
    case 'bridge': {
      const bad = checkIfname(value, 'bridge');
      if (bad) fail(where, spec, bad);
      nic.bridge = value;
      return;
    }
    case 'netdev':
      warnings.push('the netdev parameter is deprecated, please use gatewaydev instead');
      nic.gatewaydev = value;
      return;
    case 'gatewaydev': nic.gatewaydev = value; return;
    case 'ip': {
      const bad = checkIp(value);
      if (bad) fail(where, spec, bad);
      nic.ip = value;
      return;
    }
    case 'script':
      if (value === '') fail(where, spec, 'script is empty');
      nic.script = value;
      return;
    case 'backend': nic.backend_domname = value; return;
    case 'vifname': {
      const bad = checkIfname(value, 'vifname');
      if (bad) fail(where, spec, bad);
      nic.ifname = value;
      return;
    }
    case 'model':
      if (!/^[A-Za-z0-9_.-]+$/.test(value)) fail(where, spec, `invalid model \`${value}'`);
      nic.model = value;
      return;
    case 'rate':
      try {
        Object.assign(nic, parseVifRate(value));
      } catch (e) {
        if (e instanceof VifRateError) fail(where, spec, `rate: ${e.message}`);
        throw e;
      }
      return;
    case 'accel':
      warnings.push('the accel parameter for vifs is currently not supported');
      return;
    case 'devid': {
      const n = /^\d+$/.test(value) ? parseXlUlong(value) : undefined;
      if (n === undefined || n > 0x7fffffff) fail(where, spec, `invalid devid \`${value}'`);
      nic.devid = n;
      return;
    }
    case 'mtu': {
      const n = /^\d+$/.test(value) ? parseXlUlong(value) : undefined;
      if (n === undefined || n < MIN_MTU || n > MAX_MTU) fail(where, spec, `mtu \`${value}' is not a number from ${MIN_MTU} to ${MAX_MTU}`);
      nic.mtu = n;
      return;
    }
    default:
      if (UNSUPPORTED_PREFIXES.some((p) => key.startsWith(p))) fail(where, spec, `${key} is not supported by xenode`);
      fail(where, spec, `unrecognized argument \`${token}'`);
  }
}

export interface ParsedNic {
  nic: LibxlDeviceNic;
  warnings: string[];
}

/**
 * Parses a config-file vifspec: comma-separated tokens, blanks before each skipped (xl keeps
 * blanks after a value, and so do we; the checks above then reject them). '' is a valid spec.
 */
export function parseVifSpec(spec: string, where: SourcePos = { ...COMMAND_LINE, key: 'vif' }): ParsedNic {
  const nic: LibxlDeviceNic = {};
  const warnings: string[] = [];
  for (const raw of spec.split(',')) {
    const token = raw.replace(/^ +/, '');
    if (token === '') continue; // strtok() skips empty fields
    applyToken(nic, token, spec, where, warnings);
  }
  return { nic, warnings };
}

/** `xl network-attach DOM key=value...`: each argument is one token, commas are not split. */
export function parseVifArgs(args: readonly string[], where: SourcePos = { ...COMMAND_LINE, key: 'vif' }): ParsedNic {
  const nic: LibxlDeviceNic = {};
  const warnings: string[] = [];
  for (const a of args) applyToken(nic, a, args.join(' '), where, warnings);
  return { nic, warnings };
}

/**
 * A MAC under Xen's OUI the way libxl makes one (byte 3's top bit clear). With a seed (e.g. the
 * domain's UUID and the devid) the same seed always gives the same MAC, so a guest keeps its
 * address across restarts of the same config; without one it is random, as in libxl.
 */
export function generateXenMac(seed?: string): string {
  const r = seed === undefined ? randomBytes(3) : createHash('sha256').update(seed).digest().subarray(0, 3);
  const bytes = [0x00, 0x16, 0x3e, r[0]! & 0x7f, r[1]!, r[2]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface NicDefaultsContext {
  guestType: GuestType;
  /** Index in the vif list, used when the spec has no devid=. */
  devid: number;
  /** True for network-attach on a running guest (libxl then makes HVM NICs PV-only). */
  hotplug?: boolean;
  /** Seed for a stable MAC (see generateXenMac). */
  macSeed?: string;
}

/** libxl__device_nic_setdefault(): fills every default. Throws ConfigError for ioemu on PV/PVH. */
export function resolveNicDefaults(nic: LibxlDeviceNic, ctx: NicDefaultsContext, where: SourcePos = { ...COMMAND_LINE, key: 'vif' }): ResolvedNic {
  let nictype: NicType;
  if (ctx.guestType === 'hvm') nictype = nic.nictype ?? (ctx.hotplug ? 'vif' : 'vif_ioemu');
  else if (nic.nictype === 'vif_ioemu') {
    throw new ConfigError(where, `type=ioemu needs an HVM guest (libxl: "trying to create PV or PVH guest with an emulated interface")`);
  } else nictype = 'vif';
  if (nictype === 'vif_ioemu' && nic.ifname && nic.ifname.length + '-emu'.length > MAX_IFNAME_LEN) {
    throw new ConfigError(where, `vifname \`${nic.ifname}' leaves no room for the "-emu" suffix of the emulated tap (at most ${MAX_IFNAME_LEN - 4} characters)`);
  }
  return {
    ...nic,
    devid: nic.devid ?? ctx.devid,
    mtu: nic.mtu ?? DEFAULT_MTU,
    model: nic.model ?? DEFAULT_NIC_MODEL,
    mac: nic.mac ?? generateXenMac(ctx.macSeed),
    bridge: nic.bridge ?? DEFAULT_BRIDGE,
    script: nic.script ?? DEFAULT_VIF_SCRIPT,
    nictype,
    trusted: nic.trusted ?? true,
  };
}

/** libxl_device_nic as libxl_device_nic_to_json() prints it: fields off their defaults, IDL order. */
export function nicToLibxlJson(n: LibxlDeviceNic): LibxlMap {
  return new LibxlMap()
    .set('backend_domname', n.backend_domname)
    .set('devid', n.devid === undefined || n.devid === -1 ? undefined : n.devid)
    .set('mtu', n.mtu || undefined)
    .set('model', n.model)
    .set('mac', n.mac === '00:00:00:00:00:00' ? undefined : n.mac)
    .set('ip', n.ip)
    .set('bridge', n.bridge)
    .set('ifname', n.ifname)
    .set('script', n.script)
    .set('nictype', n.nictype)
    .set('rate_bytes_per_interval', n.rate_bytes_per_interval || undefined)
    .set('rate_interval_usecs', n.rate_interval_usecs || undefined)
    .set('gatewaydev', n.gatewaydev)
    .set('trusted', defbool(n.trusted));
}

/** Exactly what `xl -N network-attach DOM ARGS...` writes to stdout: `vif: ` + libxl's JSON + newline. */
export function vifDryRunJson(n: LibxlDeviceNic): string {
  return `vif: ${libxlJsonText(nicToLibxlJson(n))}\n`;
}
