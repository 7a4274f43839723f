// Running a vif's hotplug script the way Xen does (tools/hotplug/Linux): `SCRIPT online` when
// the backend interface exists, `SCRIPT offline` after it is gone, with XENBUS_PATH and vif in
// the environment. The script reports through xenstore (hotplug-status = connected | error,
// hotplug-error = why); its exit status and stderr are only for the log.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { xenstoredSocket, runDir } from '../common/paths.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Where vif-bridge, vif-route and vif-nat live (Xen: /etc/xen/scripts). Works from the source
 * tree (net/) and from the build (dist/net/); XENODE_SCRIPT_DIR overrides. */
export function hotplugScriptDir(): string {
  if (process.env.XENODE_SCRIPT_DIR) return process.env.XENODE_SCRIPT_DIR;
  for (const c of [join(here, 'scripts'), join(here, '..', '..', 'net', 'scripts')]) {
    if (existsSync(join(c, 'vif-bridge'))) return c;
  }
  throw new Error(`hotplug scripts not found next to ${here}`);
}

/** The backend's `script` key: an absolute path as libxl writes it, or a bare name. Only
 * names of the project's own scripts are accepted in bare form. */
export function resolveHotplugScript(script: string): string {
  if (isAbsolute(script)) return script;
  if (!/^[A-Za-z0-9_.-]+$/.test(script)) throw new Error(`hotplug script name "${script}" is not valid`);
  return join(hotplugScriptDir(), script);
}

export interface HotplugResult {
  code: number;
  output: string;
}

/** Runs `script action` for a backend device; resolves when the script exits (never rejects). */
export function runHotplugScript(
  script: string,
  action: 'online' | 'offline',
  env: { XENBUS_PATH: string; vif: string; bridge?: string; ip?: string },
  timeoutMs = 30_000,
): Promise<HotplugResult> {
  let path: string;
  try {
    path = resolveHotplugScript(script);
  } catch (e) {
    return Promise.resolve({ code: 127, output: (e as Error).message });
  }
  return new Promise((resolve) => {
    execFile(
      path,
      [action],
      {
        timeout: timeoutMs,
        env: {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          XENSTORED_PATH: xenstoredSocket(),
          XENODE_RUN_DIR: runDir(),
          XENBUS_PATH: env.XENBUS_PATH,
          vif: env.vif,
          // Defaults for the scripts when the backend directory is already gone (offline).
          ...(env.bridge ? { bridge: env.bridge } : {}),
          ...(env.ip ? { ip: env.ip } : {}),
          script: path,
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}`.trim() });
      },
    );
  });
}
