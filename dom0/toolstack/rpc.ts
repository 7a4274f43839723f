// The toolstack's control socket: `xl` sends one JSON request per line and reads one JSON
// reply per line (the role libxl's API plays in Xen). Control plane only.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

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

const MAX_LINE = 1 << 20;

/** One request line: a JSON object with a string `cmd` and, if any, an object `args`. */
function parseRequest(line: string): RpcRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('request is not JSON');
  }
  const r = v as Partial<RpcRequest> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error('request is not a JSON object');
  if (typeof r.cmd !== 'string') throw new Error('request has no string "cmd"');
  const args = r.args ?? {};
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error('request "args" is not an object');
  return { id: typeof r.id === 'number' ? r.id : 0, cmd: r.cmd, args };
}

export function serveRpc(path: string, handle: (cmd: string, args: Record<string, unknown>) => Promise<unknown>): Server {
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true });
  const server = createServer((sock: Socket) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) return sock.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: RpcRequest;
        try {
          req = parseRequest(line);
        } catch (e) {
          sock.write(JSON.stringify({ id: 0, error: { code: 'EINVAL', message: (e as Error).message } }) + '\n');
          continue;
        }
        handle(req.cmd, req.args).then(
          (result) => sock.writable && sock.write(JSON.stringify({ id: req.id, result: result ?? null }) + '\n'),
          (e: unknown) => {
            const code = e instanceof ToolstackError ? e.code : ((e as any)?.code ?? 'EFAULT');
            if (sock.writable) sock.write(JSON.stringify({ id: req.id, error: { code, message: (e as Error).message } }) + '\n');
          },
        );
      }
    });
    sock.on('error', () => {});
  });
  server.listen(path);
  return server;
}

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
