// The host's Debian mirror, read from its own apt configuration, so that `xenode mkimage --from
// debian` fetches packages from wherever this machine already gets them (a local mirror, a proxy,
// a snapshot) and the project never names a mirror host itself.
//
// apt reads /etc/apt/sources.list (one-line format) and every *.list (one-line) and *.sources
// (deb822) file in /etc/apt/sources.list.d/; other file names there are ignored, as apt does.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  enabled: boolean;
  /** The file it came from, for error messages. */
  file: string;
}

/** One-line format: `deb [opt=val ...] URI SUITE [COMPONENT...]`. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(.*)$/.exec(line);
    if (!m) continue;
    out.push({ types: [m[1]!], uris: [m[2]!], suites: [m[3]!], components: m[4]!.trim().split(/\s+/).filter(Boolean), enabled: true, file });
  }
  return out;
}

/** deb822 format: stanzas separated by blank lines, `Field: value` with continuation lines. */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    const list = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!fields.has('uris')) continue;
    out.push({
      types: list('types'),
      uris: list('uris'),
      suites: list('suites'),
      components: list('components'),
      enabled: (fields.get('enabled') ?? 'yes').toLowerCase() !== 'no',
      file,
    });
  }
  return out;
}

/** Every source the host's apt reads, in apt's order. */
export function hostAptSources(root = '/'): AptSource[] {
  const out: AptSource[] = [];
  const main = join(root, 'etc/apt/sources.list');
  if (existsSync(main)) out.push(...parseOneLineSources(readFileSync(main, 'utf8'), main));
  const dir = join(root, 'etc/apt/sources.list.d');
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (name.endsWith('.list')) out.push(...parseOneLineSources(readFileSync(p, 'utf8'), p));
      else if (name.endsWith('.sources')) out.push(...parseDeb822Sources(readFileSync(p, 'utf8'), p));
    }
  }
  return out;
}

/** The host's release codename (`bookworm`), from /etc/os-release. */
export function hostSuite(root = '/'): string | undefined {
  const p = join(root, 'etc/os-release');
  if (!existsSync(p)) return undefined;
  return /^VERSION_CODENAME=("?)([a-z]+)\1$/m.exec(readFileSync(p, 'utf8'))?.[2];
}

/**
 * The Debian archive among `sources`: a binary (`deb`) source carrying `main` for a plain
 * release suite (`bookworm`, not `bookworm-security` or `bookworm-updates`, which live in
 * other archives or carry only updates). Prefers the one for `suite` (the host's own release),
 * so another suite comes from the same archive.
 */
export function debianMirror(sources: AptSource[], suite?: string): { uri: string; file: string } | undefined {
  const plain = sources.filter(
    (s) => s.enabled && s.types.includes('deb') && s.components.includes('main') && s.suites.some((x) => /^[a-z]+$/.test(x)),
  );
  const pick = suite === undefined ? plain[0] : plain.find((s) => s.suites.includes(suite));
  if (!pick) return undefined;
  return { uri: pick.uris[0]!.replace(/\/+$/, ''), file: pick.file };
}
