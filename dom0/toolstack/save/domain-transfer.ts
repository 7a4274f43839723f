// The toolstack's save, restore and migrate (docs/kvm.md, "Save, restore, migration"): what
// `xl save`, `xl restore`, `xl migrate` and `xl migrate-receive` ask of dom0.
//
// Migration runs over one byte stream in each direction that xl relays to the other host
// (through ssh, or the -s command), with a handshake around the image, as Xen's:
//
//   receiver -> sender   "xl migration receiver ready, send binary domain data"
//   sender -> receiver   the image (live: pre-copy rounds, then the stop-and-copy)
//   receiver -> sender   "restored" (the domain exists, paused)  |  "error: <why>"
//   sender -> receiver   "go"
//   receiver -> sender   "running"     then the sender destroys its copy
//
// Until "running" the guest is the sender's: any failure (the receiver refuses, dies, has no
// room, the connection breaks) resumes it there.
import { rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { BuildSpec } from '../build-spec.js';
import type { Toolstack } from '../toolstack.js';
import { ToolstackError } from '../rpc.js';
import { FileSink, FileSource, SocketChannel, type ByteSource } from './byte-channel.js';
import { ImageReader } from './image-reader.js';
import { ImageWriter, checkSaveable, type LiveOptions, type SaveStats } from './image-writer.js';
import { StreamError } from './save-stream.js';

export const RECEIVER_BANNER = 'xl migration receiver ready, send binary domain data';

/** Picks the config a save carries: the creation config, or one given to xl (xl save DOM FILE
 * CONFIG, xl migrate -C), which must describe the same machine. */
function savedSpec(ts: Toolstack, domid: number, override: BuildSpec | null): BuildSpec {
  const spec = ts.specOf(domid);
  checkSaveable(spec, 'save');
  if (!override) return spec;
  if (override.memoryMiB !== spec.memoryMiB || override.maxVcpus !== spec.maxVcpus) {
    throw new ToolstackError('EINVAL', `the config given (memory ${override.memoryMiB} MiB, ${override.maxVcpus} vCPUs) does not describe ${spec.name} (memory ${spec.memoryMiB} MiB, ${spec.maxVcpus} vCPUs)`);
  }
  return override;
}

/** Back to running after a failed save or migration: the device models take input again. */
async function resume(ts: Toolstack, domid: number, paused: boolean): Promise<void> {
  const host = ts.saveHost();
  await host.dm.thaw(domid).catch(() => {});
  if (!paused) await host.hc.invoke('domctl.unpausedomain', { domid }).catch(() => {});
}

/** xl save [-c] [-p] DOM FILE [CONFIG]. */
export async function saveToFile(ts: Toolstack, domid: number, path: string, opts: { checkpoint: boolean; leavePaused: boolean; override: BuildSpec | null }): Promise<SaveStats> {
  const spec = savedSpec(ts, domid, opts.override);
  const sink = await FileSink.create(path).catch((e: NodeJS.ErrnoException) => {
    throw new ToolstackError(e.code ?? 'EIO', `Failed to open ${path} for writing: ${e.message}`);
  });
  let stats: SaveStats;
  try {
    stats = await new ImageWriter(ts.saveHost(), domid, spec, sink).save();
    await sink.close(true);
  } catch (e) {
    await sink.close(false).catch(() => {});
    rmSync(path, { force: true });
    await resume(ts, domid, false);
    throw new ToolstackError('EIO', `Failed to save domain, resuming domain: ${(e as Error).message}`);
  }
  if (opts.checkpoint || opts.leavePaused) await resume(ts, domid, opts.leavePaused);
  else await ts.destroy(domid);
  return stats;
}

/** xl restore [CONFIG] FILE, and the receiving half of a migration: a new domain from an image. */
export async function restoreFrom(
  ts: Toolstack,
  source: ByteSource,
  opts: { paused: boolean; monitor: boolean; override: BuildSpec | null; validate: (s: BuildSpec) => BuildSpec; atEnd?: (r: ImageReader) => Promise<void> },
): Promise<{ domid: number; name: string }> {
  const reader = new ImageReader(source);
  let head;
  try {
    head = await reader.head(opts.override, opts.validate);
  } catch (e) {
    throw asRefusal(e);
  }
  // A save image's CPU and device state come before its pages: checked before creating.
  const first = await reader.prefetchState(head.spec.maxVcpus).catch((e) => {
    throw asRefusal(e);
  });
  try {
    const domid = await ts.create(head.spec, {
      paused: true,
      monitor: opts.monitor,
      restore: async (_domid, memory) => {
        const st = await reader.load(memory, first, head.spec.maxVcpus);
        await opts.atEnd?.(reader);
        return st;
      },
    });
    if (!opts.paused) await ts.saveHost().hc.invoke('domctl.unpausedomain', { domid });
    return { domid, name: head.spec.name };
  } catch (e) {
    throw asRefusal(e);
  }
}

function asRefusal(e: unknown): Error {
  if (e instanceof StreamError) return new ToolstackError('EINVAL', e.message);
  return e instanceof Error ? e : new Error(String(e));
}

export async function restoreFromFile(ts: Toolstack, path: string, opts: { paused: boolean; monitor: boolean; override: BuildSpec | null; validate: (s: BuildSpec) => BuildSpec }) {
  const src = await FileSource.open(path).catch((e: NodeJS.ErrnoException) => {
    throw new ToolstackError(e.code ?? 'EIO', `cannot open ${path}: ${e.message}`);
  });
  try {
    return await restoreFrom(ts, src, { ...opts, atEnd: (r) => r.finish() });
  } finally {
    await src.close();
  }
}

function connect(path: string): Promise<SocketChannel> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => resolve(new SocketChannel(s)));
    s.once('error', (e) => reject(new ToolstackError('ECONNREFUSED', `cannot reach xl's relay at ${path}: ${e.message}`)));
  });
}

/** xl migrate's sending side, over the stream xl relays from `relay` to the other host. */
export async function migrateSend(ts: Toolstack, domid: number, relay: string, opts: LiveOptions & { override: BuildSpec | null }): Promise<SaveStats & { downtimeMs: number }> {
  const spec = savedSpec(ts, domid, opts.override);
  const t0 = Date.now();
  const ch = await connect(relay);
  const debug = opts.debug ?? (() => {});
  let paused = false;
  try {
    const banner = await ch.readLine();
    if (banner !== RECEIVER_BANNER) throw new Error(banner === null ? 'the other side closed the connection before answering (is xl migrate-receive there?)' : `the other side did not answer as xl migrate-receive: ${JSON.stringify(banner.slice(0, 200))}`);
    const writer = new ImageWriter(ts.saveHost(), domid, spec, ch);
    let stats: SaveStats;
    try {
      paused = true; // from the stop-and-copy on (live() pauses); a failure before it resumes harmlessly
      stats = await writer.live(opts);
    } catch (e) {
      // The receiver may have said why it stopped reading.
      const why = await Promise.race([ch.readLine().catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), 2000))]);
      throw new Error(why?.startsWith('error: ') ? `the receiver refused: ${why.slice(7)}` : `sending failed: ${(e as Error).message}`);
    }
    const tStopped = Date.now() - stats.stopCopyMs;
    const reply = await ch.readLine();
    if (reply !== 'restored') throw new Error(reply === null ? 'the receiver went away before restoring the domain' : reply.startsWith('error: ') ? `the receiver refused: ${reply.slice(7)}` : `unexpected answer ${JSON.stringify(reply.slice(0, 200))}`);
    debug(`receiver restored the domain; permission to go`);
    await ch.writeLine('go');
    const running = await ch.readLine();
    if (running !== 'running') throw new Error(running === null ? 'the receiver went away before confirming the domain runs there' : `unexpected answer ${JSON.stringify(running.slice(0, 200))}`);
    // From the pause to the destination's confirmation that the guest runs there.
    const downtimeMs = Date.now() - tStopped;
    await ts.destroy(domid);
    return { ...stats, downtimeMs, totalMs: Date.now() - t0 };
  } catch (e) {
    await ts.saveHost().hc.invoke('domctl.kvm_dirty_log', { domid, op: 'stop' }).catch(() => {});
    if (paused) await resume(ts, domid, false);
    throw new ToolstackError('EIO', `migration failed, the domain keeps running here: ${(e as Error).message}`);
  } finally {
    ch.close();
  }
}

/** xl migrate-receive: the receiving side, over the stream xl relays from `relay`. */
export async function migrateReceive(ts: Toolstack, relay: string, opts: { monitor: boolean; paused: boolean; validate: (s: BuildSpec) => BuildSpec }): Promise<{ domid: number; name: string }> {
  const ch = await connect(relay);
  try {
    await ch.writeLine(RECEIVER_BANNER);
    let got: { domid: number; name: string };
    try {
      got = await restoreFrom(ts, ch, { paused: true, monitor: opts.monitor, override: null, validate: opts.validate });
    } catch (e) {
      await ch.writeLine(`error: ${(e as Error).message.replace(/\n/g, ' ')}`).catch(() => {});
      throw e;
    }
    await ch.writeLine('restored');
    const go = await ch.readLine();
    if (go !== 'go') {
      await ts.destroy(got.domid).catch(() => {});
      throw new ToolstackError('ECONNABORTED', 'the sender did not give permission to go: the domain stays on the sender');
    }
    if (!opts.paused) await ts.saveHost().hc.invoke('domctl.unpausedomain', { domid: got.domid });
    await ch.writeLine('running');
    return got;
  } finally {
    ch.close();
  }
}
