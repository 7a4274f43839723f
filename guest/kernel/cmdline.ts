// The guest kernel command line, read the way Linux reads it: `init=PATH` names the first
// program; words without '=' and everything after `--` become init's arguments; unknown
// `key=value` words become init's environment. So
//   extra = "init=/usr/bin/python3 -m http.server 80"
// runs `python3 -m http.server 80` as the guest's init, exactly as a Linux guest would.

/** Parameters the guest kernel itself understands (not passed on to init). */
const KERNEL_PARAMS = new Set([
  'console', 'root', 'rootfstype', 'rootflags', 'rootwait', 'rootdelay', 'ro', 'rw', 'quiet', 'debug', 'loglevel',
  'earlyprintk', 'xencons', 'ip', 'panic', 'nomodeset', 'selinux', 'apparmor', 'init',
  // PV drivers on HVM (guest/hvm/pvhvm.ts): xenode's switch and Linux's unplug knob.
  'xen_pvhvm', 'xen_emul_unplug', 'xen_platform_pci',
  // Partition tables: use a GPT without a protective MBR, or its backup (common/disk/partition-table.ts).
  'gpt',
]);

export interface InitSpec {
  init: string | null;
  argv: string[];
  env: Record<string, string>;
  params: Record<string, string>;
}

/** Split on blanks, honouring double quotes as Linux's next_arg() does. */
export function splitCmdline(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let any = false;
  for (const ch of s) {
    if (ch === '"') {
      inQuote = !inQuote;
      any = true;
    } else if (!inQuote && /\s/.test(ch)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (any) out.push(cur);
  return out;
}

export function parseCmdline(cmdline: string): InitSpec {
  const spec: InitSpec = { init: null, argv: [], env: {}, params: {} };
  const words = splitCmdline(cmdline);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--') {
      spec.argv.push(...words.slice(i + 1));
      break;
    }
    const eq = w.indexOf('=');
    if (eq < 0) {
      if (KERNEL_PARAMS.has(w)) spec.params[w] = '';
      else spec.argv.push(w);
      continue;
    }
    const key = w.slice(0, eq);
    const value = w.slice(eq + 1);
    if (key === 'init') spec.init = value;
    else if (KERNEL_PARAMS.has(key) || key.includes('.')) spec.params[key] = value;
    else spec.env[key] = value;
  }
  return spec;
}

/** Linux's fallback order when init= is absent or cannot be run. */
export const DEFAULT_INITS = ['/sbin/init', '/etc/init', '/bin/init', '/bin/sh'];
