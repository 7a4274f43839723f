// Aborting a domain's FUSE connections when it is destroyed. A guest kernel serves its disks
// (and its /proc views) over FUSE and is itself a client of other FUSE servers in its domain
// (fuse2fs for its root). A process killed while one of its threads waits on a FUSE request
// that its own (dying) event loop should answer (a close() sends a FLUSH that waits without
// regard to signals) never exits: the /dev/fuse descriptor that would end the wait belongs to
// the same file table. The kernel's FUSE control filesystem lets the host abort such a
// connection, as `umount -f` or an administrator writing to .../abort would.
//
// Each connection's directory is owned by the uid of whoever mounted it: a domain's mounts are
// made by its root or its users, host uids of the domain's own range.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const FUSECTL = '/sys/fs/fuse/connections';

/** fusectl is mounted on every systemd host; mount it where nothing did (these machines). */
function fusectlMounted(): boolean {
  try {
    if (readdirSync(FUSECTL).length > 0) return true;
  } catch {
    return false;
  }
  if (!existsSync(FUSECTL)) mkdirSync(FUSECTL, { recursive: true });
  return spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore' }).status === 0 || readdirSync(FUSECTL).length > 0;
}

/** Abort every FUSE connection mounted by a uid in [uidBase, uidBase + uidCount); returns how many. */
export function abortDomainFuse(uidBase: number, uidCount: number): number {
  if (!fusectlMounted()) return 0;
  let n = 0;
  for (const name of readdirSync(FUSECTL)) {
    const dir = join(FUSECTL, name);
    try {
      const uid = statSync(dir).uid;
      if (uid < uidBase || uid >= uidBase + uidCount) continue;
      writeFileSync(join(dir, 'abort'), '1');
      n++;
    } catch {
      /* gone meanwhile */
    }
  }
  return n;
}
