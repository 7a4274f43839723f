// The node tree. Like C xenstored it is a flat map from canonical path to node, each node
// listing its children by name in creation order (DIRECTORY's order). Every modification
// stamps the node with a fresh value of a global generation counter; transactions compare
// those stamps at commit to detect conflicts (see transaction.ts).
import type { NodePerm } from './perms.js';

export interface XsNode {
  /** Treated as immutable: a write installs a new array. */
  value: Uint8Array;
  /** Treated as immutable: SET_PERMS installs a new array. */
  perms: readonly NodePerm[];
  /** Child names in creation order; mutated in place (transactions work on copies). */
  children: Set<string>;
  /** Sum over children of name length + 1: the size of C's NUL-separated child list. */
  childBytes: number;
  generation: number;
  /** Owner this node is counted under in the committed store's per-domain node counts. */
  acctOwner?: number;
}

/** Generation recorded for "the node did not exist" (C's NO_GENERATION). */
export const NO_GENERATION = -1;

/**
 * What the request handlers need from a tree: the committed store, or a transaction's
 * overlay on top of it. A node returned by get() may be mutated only if set() follows.
 */
export interface NodeStore {
  get(path: string): XsNode | undefined;
  /** Install or update a node (bumps its generation). */
  set(path: string, node: XsNode): void;
  remove(path: string): void;
  /** Nodes currently owned by `domid`, for the nodes quota. */
  ownedBy(domid: number): number;
}

export function newNode(value: Uint8Array, perms: readonly NodePerm[]): XsNode {
  return { value, perms, children: new Set(), childBytes: 0, generation: NO_GENERATION };
}

/** A private copy for a transaction: value and perms are shared (immutable), children copied. */
export function cloneNode(n: XsNode): XsNode {
  return {
    value: n.value,
    perms: n.perms,
    children: new Set(n.children),
    childBytes: n.childBytes,
    generation: n.generation,
    acctOwner: n.acctOwner,
  };
}

export function addChild(parent: XsNode, name: string): void {
  if (parent.children.has(name)) return;
  parent.children.add(name);
  parent.childBytes += name.length + 1;
}

export function removeChild(parent: XsNode, name: string): void {
  if (parent.children.delete(name)) parent.childBytes -= name.length + 1;
}

/** The committed tree. */
export class Store implements NodeStore {
  private readonly nodes = new Map<string, XsNode>();
  private readonly owned = new Map<number, number>();
  /** Global generation counter; also stamps transaction starts. */
  generation = 0;
  /** Paths set or removed since the live state last took them (live-state.ts); null: not kept. */
  changes: Set<string> | null = null;

  get(path: string): XsNode | undefined {
    return this.nodes.get(path);
  }

  set(path: string, node: XsNode): void {
    const old = this.nodes.get(path);
    const owner = node.perms[0]?.id ?? 0;
    // `old` may be `node` itself with its perms swapped in place: acctOwner still says whom
    // it was counted under.
    const prev = old?.acctOwner;
    if (prev === undefined) this.bumpOwned(owner, 1);
    else if (prev !== owner) {
      this.bumpOwned(prev, -1);
      this.bumpOwned(owner, 1);
    }
    node.acctOwner = owner;
    node.generation = ++this.generation;
    this.nodes.set(path, node);
    this.changes?.add(path);
  }

  remove(path: string): void {
    const old = this.nodes.get(path);
    if (!old) return;
    this.nodes.delete(path);
    if (old.acctOwner !== undefined) this.bumpOwned(old.acctOwner, -1);
    this.generation++;
    this.changes?.add(path);
  }

  ownedBy(domid: number): number {
    return this.owned.get(domid) ?? 0;
  }

  /** Every path in the store (for release-time sweeps; not a hot path). */
  paths(): IterableIterator<string> {
    return this.nodes.keys();
  }

  get size(): number {
    return this.nodes.size;
  }

  private bumpOwned(domid: number, delta: number): void {
    const n = (this.owned.get(domid) ?? 0) + delta;
    if (n > 0) this.owned.set(domid, n);
    else this.owned.delete(domid);
  }
}
