// A client of the toolstack's control socket (dom0/toolstack/rpc.ts serves it): one JSON
// request per line, one JSON reply per line. Here, below dom0, because the host-side tools
// that start and stop the services (common/service.ts) ask the toolstack too.
import { createConnection } from 'node:net';

export interface RpcRequest {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}
export type RpcReply = { id: number; result: unknown } | { id: number; error: { code: string; message: string } };

export class ToolstackError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The control socket could not be reached at all (as opposed to an error the toolstack
 * answered with, which may carry any code, ENOENT included). */
export class ToolstackUnreachable extends ToolstackError {}

/** One request, one reply. Throws ToolstackError; ToolstackUnreachable when no toolstack answers the socket. */
export function rpcCall<T = unknown>(path: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 0): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0) timer = setTimeout(() => (sock.destroy(), reject(new ToolstackError('ETIMEDOUT', `${cmd} timed out`))), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ id: 1, cmd, args }) + '\n'));
    sock.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      let reply: RpcReply;
      try {
        reply = JSON.parse(buf.slice(0, nl)) as RpcReply;
      } catch {
        return reject(new ToolstackError('EPROTO', `the toolstack's reply to ${cmd} is not JSON`));
      }
      if ('error' in reply) reject(new ToolstackError(reply.error.code, reply.error.message));
      else resolve(reply.result as T);
    });
    // Closed before a whole reply (the toolstack died mid-request): say so rather than let xl
    // end silently with its promise never settled.
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new ToolstackError('ECONNRESET', `the toolstack closed the connection before answering ${cmd}`));
    });
    let connected = false;
    sock.on('connect', () => (connected = true));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connected ? new ToolstackError(e.code ?? 'EIO', e.message) : new ToolstackUnreachable(e.code ?? 'EIO', e.message));
    });
  });
}
