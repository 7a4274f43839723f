// The node operations behind READ, WRITE, MKDIR, RM, DIRECTORY, GET_PERMS and SET_PERMS,
// written once against NodeStore so they run the same on the committed tree and inside a
// transaction. Semantics follow C xenstored (tools/xenstored/core.c): permission errors that
// must not leak whether a node exists, parents created on WRITE, owner-only SET_PERMS,
// quotas for unprivileged callers only.
import { XsError } from '../../drivers/xenstore/xs-wire.js';
import { baseName, childPath, parentOf } from './paths.js';
import { PERM_OWNER, PERM_READ, PERM_WRITE, permFor, type NodePerm, type Requester } from './perms.js';
import { nodeAccountedSize, type Quotas } from './quota.js';
import { addChild, newNode, removeChild, type NodeStore, type XsNode } from './store.js';

export interface OpContext {
  store: NodeStore;
  req: Requester;
  quotas: Quotas;
  /** A node changed: fire watches now, or queue them until commit inside a transaction. */
  changed(path: string, exact: boolean, node: XsNode | undefined, oldPerms?: readonly NodePerm[]): void;
}

const EMPTY = new Uint8Array(0);

/**
 * The node at a canonical path if `req` holds `perm` on it. Otherwise EACCES, or ENOENT when
 * it does not exist and the nearest existing ancestor would grant `perm` (so a domain cannot
 * probe for nodes it may not see: C's errno_from_parents).
 */
export function getChecked(ctx: OpContext, path: string, perm: number): XsNode {
  const node = ctx.store.get(path);
  if (node) {
    if ((permFor(ctx.req, node.perms) & perm) === perm) return node;
    throw new XsError('EACCES', `no access to ${path}`);
  }
  if (ctx.req.privileged) throw new XsError('ENOENT', `${path} does not exist`);
  let p = path;
  while (p !== '/') {
    p = parentOf(p);
    const anc = ctx.store.get(p);
    if (anc) {
      if (permFor(ctx.req, anc.perms) & perm) throw new XsError('ENOENT', `${path} does not exist`);
      break;
    }
  }
  throw new XsError('EACCES', `no access to ${path}`);
}

export function readValue(ctx: OpContext, path: string): Uint8Array {
  return getChecked(ctx, path, PERM_READ).value;
}

export function listChildren(ctx: OpContext, path: string): Set<string> {
  return getChecked(ctx, path, PERM_READ).children;
}

export function getPerms(ctx: OpContext, path: string): readonly NodePerm[] {
  return getChecked(ctx, path, PERM_READ).perms;
}

export function writeValue(ctx: OpContext, path: string, value: Uint8Array): void {
  let node: XsNode | undefined;
  try {
    node = getChecked(ctx, path, PERM_WRITE);
  } catch (e) {
    if ((e as XsError).code !== 'ENOENT') throw e;
  }
  if (node) {
    checkSize(ctx, value.length, node.perms.length, node.childBytes);
    node.value = value;
    ctx.store.set(path, node);
  } else {
    node = createNode(ctx, path, value);
  }
  ctx.changed(path, false, node);
}

export function makeDir(ctx: OpContext, path: string): void {
  try {
    getChecked(ctx, path, PERM_WRITE);
    return; // already there: nothing changes, no event (C do_mkdir)
  } catch (e) {
    if ((e as XsError).code !== 'ENOENT') throw e;
  }
  const node = createNode(ctx, path, EMPTY);
  ctx.changed(path, false, node);
}

/** Recursive removal. Removing a missing node is fine if its parent exists (C do_rm). */
export function removeTree(ctx: OpContext, path: string): void {
  try {
    getChecked(ctx, path, PERM_WRITE);
  } catch (e) {
    if ((e as XsError).code !== 'ENOENT') throw e;
    if (ctx.store.get(parentOf(path))) return;
    throw e;
  }
  if (path === '/' || path[0] === '@') throw new XsError('EINVAL', `cannot remove ${path}`);
  const parent = ctx.store.get(parentOf(path));
  if (!parent) throw new XsError('EINVAL', `parent of ${path} missing`);
  // Visit the whole subtree before changing anything: inside a transaction a visit can fail
  // (too many nodes touched), and a refused RM must leave no half-removed tree behind.
  const doomed: [string, XsNode][] = [];
  collectPostOrder(ctx.store, path, doomed);
  for (const [p, node] of doomed) {
    // The removed root fires recursively (watchers above it hear of it); nodes below fire only
    // watches set exactly on them, as C's delnode_sub does. Fired while the node's
    // permissions can still be seen.
    ctx.changed(p, p !== path, node);
    ctx.store.remove(p);
  }
  removeChild(parent, baseName(path));
  ctx.store.set(parentOf(path), parent);
}

function collectPostOrder(store: NodeStore, path: string, out: [string, XsNode][]): void {
  const node = store.get(path);
  if (!node) return;
  for (const child of node.children) collectPostOrder(store, childPath(path, child), out);
  out.push([path, node]);
}

export function setPerms(ctx: OpContext, path: string, perms: NodePerm[]): void {
  if (perms.length === 0) throw new XsError('EINVAL', 'empty permission list');
  if (!ctx.req.privileged && perms.length > ctx.quotas.perms) {
    throw new XsError('ENOSPC', `more than ${ctx.quotas.perms} permissions`);
  }
  const owner = perms[0]!;
  if (owner.ignore) throw new XsError('ENOENT', `owner domain ${owner.id} does not exist`);
  const node = getChecked(ctx, path, PERM_WRITE | PERM_OWNER);
  if (!ctx.req.privileged && owner.id !== node.perms[0]!.id) {
    throw new XsError('EPERM', 'only dom0 may change the owner of a node');
  }
  checkSize(ctx, node.value.length, perms.length, node.childBytes);
  const old = node.perms;
  node.perms = perms;
  ctx.store.set(path, node);
  ctx.changed(path, false, node, old);
}

/**
 * Create `path` and any missing ancestors (C construct_node/create_node). New nodes inherit
 * their parent's permissions; an unprivileged creator becomes the owner. All quota checks
 * happen before anything is modified, so a refused create leaves the tree untouched.
 */
function createNode(ctx: OpContext, path: string, value: Uint8Array): XsNode {
  const missing: string[] = [path];
  let parentPath = parentOf(path);
  let parent = ctx.store.get(parentPath);
  while (!parent) {
    if (parentPath === '/') throw new XsError('EIO', 'root node missing');
    missing.push(parentPath);
    parentPath = parentOf(parentPath);
    parent = ctx.store.get(parentPath);
  }
  const { req, quotas } = ctx;
  let perms = parent.perms;
  if (!req.privileged) {
    if (ctx.store.ownedBy(req.domid) + missing.length > quotas.nodes) {
      throw new XsError('ENOSPC', `domain ${req.domid} would own more than ${quotas.nodes} nodes`);
    }
    perms = [{ ...perms[0]!, id: req.domid }, ...perms.slice(1)];
    const topName = baseName(missing[missing.length - 1]!);
    checkSize(ctx, parent.value.length, parent.perms.length, parent.childBytes + topName.length + 1);
    for (let i = missing.length - 1; i >= 1; i--) {
      checkSize(ctx, 0, perms.length, baseName(missing[i - 1]!).length + 1);
    }
    checkSize(ctx, value.length, perms.length, 0);
  }
  let node!: XsNode;
  for (let i = missing.length - 1; i >= 0; i--) {
    const p = missing[i]!;
    node = newNode(i === 0 ? value : EMPTY, perms);
    addChild(parent, baseName(p));
    ctx.store.set(parentPath, parent);
    ctx.store.set(p, node);
    parent = node;
    parentPath = p;
  }
  markCreated(ctx.store);
  return node;
}

function markCreated(store: NodeStore): void {
  if ('createdNodes' in store) (store as { createdNodes: boolean }).createdNodes = true;
}

function checkSize(ctx: OpContext, valueLen: number, nPerms: number, childBytes: number): void {
  if (ctx.req.privileged) return;
  const size = nodeAccountedSize(valueLen, nPerms, childBytes);
  if (size > ctx.quotas.nodeSize) {
    throw new XsError('ENOSPC', `node would be ${size} bytes (limit ${ctx.quotas.nodeSize})`);
  }
}
