// A transaction: an overlay over the committed store, filled lazily. The first time the
// transaction touches a path it records the node's generation (or "absent") and takes a
// private copy; later reads and writes inside the transaction use that copy. Commit succeeds
// only if every touched path still has the generation it had at first touch, otherwise EAGAIN
// (C xenstored checks the nodes a transaction read, and every write reads first, so this is
// "any node read or written changed meanwhile"). Watch events are held until commit.
import { XsError } from '../../drivers/xenstore/xs-wire.js';
import type { NodePerm } from './perms.js';
import { NO_GENERATION, cloneNode, type NodeStore, type Store, type XsNode } from './store.js';

export interface QueuedEvent {
  path: string;
  exact: boolean;
  /** Permissions the node had when the transaction first saw it (watchers who could read it then hear of it). */
  oldPerms?: readonly NodePerm[];
}

export class Transaction implements NodeStore {
  /** Path -> private copy, or null if absent / deleted inside the transaction. */
  private readonly overlay = new Map<string, XsNode | null>();
  /** Path -> generation in the committed store when first touched. */
  private readonly seen = new Map<string, number>();
  private readonly firstPerms = new Map<string, readonly NodePerm[]>();
  private readonly modified = new Set<string>();
  private readonly ownedDelta = new Map<number, number>();
  private readonly events = new Map<string, QueuedEvent>();
  /** Whether any node was created (commit then re-checks the nodes quota, like C). */
  createdNodes = false;

  constructor(
    private readonly base: Store,
    readonly id: number,
    /** Distinct paths this transaction may touch (Infinity for privileged callers). */
    private readonly maxNodes: number,
  ) {}

  get(path: string): XsNode | undefined {
    const o = this.overlay.get(path);
    if (o !== undefined) return o ?? undefined;
    if (this.seen.size >= this.maxNodes) {
      throw new XsError('ENOSPC', `transaction touches more than ${this.maxNodes} nodes`);
    }
    const b = this.base.get(path);
    this.seen.set(path, b ? b.generation : NO_GENERATION);
    if (b) this.firstPerms.set(path, b.perms);
    const copy = b ? cloneNode(b) : null;
    this.overlay.set(path, copy);
    return copy ?? undefined;
  }

  set(path: string, node: XsNode): void {
    const prev = this.get(path); // records the first touch if set() comes before any get()
    const owner = node.perms[0]?.id ?? 0;
    const was = prev?.acctOwner;
    if (was === undefined) this.bump(owner, 1);
    else if (was !== owner) {
      this.bump(was, -1);
      this.bump(owner, 1);
    }
    node.acctOwner = owner;
    // A fresh stamp, as C's access_node() gives written nodes: DIRECTORY_PART's generation
    // must change when the transaction changes the node. Conflict checks use `seen` instead.
    node.generation = ++this.base.generation;
    this.overlay.set(path, node);
    this.modified.add(path);
  }

  remove(path: string): void {
    const prev = this.get(path);
    if (!prev) return;
    if (prev.acctOwner !== undefined) this.bump(prev.acctOwner, -1);
    this.overlay.set(path, null);
    this.modified.add(path);
  }

  ownedBy(domid: number): number {
    return this.base.ownedBy(domid) + (this.ownedDelta.get(domid) ?? 0);
  }

  /** Hold a watch event until commit; a recursive (non-exact) event supersedes an exact one. */
  queueEvent(path: string, exact: boolean): void {
    const e = this.events.get(path);
    if (e) {
      if (!exact) e.exact = false;
      return;
    }
    this.events.set(path, { path, exact, oldPerms: this.firstPerms.get(path) });
  }

  /**
   * Apply to the committed store, or throw EAGAIN (conflict) / ENOSPC (a domain would exceed
   * its nodes quota). Returns the watch events to fire, in the order they happened.
   */
  commit(nodesQuota: number | undefined): QueuedEvent[] {
    // Quota before conflicts, in C's order (acc_fix_domains, then finalize_transaction).
    if (nodesQuota !== undefined && this.createdNodes) {
      for (const [domid, delta] of this.ownedDelta) {
        if (domid !== 0 && delta > 0 && this.base.ownedBy(domid) + delta > nodesQuota) {
          throw new XsError('ENOSPC', `domain ${domid} would own more than ${nodesQuota} nodes`);
        }
      }
    }
    for (const [path, gen] of this.seen) {
      const cur = this.base.get(path);
      if ((cur ? cur.generation : NO_GENERATION) !== gen) {
        throw new XsError('EAGAIN', `transaction ${this.id} conflicts on ${path}`);
      }
    }
    for (const path of this.modified) {
      const node = this.overlay.get(path);
      if (node) this.base.set(path, node);
      else this.base.remove(path);
    }
    return [...this.events.values()];
  }

  private bump(domid: number, delta: number): void {
    this.ownedDelta.set(domid, (this.ownedDelta.get(domid) ?? 0) + delta);
  }
}
