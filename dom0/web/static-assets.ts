// The page's files: a fixed table from URL prefix to directory (the page itself, and the
// browser libraries straight out of node_modules: nothing is fetched from anywhere else at
// run time). A request path is decoded once and refused when it has a `..` or `.` segment, a
// backslash or a NUL, or resolves (symlinks followed) outside its directory; only regular
// files with a known type are served.
import { existsSync, realpathSync, statSync, createReadStream } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { ServerResponse } from 'node:http';

/** The project root, from dist/dom0/web/ or dom0/web/. */
export const ROOT = resolve(import.meta.dirname, existsSync(resolve(import.meta.dirname, '..', '..', 'package.json')) ? '../..' : '../../..');
const NM = join(ROOT, 'node_modules');

/** URL prefix -> directory. Only what the page loads. */
const MOUNTS: [string, string][] = [
  ['/vendor/xterm/', join(NM, '@xterm', 'xterm')],
  ['/vendor/xterm-fit/', join(NM, '@xterm', 'addon-fit', 'lib')],
  ['/vendor/uplot/', join(NM, 'uplot', 'dist')],
  ['/vendor/novnc/', join(NM, '@novnc', 'novnc')],
  ['/', join(ROOT, 'dom0', 'web', 'page')],
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export class PathError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The file a URL path names, or a PathError (400 for a path that tries to leave, 404 for none). */
export function resolveAsset(urlPath: string): string {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    throw new PathError(400, `path ${JSON.stringify(urlPath)} is not valid percent-encoding`);
  }
  if (path.includes('\0') || path.includes('\\')) throw new PathError(400, `path ${JSON.stringify(urlPath)} has a NUL or a backslash`);
  if (path.split('/').some((s) => s === '..' || s === '.')) throw new PathError(400, `path ${JSON.stringify(urlPath)} has a '.' or '..' segment`);
  if (path === '/') path = '/index.html';
  const mount = MOUNTS.find(([prefix]) => path.startsWith(prefix));
  if (!mount) throw new PathError(404, `no such file: ${urlPath}`);
  const [prefix, dir] = mount;
  const file = resolve(dir, path.slice(prefix.length));
  if (!TYPES[extname(file)]) throw new PathError(404, `no such file: ${urlPath}`);
  let real: string;
  let realDir: string;
  try {
    real = realpathSync(file);
    realDir = realpathSync(dir);
  } catch {
    throw new PathError(404, `no such file: ${urlPath}`);
  }
  if (!real.startsWith(realDir + sep) || !statSync(real).isFile()) throw new PathError(404, `no such file: ${urlPath}`);
  return real;
}

export function contentType(file: string): string {
  return TYPES[extname(file)] ?? 'application/octet-stream';
}

export function sendFile(res: ServerResponse, file: string): void {
  res.writeHead(200, { 'content-type': contentType(file), 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  createReadStream(file).on('error', () => res.destroy()).pipe(res);
}
