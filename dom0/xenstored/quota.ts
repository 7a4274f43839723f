// Per-domain limits, with C xenstored's defaults (tools/xenstored/domain.c hard_quotas). They
// bind unprivileged domains only; dom0 and socket clients are exempt, as in Xen. What each
// breach answers also follows C xenstored: ENOSPC for nodes, node size, permissions and
// transactions; E2BIG for watches; EINVAL for an over-long path. EQUOTA is oxenstored's word
// and is never sent. The outstanding-request limit is flow control, not an error: xenstored
// stops reading a domain's ring while that many replies wait to be written.

export interface Quotas {
  /** Nodes a domain may own. */
  nodes: number;
  /** Watches per connection. */
  watches: number;
  /** Replies queued for a domain before its ring is no longer read. */
  outstanding: number;
  /** Total node size: 16-byte header + 8 per permission + value + child names (C's node-size). */
  nodeSize: number;
  /** Open transactions per connection. */
  transactions: number;
  /** Entries in one node's permission list. */
  perms: number;
  /** Path length, not counting a leading /local/domain/<domid>/. */
  pathMax: number;
  /** Distinct nodes one transaction may touch. */
  transactionNodes: number;
}

export const DEFAULT_QUOTAS: Readonly<Quotas> = Object.freeze({
  nodes: 1000,
  watches: 128,
  outstanding: 20,
  nodeSize: 2048,
  transactions: 10,
  perms: 5,
  pathMax: 2048,
  transactionNodes: 1024,
});

/** Bytes a node is charged for, computed as C's calc_node_acc_size() does. */
export function nodeAccountedSize(valueLen: number, nPerms: number, childBytes: number): number {
  return 16 + 8 * nPerms + valueLen + childBytes;
}
