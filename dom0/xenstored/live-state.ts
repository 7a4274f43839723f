// xenstored's live state: what a successor needs to carry on when xenstored (with the rest of
// dom0) dies, as Xen's xenstored live update hands its state to the new binary. The tree
// (nodes, values, permissions, children in order), and for each guest's ring connection its
// watches, where it has read and written its ring, output not yet written, a half-read
// request, and which transactions were open (they are lost: the guest gets EAGAIN and
// retries, as after a live update that cannot keep them).
//
// It is saved before the guest can see the effect of anything (xenstored.ts commit()): a
// reply, a watch event, or bytes taken off its ring. A state file written with write + rename
// is whole or absent: one kill -9 cannot leave half of one. Connections of dom0's own
// processes (toolstack, backends, xl's socket) are not kept: they die with dom0.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { XsHeader } from '../../drivers/xenstore/xs-wire.js';
import type { NodePerm } from './perms.js';
import { addChild, newNode, type Store } from './store.js';

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
  generation: number;
  nodes: SavedNode[];
  rings: SavedRing[];
}

/** The tree as saved (the part that changes least: callers cache it per generation). */
export function saveNodes(store: Store): string {
  const nodes: SavedNode[] = [];
  for (const path of store.paths()) {
    const n = store.get(path)!;
    nodes.push({ path, value: Buffer.from(n.value).toString('base64'), perms: n.perms, children: [...n.children] });
  }
  return JSON.stringify(nodes);
}

/** Write the state file whole: a reader finds the previous one or this one. */
export function writeLiveState(path: string, generation: number, nodesJson: string, rings: SavedRing[]): void {
  const tmp = `${path}.new`;
  writeFileSync(tmp, `{"version":1,"generation":${generation},"rings":${JSON.stringify(rings)},"nodes":${nodesJson}}`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Read a state file, or undefined if there is none; throws on one that does not parse. */
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
