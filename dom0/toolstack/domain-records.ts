// The toolstack's record of each domain it built, kept in the run dir as libxl keeps its
// userdata files (/var/lib/xen/userdata-d.<domid>.<uuid>.libxl-json): the config it was built
// from, its actions, and dom0's ends of its xenstore and console channels. A dom0 that
// restarts reads them back to take the running guests over (toolstack.ts adopt()).
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolstackRecordDir } from '../../common/paths.js';
import type { BuildSpec } from './build-spec.js';

export interface SavedDomainRecord {
  domid: number;
  name: string;
  uuid: string;
  spec: BuildSpec;
  /** dom0's ends of its xenstore and console channels. */
  storePort: number;
  consolePort: number;
  /** Apply on_poweroff/on_reboot/on_crash (xl create -e: no, as with no xl monitoring it). */
  monitor: boolean;
  /** The create finished (devices connected, unpaused unless asked not to be). */
  built: boolean;
  /** When this incarnation was built, and how many restarts came each soon after the last. */
  startedAt: number;
  quickRestarts: number;
}

function recordPath(domid: number): string {
  return join(toolstackRecordDir(), `d${domid}.json`);
}

export function saveDomainRecord(r: SavedDomainRecord): void {
  mkdirSync(toolstackRecordDir(), { recursive: true, mode: 0o700 });
  const path = recordPath(r.domid);
  writeFileSync(`${path}.new`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

/** The record of a domain, or an Error saying why there is none usable. */
export function loadDomainRecord(domid: number): SavedDomainRecord | Error {
  let r: SavedDomainRecord;
  try {
    r = JSON.parse(readFileSync(recordPath(domid), 'utf8')) as SavedDomainRecord;
  } catch (e) {
    return new Error(`no toolstack record (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (r.domid !== domid || typeof r.name !== 'string' || typeof r.spec !== 'object' || r.spec === null || !Number.isInteger(r.storePort)) {
    return new Error('its toolstack record is not readable');
  }
  return r;
}

export function removeDomainRecord(domid: number): void {
  rmSync(recordPath(domid), { force: true });
}

/** Records of domains that no longer exist (destroyed while no dom0 ran) go. */
export function pruneDomainRecords(live: Set<number>): void {
  let names: string[];
  try {
    names = readdirSync(toolstackRecordDir());
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^d(\d+)\.json$/.exec(n);
    if (m && !live.has(Number(m[1]))) rmSync(join(toolstackRecordDir(), n), { force: true });
  }
}
