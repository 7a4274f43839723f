// Node permissions as xenstored evaluates them (C perm_for_conn): the first entry names the
// OWNER, who has full access, and its letter is what everyone not listed gets. Later entries
// grant specific domains. Privileged connections (dom0, socket clients) bypass all checks; a
// connection with a SET_TARGET target also acts with its target's rights.
import { formatPerm, parsePerm, type XsAccess } from '../../drivers/xenstore/xs-wire.js';

export const PERM_NONE = 0;
export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_OWNER = 8;
const ALL = PERM_READ | PERM_WRITE | PERM_OWNER;

export interface NodePerm {
  id: number;
  access: XsAccess;
  /**
   * The domain this entry names was released after the entry was written. Like Xen's
   * XS_PERM_IGNORE it stays visible in GET_PERMS but grants nothing, so a new domain reusing
   * the domid does not inherit the old one's rights.
   */
  ignore?: boolean;
}

/** Who is asking. */
export interface Requester {
  domid: number;
  privileged: boolean;
  /** Set by SET_TARGET: this connection also acts as that domain (a stub domain's guest). */
  target?: number;
}

export function accessBits(a: XsAccess): number {
  switch (a) {
    case 'r':
      return PERM_READ;
    case 'w':
      return PERM_WRITE;
    case 'b':
      return PERM_READ | PERM_WRITE;
    default:
      return PERM_NONE;
  }
}

/** The rights `req` has on a node with permission list `perms`. */
export function permFor(req: Requester, perms: readonly NodePerm[]): number {
  if (req.privileged) return ALL;
  if (perms.length === 0) return PERM_NONE; // cannot happen; fail closed
  const owner = perms[0]!;
  if (owner.id === req.domid || (req.target !== undefined && owner.id === req.target)) return ALL;
  for (let i = 1; i < perms.length; i++) {
    const p = perms[i]!;
    if (!p.ignore && (p.id === req.domid || (req.target !== undefined && p.id === req.target))) {
      return accessBits(p.access);
    }
  }
  return accessBits(owner.access);
}

/** Parse SET_PERMS strings; null if any is malformed. */
export function parsePermList(strs: readonly string[]): NodePerm[] | null {
  const out: NodePerm[] = [];
  for (const s of strs) {
    const p = parsePerm(s);
    if (!p) return null;
    out.push({ id: p.id, access: p.access });
  }
  return out;
}

export function permListToStrings(perms: readonly NodePerm[]): string[] {
  return perms.map((p) => formatPerm(p));
}

/** dom0 owns it, nobody else may look: the permissions of xenstored's initial nodes. */
export const DOM0_ONLY: readonly NodePerm[] = Object.freeze([Object.freeze({ id: 0, access: 'n' as const })]);
