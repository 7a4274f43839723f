// Bundle the guest kernels into one file each, so a domain's sandbox needs only /boot/*.mjs
// and the addon: the guest never sees the project's checkout.
//   guest/kernel/main.ts -> dist/boot/kernel.mjs      (PV)
//   guest/hvm/main.ts    -> dist/boot/hvm-kernel.mjs  (HVM firmware + native drivers)
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const kernels = [
  ['guest/kernel/main.ts', 'kernel.mjs'],
  ['guest/hvm/main.ts', 'hvm-kernel.mjs'],
];
// xl runs once per command: one bundled file starts 25-40 ms faster than the module tree
// (bench/platform.ts measures xl create -> console ready).
const tools = [['bin/xl.ts', join('bin', 'xl.js')]];
for (const [entry, out] of tools) {
  await build({
    entryPoints: [join(root, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(root, 'dist', out),
    allowOverwrite: true,
    banner: { js: "import { createRequire as __xenodeCreateRequire } from 'node:module'; const require = __xenodeCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}
for (const [entry, out] of kernels) {
  if (!existsSync(join(root, entry))) continue;
  await build({
    entryPoints: [join(root, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(root, 'dist', 'boot', out),
    banner: { js: "import { createRequire as __xenodeCreateRequire } from 'node:module'; const require = __xenodeCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}
