// Path rules of docs/misc/xenstore.txt and C xenstored's canonicalize(): characters
// [A-Za-z0-9-/_@], no trailing or doubled slash, relative paths resolved under the caller's
// /local/domain/<domid>, lengths bounded. Special paths (@introduceDomain...) only where the
// operation allows them.
import { XENSTORE_ABS_PATH_MAX, XsError } from '../../drivers/xenstore/xs-wire.js';
import type { Requester } from './perms.js';

const VALID = /^[A-Za-z0-9\-/_@]*$/;
const LOCAL_DOMAIN = /^\/local\/domain\/(\d{1,5})\//;

export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

/**
 * Resolve a path from the wire to its canonical absolute form, or throw EINVAL.
 * @param pathMax relative-part limit applied to unprivileged callers (C's path-max quota).
 */
export function canonicalize(raw: string, req: Requester, allowSpecial: boolean, pathMax: number): string {
  if (!VALID.test(raw) || (raw[0] === '@' && !allowSpecial)) {
    throw new XsError('EINVAL', `invalid path ${JSON.stringify(raw.slice(0, 64))}`);
  }
  const name = raw[0] === '/' || raw[0] === '@' ? raw : `${domainPath(req.domid)}/${raw}`;
  if ((name.length > 1 && name.endsWith('/')) || name.includes('//')) {
    throw new XsError('EINVAL', `invalid path ${JSON.stringify(name.slice(0, 64))}`);
  }
  if (name.length > XENSTORE_ABS_PATH_MAX) throw new XsError('EINVAL', 'path too long');
  if (!req.privileged) {
    // Like C: a domain's own prefix does not count against its path-length quota.
    const m = LOCAL_DOMAIN.exec(name);
    const localOff = m ? m[0].length : 0;
    if (name.length - localOff > pathMax) throw new XsError('EINVAL', 'path too long');
  }
  return name;
}

/** Parent of a canonical path; "/" for top-level and special paths (C get_parent). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

/** Last component of a canonical path other than "/". */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** Xen's is_child: is `child` equal to `parent` or below it? Everything is below "/". */
export function isChild(child: string, parent: string): boolean {
  if (parent === '/') return true;
  if (!child.startsWith(parent)) return false;
  return child.length === parent.length || child.charCodeAt(parent.length) === 47; // '/'
}
