// How an XsClient reaches xenstored: whole messages (header + payload) in, whole messages out.
// Implementations: unix socket (socket-transport.ts), domain ring page (ring-transport.ts),
// and xenstored's in-process connection for dom0's own toolstack.

export interface Transport {
  /** Queue one complete message (16-byte header + payload). Never blocks. */
  send(msg: Uint8Array): void;
  /** Register the receiver of complete messages; the view may be reused after the call returns. */
  onMessage(cb: (msg: Uint8Array) => void): void;
  /** Tear the channel down; further sends are dropped. */
  close(): void;
  /** Optional: told once when the channel dies (peer closed, protocol error, close()). */
  onClose?(cb: (err?: Error) => void): void;
}
