// xenstored: the store, its watches and its connections (unix socket, domain rings, in-process
// dom0 clients), plus domain introduction and release. Protocol handling lives in
// requests.ts; this class owns lifetimes.
import type { Server } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import type { Transport } from '../../drivers/xenstore/transport.js';
import { XsError, type XsHeader } from '../../drivers/xenstore/xs-wire.js';
import type { Connection, ConnectionHost } from './connection.js';
import { LocalConnection } from './local-transport.js';
import { makeDir, removeTree, type OpContext } from './ops.js';
import { childPath, domainPath } from './paths.js';
import { DOM0_ONLY, type Requester } from './perms.js';
import { DEFAULT_QUOTAS, type Quotas } from './quota.js';
import { handleRequest, type ServerCore } from './requests.js';
import { RingConnection, type DomainRing } from './ring-connection.js';
import { SocketConnection, listenUnix } from './socket-server.js';
import { Store, newNode } from './store.js';
import { WatchTable } from './watches.js';
import { LiveStateFile, restoreNodes, type LiveState, type SavedRing } from './live-state.js';

/** A domain's ring page as the embedder (dom0) maps it for a wire INTRODUCE. */
export interface MappedDomainRing extends DomainRing {
  /** xenstored passes the function to call whenever the domain's event channel fires. */
  onEventRegister(cb: () => void): void;
  /** Called when the domain is released or re-introduced. */
  unmap?(): void;
}

/**
 * INTRODUCE <domid> <mfn> <port> from the wire: map the guest's xenstore page (Xen maps the
 * GNTTAB_RESERVED_XENSTORE grant; `mfn` is what the toolstack sent) and bind `port`.
 * Return undefined when that is impossible; the request then fails with EINVAL.
 */
export type MapDomainRing = (domid: number, mfn: number, port: number) => MappedDomainRing | undefined;

export interface XenstoredOptions {
  quotas?: Partial<Quotas>;
  /** XSA-349: a connection with more output than this waiting is dropped. Default 1 MiB. */
  maxOutputBytes?: number;
  /** One line per event worth a log (bad input, dropped connections). Default: stderr. */
  log?: (line: string) => void;
  mapDomainRing?: MapDomainRing;
  /**
   * Does this domain exist? Permission entries naming domains that do not are kept but
   * ignored (Xen's XS_PERM_IGNORE). Default: every domid exists.
   */
  domainExists?: (domid: number) => boolean;
  /**
   * Keep a live state in this file (live-state.ts) so that a successor can carry on where this
   * xenstored dies; `restore` is the state a predecessor left, to start from.
   */
  statePath?: string;
  restore?: LiveState;
}

interface DomainEntry {
  conn: RingConnection;
  unmap?: () => void;
}

const PRIVILEGED: Requester = { domid: 0, privileged: true };
const SPECIAL = ['@introduceDomain', '@releaseDomain'] as const;

export class Xenstored implements ServerCore, ConnectionHost {
  readonly store = new Store();
  readonly watches = new WatchTable();
  readonly quotas: Quotas;
  private readonly maxOutputBytes: number;
  private readonly logLine: (line: string) => void;
  private readonly mapDomainRing?: MapDomainRing;
  private readonly exists?: (domid: number) => boolean;
  private readonly connections = new Set<Connection>();
  private readonly domains = new Map<number, DomainEntry>();
  private readonly servers: { server: Server; path: string; ino: number }[] = [];
  private busy = false;
  private readonly statePath?: string;
  readonly savesState: boolean;
  /** Rings of a predecessor's state whose domains have not been resumed yet. */
  private readonly saved = new Map<number, SavedRing>();
  private readonly liveState?: LiveStateFile;
  /** What the rings were when last saved: a request that moved none of them and changed no
   * node saves nothing, and one that changed only nodes saves only those. */
  private ringsKey = '';
  private readonly deferred: { conn: Connection; hdr: XsHeader; payload: Uint8Array }[] = [];

  constructor(opts: XenstoredOptions = {}) {
    this.quotas = { ...DEFAULT_QUOTAS, ...opts.quotas };
    this.maxOutputBytes = opts.maxOutputBytes ?? 1 << 20;
    this.logLine = opts.log ?? ((line) => process.stderr.write(`xenstored: ${line}\n`));
    this.mapDomainRing = opts.mapDomainRing;
    this.exists = opts.domainExists;
    this.statePath = opts.statePath;
    this.savesState = opts.statePath !== undefined;
    if (opts.restore) {
      restoreNodes(this.store, opts.restore);
      for (const r of opts.restore.rings) this.saved.set(r.domid, r);
    } else {
      this.initialTree();
    }
    if (opts.statePath !== undefined) {
      this.liveState = new LiveStateFile(opts.statePath);
      this.liveState.snapshot(this.store, this.ringsJson());
      this.ringsKey = `${this.saved.size}`;
    }
  }

  /** Domains of the restored state not resumed yet. */
  savedDomains(): number[] {
    return [...this.saved.keys()];
  }

  /**
   * Carry on serving a domain's ring from the restored state: no reset, no @introduceDomain
   * (it never went away), its watches back. Undefined when the state has no such domain.
   */
  resumeDomain(domid: number, ring: DomainRing, unmap?: () => void): { onEvent(): void } | undefined {
    const saved = this.saved.get(domid);
    if (!saved || this.domains.has(domid)) return undefined;
    this.saved.delete(domid);
    const conn = new RingConnection(this, domid, ring, this.quotas.outstanding, this.maxOutputBytes);
    conn.resume(saved);
    for (const w of saved.watches) this.watches.add(conn, w.path, w.token, w.prefixLen, Infinity);
    this.domains.set(domid, { conn, unmap });
    this.connections.add(conn);
    this.commit();
    queueMicrotask(() => conn.onEvent());
    return { onEvent: () => conn.onEvent() };
  }

  /** Every ring's saved state: the restored ones not resumed yet, and the live ones. */
  private ringsJson(): string {
    const rings: SavedRing[] = [...this.saved.values()];
    for (const d of this.domains.values()) {
      const r = d.conn.save();
      r.watches = this.watches.of(d.conn).map((w) => ({ path: w.path, token: w.token, prefixLen: w.prefixLen }));
      rings.push(r);
    }
    return JSON.stringify(rings);
  }

  /**
   * Save the live state, then let every guest see what was held back for it (replies,
   * events, consumed requests). Called after each request and each change made outside one.
   */
  commit(): void {
    if (!this.liveState || this.busy) return;
    let key = `${this.saved.size}`;
    for (const [domid, d] of this.domains) key += `|${domid}:${d.conn.saveKey()},${this.watches.count(d.conn)}`;
    const ringsMoved = key !== this.ringsKey;
    if (ringsMoved || this.store.changes?.size !== 0) {
      try {
        this.liveState.append(this.store, ringsMoved ? this.ringsJson() : null, () => this.ringsJson());
        this.ringsKey = key;
      } catch (e) {
        this.log(`cannot save the live state to ${this.statePath}: ${(e as Error).message}`);
      }
    }
    for (const d of this.domains.values()) d.conn.committed();
  }

  /** Serve the unix socket at `path` (every socket client is privileged dom0). */
  async listen(path: string): Promise<void> {
    const server = await listenUnix(path, (sock) => {
      const conn = new SocketConnection(this, sock, this.maxOutputBytes);
      this.connections.add(conn);
    });
    this.servers.push({ server, path, ino: lstatSync(path).ino });
  }

  /** Stop listening, disconnect everyone. Domains are not released (their nodes stay).
   * `discardState`: a clean stop, the live state goes too. */
  async close(discardState = false): Promise<void> {
    const servers = this.servers.splice(0);
    this.liveState?.close(discardState);
    for (const c of [...this.connections]) this.connectionClosed(c);
    for (const d of this.domains.values()) d.unmap?.();
    this.domains.clear();
    await Promise.all(
      servers.map(
        ({ server, path, ino }) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            try {
              // Only our own socket: a successor may already have replaced it.
              if (lstatSync(path).ino === ino) unlinkSync(path);
            } catch {
              // already gone
            }
          }),
      ),
    );
  }

  /** An in-process client connection: privileged for dom0, else acting as domain `domid`. */
  connectLocal(domid = 0): Transport {
    const conn = new LocalConnection(this, domid, this.maxOutputBytes);
    this.connections.add(conn);
    return conn.transport();
  }

  /**
   * Start serving a domain's ring. Fires @introduceDomain for a new domain; introducing an
   * already-introduced domain resets its connection (watches, transactions, both rings) as
   * C xenstored does for a repeated INTRODUCE. The caller wires the domain's event channel
   * to the returned onEvent().
   */
  introduceDomain(domid: number, ring: DomainRing, unmap?: () => void): { onEvent(): void } {
    const old = this.domains.get(domid);
    const conn = new RingConnection(this, domid, ring, this.quotas.outstanding, this.maxOutputBytes);
    if (old) {
      this.connectionClosed(old.conn);
      if (old.unmap && old.unmap !== unmap) old.unmap();
      conn.resetRing();
    }
    this.domains.set(domid, { conn, unmap });
    this.connections.add(conn);
    if (!old) this.fireSpecial('@introduceDomain');
    this.saved.delete(domid);
    this.commit();
    // The guest may have queued requests before it was introduced: serve them, but not from
    // inside our caller (which may itself be handling a request).
    queueMicrotask(() => conn.onEvent());
    return { onEvent: () => conn.onEvent() };
  }

  /**
   * Forget a domain: drop its connection, watches and transactions, remove
   * /local/domain/<domid> and every node it owns, disarm permission entries naming it, and
   * fire @releaseDomain if it was introduced. Returns whether it was introduced.
   */
  releaseDomain(domid: number): boolean {
    const d = this.domains.get(domid);
    if (d) {
      // Its own watches go first, so removing its nodes does not queue events for it (C).
      this.connectionClosed(d.conn);
      d.unmap?.();
      this.domains.delete(domid);
    }
    this.saved.delete(domid);
    if (domid !== 0) this.removeDomainNodes(domid);
    if (d) this.fireSpecial('@releaseDomain');
    this.commit();
    return d !== undefined;
  }

  isDomainIntroduced(domid: number): boolean {
    return domid === 0 || this.domains.has(domid);
  }

  // ---- ConnectionHost ----

  handle(conn: Connection, hdr: XsHeader, payload: Uint8Array): void {
    // One request at a time, start to finish, like C's single-threaded loop: a request that
    // arrives while another is being handled (an embedder signalling synchronously from
    // inside a watch event) waits its turn instead of interleaving with it.
    if (this.busy) {
      this.deferred.push({ conn, hdr, payload: payload.slice() });
      return;
    }
    this.busy = true;
    try {
      handleRequest(this, conn, hdr, payload);
      for (let d = this.deferred.shift(); d; d = this.deferred.shift()) {
        if (!d.conn.closed) handleRequest(this, d.conn, d.hdr, d.payload);
      }
    } finally {
      this.busy = false;
    }
    this.commit();
  }

  dropConnection(conn: Connection, why: string, ringError?: number): void {
    this.log(`${conn.label}: dropping connection: ${why}`);
    this.resetConnection(conn);
    conn.abort(ringError);
    // A domain stays introduced after its ring is stopped, so @releaseDomain still fires.
    if (!(conn instanceof RingConnection)) this.connections.delete(conn);
  }

  connectionClosed(conn: Connection): void {
    this.resetConnection(conn);
    conn.shutdown();
    this.connections.delete(conn);
  }

  log(line: string): void {
    try {
      this.logLine(line);
    } catch {
      // a broken logger must not break the server
    }
  }

  // ---- ServerCore ----

  domainExists(domid: number): boolean {
    return this.exists ? this.exists(domid) : true;
  }

  resetConnection(conn: Connection): void {
    this.watches.removeAll(conn);
    conn.transactions.clear();
    conn.abortedTx.clear();
  }

  introduceFromWire(domid: number, mfn: number, port: number): void {
    if (!this.mapDomainRing) {
      this.log(`INTRODUCE of domain ${domid}: no mapDomainRing hook configured`);
      throw new XsError('EINVAL', 'cannot map domain rings');
    }
    const mapped = this.mapDomainRing(domid, mfn, port);
    if (!mapped) throw new XsError('EINVAL', `cannot map the ring of domain ${domid}`);
    const h = this.introduceDomain(domid, mapped, mapped.unmap?.bind(mapped));
    mapped.onEventRegister(() => h.onEvent());
  }

  releaseFromWire(domid: number): void {
    if (!this.domains.has(domid)) throw new XsError('ENOENT', `domain ${domid} not introduced`);
    this.releaseDomain(domid);
  }

  setTarget(domid: number, target: number): void {
    const d = this.domains.get(domid);
    if (!d || !this.domains.has(target)) throw new XsError('ENOENT', 'both domains must be introduced');
    d.conn.target = target;
  }

  control(conn: Connection, args: string[]): string {
    const [cmd, ...rest] = args;
    switch (cmd) {
      case 'check':
        return 'OK';
      case 'print':
        if (rest.length !== 1) throw new XsError('EINVAL');
        this.log(`control: ${rest[0]}`);
        return 'OK';
      case 'help':
        return ['check', 'print <string>', 'quota [set <name> <val>|<domid>]', 'help']
          .map((l) => `${l}\n`)
          .join('');
      case 'quota':
        return this.controlQuota(rest);
      case 'log':
      case 'logfile':
      case 'memreport':
      case 'live-update':
      case 'quota-soft':
        throw new XsError('ENOSYS', `control ${cmd} not supported`);
      default:
        this.log(`${conn.label}: unknown control command ${JSON.stringify(cmd)}`);
        throw new XsError('EINVAL');
    }
  }

  // ---- internals ----

  private controlQuota(rest: string[]): string {
    const names: [string, keyof Quotas][] = [
      ['nodes', 'nodes'], ['watches', 'watches'], ['outstanding', 'outstanding'],
      ['transactions', 'transactions'], ['transaction-nodes', 'transactionNodes'],
      ['node-permissions', 'perms'], ['path-max', 'pathMax'], ['node-size', 'nodeSize'],
    ];
    if (rest.length === 0) {
      return `Quota settings:\n${names.map(([n, k]) => `${n.padEnd(17)}: ${String(this.quotas[k]).padStart(8)}\n`).join('')}`;
    }
    if (rest[0] === 'set') {
      const q = names.find(([n]) => n === rest[1]);
      const v = Number(rest[2]);
      if (rest.length !== 3 || !q || !Number.isInteger(v) || v < 1) throw new XsError('EINVAL');
      this.quotas[q[1]] = v;
      return 'OK';
    }
    const domid = Number(rest[0]);
    if (rest.length !== 1 || !Number.isInteger(domid)) throw new XsError('EINVAL');
    if (!this.isDomainIntroduced(domid)) throw new XsError('ENOENT');
    return `Domain ${domid}:\nnodes            : ${String(this.store.ownedBy(domid)).padStart(8)}\n`;
  }

  private privilegedCtx(): OpContext {
    return {
      store: this.store,
      req: PRIVILEGED,
      quotas: this.quotas,
      changed: (p, exact, node, old) => this.watches.fire(this.store, p, exact, node, old),
    };
  }

  /** The tree a fresh xenstored and dom0's toolstack start from; everything dom0-only. */
  private initialTree(): void {
    this.store.set('/', newNode(new Uint8Array(0), DOM0_ONLY));
    for (const s of SPECIAL) this.store.set(s, newNode(new Uint8Array(0), DOM0_ONLY));
    const ctx = this.privilegedCtx();
    for (const p of ['/local/domain/0', '/tool/xenstored', '/vm']) makeDir(ctx, p);
  }

  private fireSpecial(name: (typeof SPECIAL)[number]): void {
    this.watches.fire(this.store, name, true, this.store.get(name));
  }

  private removeDomainNodes(domid: number): void {
    const ctx = this.privilegedCtx();
    const home = domainPath(domid);
    if (this.store.get(home)) removeTree(ctx, home);
    // Nodes it still owns elsewhere go too (C's domain_tree_remove): pre-order walk, and a
    // removed node's children go with it.
    if (this.store.ownedBy(domid) > 0) {
      const stack = ['/'];
      while (stack.length > 0) {
        const p = stack.pop()!;
        const n = this.store.get(p);
        if (!n) continue;
        if (p !== '/' && n.perms[0]!.id === domid) {
          removeTree(ctx, p);
          continue;
        }
        for (const c of [...n.children].reverse()) stack.push(childPath(p, c));
      }
    }
    // Entries naming it stop granting anything, so a future domain with this domid does not
    // inherit its rights. The stamp makes open transactions holding old copies conflict.
    for (const p of [...this.store.paths()]) {
      const n = this.store.get(p)!;
      if (n.perms.some((e, i) => i > 0 && e.id === domid && !e.ignore)) {
        n.perms = n.perms.map((e, i) => (i > 0 && e.id === domid ? { ...e, ignore: true } : e));
        this.store.set(p, n);
      }
    }
  }
}
