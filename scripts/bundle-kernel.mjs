// Bundle the guest kernel into one file, so a domain's sandbox needs only /boot/kernel.mjs and
// the addon: the guest never sees the project's checkout.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'guest', 'kernel', 'main.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: join(root, 'dist', 'boot', 'kernel.mjs'),
  banner: { js: "import { createRequire as __xenodeCreateRequire } from 'node:module'; const require = __xenodeCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
