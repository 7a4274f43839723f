// The toolstack's control socket: `xl` sends one JSON request per line and reads one JSON
// reply per line (the role libxl's API plays in Xen). Control plane only. This is the server;
// the client is common/toolstack-client.ts.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ToolstackError, type RpcRequest } from '../../common/toolstack-client.js';

// The client half lives below dom0 (common/toolstack-client.ts); dom0's code reaches it here too.
export { rpcCall, ToolstackError, ToolstackUnreachable, type RpcRequest, type RpcReply } from '../../common/toolstack-client.js';

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
