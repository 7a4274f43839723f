// The source tree's layers: a directory imports only from itself and from layers below it.
// Domains (guest/, stubdom/) do not import each other: what they share is in drivers/ (rings,
// grants, wire formats, the ioreq vCPU side); the host's services (dom0/, hypervisor/) talk to
// each other only by hypercalls; nothing under dom0/ or hypervisor/ is reachable from a
// domain's code.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** Lower numbers are lower layers; directories of one layer may not import each other. */
const LAYERS: Readonly<Record<string, number>> = {
  native: 0,
  common: 1,
  net: 2,
  drivers: 3,
  guest: 4,
  stubdom: 4,
  dom0: 5,
  hypervisor: 5,
  bin: 6,
  bench: 6,
};

/** Static imports, `export ... from` and dynamic import() of relative paths. */
const RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g;

/** The imports in `text` (a file at `file`, relative to the root) that break the layering. */
function violations(file: string, text: string): string[] {
  const from = file.split('/')[0]!;
  const rank = LAYERS[from];
  if (rank === undefined) return [];
  const out: string[] = [];
  for (const m of text.matchAll(RELATIVE_IMPORT)) {
    const to = relative(ROOT, resolve(ROOT, dirname(file), m[1]!)).split('/')[0]!;
    const toRank = LAYERS[to];
    if (to === from || toRank === undefined) continue;
    if (toRank >= rank) out.push(`${file} imports ${m[1]} (${from}/ may not import ${to}/)`);
  }
  return out;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mjs)$/.test(e.name) ? [p] : [];
  });
}

describe('layering', () => {
  it('no directory imports from its own layer or one above it', () => {
    const found = Object.keys(LAYERS).flatMap((dir) => sources(dir).flatMap((f) => violations(f, readFileSync(join(ROOT, f), 'utf8'))));
    expect(found).toEqual([]);
  });

  it('the check sees an upward import, a sideways one and a dynamic one', () => {
    expect(violations('common/service.ts', "import { rpcCall } from '../dom0/toolstack/rpc.js';")).toHaveLength(1);
    expect(violations('guest/hvm/cpu/io.ts', "export { X } from '../../../stubdom/device-model/x.js';")).toHaveLength(1);
    expect(violations('drivers/ring/x.ts', "const m = await import('../../hypervisor/domain.js');")).toHaveLength(1);
    expect(violations('dom0/main.ts', "import { y } from '../drivers/ring/shared-ring.js';\nimport { z } from './toolstack/rpc.js';")).toEqual([]);
  });
});
