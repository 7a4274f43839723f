// Watches, with Xen's matching rule: a change at path P fires every watch set on P or on an
// ancestor of P ("/" sees everything); removal of a subtree additionally fires watches set
// exactly on each removed node below the removed root. Watches are indexed by path, so one
// change costs a lookup per ancestor rather than a scan of every watch.
//
// A watcher hears of a change only if it may read the node or its parent (or could read the
// node before a permission change), as C's watch_permitted() decides. A watch given as a
// relative path reports relative event paths.
import { XsError } from '../../drivers/xenstore/xs-wire.js';
import { parentOf } from './paths.js';
import { PERM_READ, permFor, type NodePerm, type Requester } from './perms.js';
import type { NodeStore, XsNode } from './store.js';

export interface WatchOwner extends Requester {
  /** `watch` is the watch that fired and `cause` whoever changed the node (see Connection). */
  sendEvent(path: string, token: string, watch?: Watch, cause?: Requester): void;
}

export interface Watch {
  /** Canonical (absolute or @special) path. */
  path: string;
  token: string;
  /** Characters to strip from event paths: the "/local/domain/<id>/" of a relative watch. */
  prefixLen: number;
  owner: WatchOwner;
}

export class WatchTable {
  private readonly byPath = new Map<string, Watch[]>();
  private readonly byOwner = new Map<WatchOwner, Watch[]>();

  /** Register; EEXIST for a duplicate (path, token), E2BIG beyond `limit` watches. */
  add(owner: WatchOwner, path: string, token: string, prefixLen: number, limit: number): Watch {
    const mine = this.byOwner.get(owner) ?? [];
    if (mine.some((w) => w.path === path && w.token === token)) {
      throw new XsError('EEXIST', `watch ${path} ${token} already set`);
    }
    if (mine.length >= limit) throw new XsError('E2BIG', `more than ${limit} watches`);
    const w: Watch = { path, token, prefixLen, owner };
    mine.push(w);
    this.byOwner.set(owner, mine);
    const list = this.byPath.get(path);
    if (list) list.push(w);
    else this.byPath.set(path, [w]);
    return w;
  }

  remove(owner: WatchOwner, path: string, token: string): boolean {
    const mine = this.byOwner.get(owner);
    const w = mine?.find((x) => x.path === path && x.token === token);
    if (!w || !mine) return false;
    this.unlink(w, mine);
    return true;
  }

  removeAll(owner: WatchOwner): void {
    const mine = this.byOwner.get(owner);
    if (!mine) return;
    for (const w of [...mine]) this.unlink(w, mine);
  }

  /** The owner's watches, in the order set (for a saved state). */
  of(owner: WatchOwner): readonly Watch[] {
    return this.byOwner.get(owner) ?? [];
  }

  count(owner: WatchOwner): number {
    return this.byOwner.get(owner)?.length ?? 0;
  }

  /**
   * Fire the watches a change at `path` triggers. `exact` limits it to watches on `path`
   * itself. `store` is the committed tree (for permission checks when `node` is not given).
   * `cause` made the change (undefined: xenstored itself, as privileged).
   */
  fire(store: NodeStore, path: string, exact: boolean, node?: XsNode, oldPerms?: readonly NodePerm[], cause?: Requester): void {
    if (this.byPath.size === 0) return;
    this.fireList(this.byPath.get(path), store, path, node, oldPerms, cause);
    if (exact) return;
    let p = path;
    while (p !== '/') {
      p = parentOf(p);
      this.fireList(this.byPath.get(p), store, path, node, oldPerms, cause);
    }
  }

  private fireList(
    list: Watch[] | undefined, store: NodeStore, path: string, node?: XsNode, oldPerms?: readonly NodePerm[], cause?: Requester,
  ): void {
    if (!list) return;
    for (const w of list.slice()) {
      if (!watchPermitted(store, w.owner, path, node, oldPerms)) continue;
      w.owner.sendEvent(w.prefixLen ? path.slice(w.prefixLen) : path, w.token, w, cause);
    }
  }

  private unlink(w: Watch, mine: Watch[]): void {
    mine.splice(mine.indexOf(w), 1);
    if (mine.length === 0) this.byOwner.delete(w.owner);
    const list = this.byPath.get(w.path);
    if (list) {
      list.splice(list.indexOf(w), 1);
      if (list.length === 0) this.byPath.delete(w.path);
    }
  }
}

function watchPermitted(
  store: NodeStore, who: Requester, path: string, node?: XsNode, oldPerms?: readonly NodePerm[],
): boolean {
  if (who.privileged) return true;
  if (oldPerms && permFor(who, oldPerms) & PERM_READ) return true;
  const n = node ?? store.get(path);
  if (!n) return false;
  if (permFor(who, n.perms) & PERM_READ) return true;
  const parent = store.get(parentOf(path));
  return parent !== undefined && (permFor(who, parent.perms) & PERM_READ) !== 0;
}
