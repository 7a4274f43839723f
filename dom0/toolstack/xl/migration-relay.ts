// xl's part in a migration: a relay between the toolstack and the other host. xl listens on a
// private unix socket, tells the toolstack where (it connects as root, on this machine), and
// copies bytes both ways between that connection and the other host's pipe (ssh's stdin and
// stdout, or our own for migrate-receive). Backpressure is the pipes' own (stream.pipe).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export async function withRelay<T>(from: Readable, to: Writable, run: (relay: string) => Promise<T>): Promise<T> {
  // The other host going away mid-stream (EPIPE) is the toolstack's to report, from its own
  // side of the relay: not a crash of xl.
  to.on('error', () => {});
  from.on('error', () => {});
  const dir = mkdtempSync(join(tmpdir(), 'xenode-migrate-'));
  const path = join(dir, 'relay.sock');
  // xl ends by process.exit when the other host's pipe breaks (EPIPE, bin/xl.ts), which skips
  // the finally below: the directory goes on exit too, or each broken migration leaves one.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  let conn: Socket | null = null;
  const server = createServer((s) => {
    if (conn) return void s.destroy(); // one connection: the toolstack's
    conn = s;
    // Connected: the path has served its purpose. Gone now, it cannot be left behind by an
    // xl that is killed mid-stream (kill -9 runs no handler).
    removeDir();
    from.pipe(s);
    s.pipe(to);
    s.on('error', () => {});
    // The toolstack is done with this migration: the other host sees the end of its input.
    s.on('end', () => to.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  try {
    return await run(path);
  } finally {
    server.close();
    if (conn) {
      from.unpipe(conn);
      (conn as Socket).destroy();
    }
    to.end();
    process.off('exit', removeDir);
    removeDir();
  }
}
