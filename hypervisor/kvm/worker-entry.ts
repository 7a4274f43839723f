// Where a worker thread's code comes from: the compiled .js next to the caller (dist/), or,
// when running from TypeScript sources (vitest), the .ts bundled on the fly with esbuild (a
// devDependency; bundling takes ~50 ms once per entry and process).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundles = new Map<string, string>();

/** `callerUrl` is the caller's import.meta.url; `name` the worker module's basename, next to it. */
export async function workerEntry(callerUrl: string, name: string): Promise<{ url: URL } | { code: string }> {
  const here = fileURLToPath(callerUrl);
  if (!here.endsWith('.ts')) return { url: pathToFileURL(join(dirname(here), `${name}.js`)) };
  const entry = join(dirname(here), `${name}.ts`);
  let code = bundles.get(entry);
  if (!code) {
    const esbuild = await import('esbuild');
    const out = esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', target: 'node20', write: false });
    code = out.outputFiles[0]!.text;
    bundles.set(entry, code);
  }
  return { code };
}
