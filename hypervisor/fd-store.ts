// Descriptors dom0 leaves with the hypervisor for one domain, so that they outlive a dom0
// that dies (systemd's fd store, FDSTORE=1, does this for services). An HVM guest's stub
// domain is a domain the hypervisor keeps, as in Xen, not part of the dom0 process: dom0
// deposits its end of the stub domain's channel, the readers of its logs, the claim on its
// uids and the guest's serial pty here; the next dom0 takes copies back and reconnects
// (dom0/stubdom-host.ts). The hypervisor only keeps them open: while it holds a copy, the
// stub domain sees no hang-up when dom0 dies. They close when dom0 removes the entry or the
// domain is destroyed, which is what then ends a stub domain whose guest went while no dom0
// ran.
import { native } from '../native/index.js';

/** Bounds: dom0 is trusted, but a leak in it must not become one here without end. */
export const FD_STORE_MAX_ENTRIES = 8;
export const FD_STORE_MAX_FDS = 8;
export const FD_STORE_MAX_META = 4096;
const NAME = /^[a-z][a-z0-9-]{0,31}$/;

export interface FdStoreEntry {
  fds: number[];
  /** What dom0 needs to make sense of the fds again (a JSON text it chose). */
  meta: string;
}

export class FdStore {
  private readonly entries = new Map<string, FdStoreEntry>();

  /** Why `name`, `fds` and `meta` cannot be stored, or null. */
  static refusal(name: unknown, fds: number[], meta: unknown): string | null {
    if (typeof name !== 'string' || !NAME.test(name)) return `fd store entry name ${JSON.stringify(String(name).slice(0, 40))} is not [a-z][a-z0-9-]{0,31}`;
    if (fds.length > FD_STORE_MAX_FDS) return `an fd store entry holds at most ${FD_STORE_MAX_FDS} fds, not ${fds.length}`;
    if (typeof meta !== 'string' || meta.length > FD_STORE_MAX_META) return `fd store meta must be a string of at most ${FD_STORE_MAX_META} characters`;
    return null;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** No room for another name (a name already there can be replaced). */
  get full(): boolean {
    return this.entries.size >= FD_STORE_MAX_ENTRIES;
  }

  /** Keep `fds` (now the store's) under `name`, replacing what was there. */
  put(name: string, fds: number[], meta: string): void {
    this.remove(name);
    this.entries.set(name, { fds, meta });
  }

  /** The entry (the store keeps its fds: sending them hands over copies). */
  get(name: string): FdStoreEntry | undefined {
    return this.entries.get(name);
  }

  remove(name: string): boolean {
    const e = this.entries.get(name);
    if (!e) return false;
    this.entries.delete(name);
    for (const fd of e.fds) native().close(fd);
    return true;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  closeAll(): void {
    for (const name of this.names()) this.remove(name);
  }
}
