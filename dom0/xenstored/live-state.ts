// xenstored's live state: what a successor needs to carry on when xenstored (with the rest of
// dom0) dies, as Xen's xenstored live update hands its state to the new binary. The tree
// (nodes, values, permissions, children in order), and for each guest's ring connection its
// watches, where it has read and written its ring, output not yet written, a half-read
// request, and which transactions were open (they are lost: the guest gets EAGAIN and
// retries, as after a live update that cannot keep them).
//
// It is saved before the guest can see the effect of anything (xenstored.ts commit()): a
// reply, a watch event, or bytes taken off its ring. Saving the whole tree each time cost
// ~4 ms a write with 500 nodes, so the state is a snapshot (`<path>`, written whole: write +
// rename) and a log (`<path>.log`) of records appended after it, one JSON line each: the
// nodes changed (or removed) since the last record, and every ring's state. A record torn by
// a kill -9 in the middle of its write(2) does not parse and is ignored: nothing of it had
// reached a guest. The log is folded into a new snapshot when it grows past 4 MiB; snapshot
// and records are numbered, so records already in the snapshot are skipped on reading.
// Connections of dom0's own processes (toolstack, backends, xl's socket) are not kept: they
// die with dom0.
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { XsHeader } from '../../drivers/xenstore/xs-wire.js';
import type { NodePerm } from './perms.js';
import { addChild, newNode, type Store, type XsNode } from './store.js';

const LOG_MAX_BYTES = 4 << 20;

export interface SavedWatch {
  path: string;
  token: string;
  prefixLen: number;
}

export interface SavedRing {
  domid: number;
  target?: number;
  watches: SavedWatch[];
  /** The ring's req_cons as saved: everything before it is in the saved state. */
  reqCons: number;
  /** The ring's rsp_prod when saved: output written after it is the front of `out`. */
  rspProd: number;
  /** Output not yet in the ring (base64), replies and events in order. */
  out: { bytes: string; eventKey?: string }[];
  /** A request read in part: its header once whole, and the bytes read so far. */
  inHdr: XsHeader | null;
  inBytes: string;
  ignored: boolean;
  openTx: number[];
  nextTxId: number;
}

interface SavedNode {
  path: string;
  value: string;
  perms: readonly NodePerm[];
  children: string[];
}

export interface LiveState {
  version: 1;
  /** Numbers the snapshot and the records after it (a log record with a lower one is older). */
  seq: number;
  generation: number;
  nodes: SavedNode[];
  rings: SavedRing[];
}

/** One appended record: nodes set (with their contents) or removed (null), the rings. */
interface LogRecord {
  seq: number;
  generation: number;
  nodes: [string, Omit<SavedNode, 'path'> | null][];
  /** null: as in the record before. */
  rings: SavedRing[] | null;
}

function saveNode(n: XsNode): Omit<SavedNode, 'path'> {
  return { value: Buffer.from(n.value).toString('base64'), perms: n.perms, children: [...n.children] };
}

/** The live state of one xenstored: a snapshot and the log after it. */
export class LiveStateFile {
  private logFd = -1;
  private logBytes = 0;
  private seq = 0;
  private closed = false;

  constructor(private readonly path: string) {}

  /** Write the whole state (and start an empty log); from then on the store's changes are
   * tracked for append(). */
  snapshot(store: Store, ringsJson: string): void {
    if (this.closed) return;
    const nodes: SavedNode[] = [];
    for (const path of store.paths()) nodes.push({ path, ...saveNode(store.get(path)!) });
    this.seq++;
    writeFileSync(`${this.path}.new`, `{"version":1,"seq":${this.seq},"generation":${store.generation},"rings":${ringsJson},"nodes":${JSON.stringify(nodes)}}`, { mode: 0o600 });
    renameSync(`${this.path}.new`, this.path);
    if (this.logFd >= 0) closeSync(this.logFd);
    this.logFd = openSync(`${this.path}.log`, 'w', 0o600);
    this.logBytes = 0;
    store.changes = new Set();
  }

  /** Append what changed since the last call, and the rings (null: as in the last record). */
  append(store: Store, ringsJson: string | null, allRings: () => string): void {
    if (this.closed) return;
    if (this.logFd < 0 || store.changes === null || this.logBytes > LOG_MAX_BYTES) return this.snapshot(store, ringsJson ?? allRings());
    const nodes: LogRecord['nodes'] = [];
    for (const p of store.changes) {
      const n = store.get(p);
      nodes.push([p, n ? saveNode(n) : null]);
    }
    store.changes.clear();
    this.seq++;
    const line = Buffer.from(`{"seq":${this.seq},"generation":${store.generation},"nodes":${JSON.stringify(nodes)},"rings":${ringsJson}}\n`);
    let off = 0;
    while (off < line.length) off += writeSync(this.logFd, line, off, line.length - off);
    this.logBytes += line.length;
  }

  /** Stop saving (xenstored closing); `remove` also deletes the files (a clean stop: no
   * successor is to carry on). */
  close(remove = false): void {
    this.closed = true;
    if (this.logFd >= 0) closeSync(this.logFd);
    this.logFd = -1;
    if (remove) for (const p of [this.path, `${this.path}.log`, `${this.path}.new`]) rmSync(p, { force: true });
  }
}

/** Read a live state (snapshot plus log), or undefined if there is none; throws on a snapshot
 * that does not parse. */
export function readLiveState(path: string): LiveState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const s = JSON.parse(text) as LiveState;
  if (s.version !== 1 || !Array.isArray(s.nodes) || !Array.isArray(s.rings)) throw new Error(`${path}: not a xenstored live state`);
  let log = '';
  try {
    log = readFileSync(`${path}.log`, 'utf8');
  } catch {
    return s;
  }
  const nodes = new Map(s.nodes.map((n) => [n.path, n]));
  for (const line of log.split('\n')) {
    let rec: LogRecord;
    try {
      rec = JSON.parse(line) as LogRecord;
    } catch {
      break; // the torn last record (or the empty line after the last one)
    }
    if (!(rec.seq > s.seq) || !Array.isArray(rec.nodes) || !(rec.rings === null || Array.isArray(rec.rings))) continue;
    for (const [p, n] of rec.nodes) {
      if (n) nodes.set(p, { path: p, ...n });
      else nodes.delete(p);
    }
    if (rec.rings) s.rings = rec.rings;
    s.seq = rec.seq;
    s.generation = Math.max(s.generation, rec.generation);
  }
  s.nodes = [...nodes.values()];
  return s;
}

/** Fill an empty store with the saved tree. */
export function restoreNodes(store: Store, state: LiveState): void {
  for (const n of state.nodes) {
    const node = newNode(new Uint8Array(Buffer.from(n.value, 'base64')), n.perms);
    for (const c of n.children) addChild(node, c);
    store.set(n.path, node);
  }
  store.generation = Math.max(store.generation, state.generation) + 1;
}
