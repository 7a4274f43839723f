import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Two projects, told apart by a rule rather than a list, so a new test file lands in the right
// one by itself:
//  - integration: files that need root or start xenode: they (or a test helper they import,
//    at any depth) ask whether they run as root, open TAPs or /dev/kvm, or make namespaces,
//    which test/helpers/instance.ts (Instance, shouldSkip) and lan.ts do. They start real
//    processes, bridges and cgroups with fixed names, so they run one file at a time.
//  - unit: everything else: codecs, rings, parsers, in-process harnesses. They run in
//    parallel and need no root.
// `npm test` runs both, the unit project first.

const root = dirname(fileURLToPath(import.meta.url));
const testDir = join(root, 'test');
const ROOT_MARKERS = /process\.getuid|\/dev\/net\/tun|\/dev\/kvm|netns/;
const RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*'(\.[^']+)'/g;

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return testFiles(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

const verdicts = new Map<string, boolean>();
/** Does `file`, or a file under test/ that it imports, need root? */
function needsRoot(file: string): boolean {
  const known = verdicts.get(file);
  if (known !== undefined) return known;
  verdicts.set(file, false); // an import cycle adds nothing
  const text = readFileSync(file, 'utf8');
  let verdict = ROOT_MARKERS.test(text);
  for (const m of verdict ? [] : text.matchAll(RELATIVE_IMPORT)) {
    const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
    if (target.startsWith(testDir) && existsSync(target) && needsRoot(target)) {
      verdict = true;
      break;
    }
  }
  verdicts.set(file, verdict);
  return verdict;
}

const all = testFiles(testDir).map((f) => relative(root, f));
const integration = all.filter((f) => needsRoot(join(root, f)));
const unit = all.filter((f) => !integration.includes(f));

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: unit, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: { name: 'integration', include: integration, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
