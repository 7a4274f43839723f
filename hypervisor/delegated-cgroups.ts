// Cgroup directories a domain may manage itself: one in systemd's named v1 hierarchy
// (/sys/fs/cgroup/systemd) and one in cgroup2 (/sys/fs/cgroup/unified) on hybrid hosts, owned
// by the domain's root. A guest booted from its own image runs its own init; systemd keeps its
// units as cgroups there, the way systemd-nspawn delegates a container's subtree. The
// controllers that enforce the domain's limits (memory, cpu, pids, freezer...) stay host-owned
// (cgroups.ts): the guest can organise its processes, never lift its limits.
//
// The jailer's cgroup namespace (native/jailer.c) makes these directories the root of what the
// guest sees, and native/rootboot.c moves the guest's init into a "guest" child so the
// kernel stays out of the guest's tree.
import { chownSync, existsSync, mkdirSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

/** Hierarchy dir under /sys/fs/cgroup and the files the owner must be able to write. */
const HIERARCHIES: { dir: string; files: string[] }[] = [
  { dir: 'systemd', files: ['cgroup.procs', 'tasks', 'notify_on_release', 'cgroup.clone_children'] },
  { dir: 'unified', files: ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'] },
];

export class DelegatedCgroups {
  private readonly dirs: string[];

  constructor(group: string, domid: number) {
    // Only hierarchies this host mounts (a cgroup v1 host without systemd has neither).
    this.dirs = HIERARCHIES.filter((h) => existsSync(join(ROOT, h.dir, 'cgroup.procs'))).map((h) => join(ROOT, h.dir, group, `d${domid}`));
  }

  /** Make the directories and give them to the domain's root (a host uid of its range). */
  create(ownerUid: number): void {
    for (const dir of this.dirs) {
      mkdirSync(dir, { recursive: true });
      const h = HIERARCHIES.find((x) => dir.startsWith(join(ROOT, x.dir) + '/'))!;
      chownSync(dir, ownerUid, ownerUid);
      for (const f of h.files) if (existsSync(join(dir, f))) chownSync(join(dir, f), ownerUid, ownerUid);
    }
  }

  addProcess(pid: number): void {
    for (const dir of this.dirs) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  }

  /** Remove the tree the guest made under its directories, deepest first. The domain's
   * processes are gone by now (the controllers' killAll ran); an empty cgroup rmdirs. */
  destroy(): void {
    for (const dir of this.dirs) removeTree(dir, 0);
  }
}

function removeTree(dir: string, depth: number): void {
  if (depth > 32 || !existsSync(dir)) return;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    try {
      if (statSync(p).isDirectory()) removeTree(p, depth + 1);
    } catch {
      /* raced away */
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* still busy: the controllers' destroy retries; left for the next sweep */
  }
}
