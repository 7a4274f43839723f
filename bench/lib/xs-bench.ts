// xenstore request rates over xenstored's unix socket, plus the floor they sit on: one request,
// one reply over a unix socket between two Node processes (an echo server doing no work).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { XsClient } from '../../drivers/xenstore/client.js';
import { procCpuNs } from './procmem.js';
import { track, kill as killChild } from './children.js';

export interface Rate {
  ops: number;
  ms: number;
  opsPerSec: number;
  /** CPU time the server process spent per operation (us), when its pid is known. */
  serverCpuUsPerOp?: number;
  /** CPU time this (client) process spent per operation (us). */
  clientCpuUsPerOp?: number;
}

function rate(ops: number, ms: number): Rate {
  return { ops, ms, opsPerSec: ops / (ms / 1000) };
}

/** measure(), also charging the server's and our own CPU time to the operations. */
async function measureCpu(serverPid: number, op: (i: number) => Promise<unknown>, depth: number, maxOps: number, maxMs: number): Promise<Rate> {
  const s0 = procCpuNs(serverPid);
  const c0 = process.cpuUsage();
  const r = await measure(op, depth, maxOps, maxMs);
  const c = process.cpuUsage(c0);
  const s1 = procCpuNs(serverPid);
  return { ...r, serverCpuUsPerOp: (s1 - s0) / 1000 / r.ops, clientCpuUsPerOp: (c.user + c.system) / r.ops };
}

/** Run `op` sequentially (depth 1) or with `depth` requests in flight, until maxOps or maxMs. */
export async function measure(op: (i: number) => Promise<unknown>, depth: number, maxOps: number, maxMs: number): Promise<Rate> {
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  let issued = 0;
  let done = 0;
  const worker = async () => {
    while (issued < maxOps && performance.now() < deadline) {
      const i = issued++;
      await op(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return rate(done, performance.now() - t0);
}

export interface XsRates {
  readSeq: Rate;
  writeSeq: Rate;
  readPipelined: Rate;
  writePipelined: Rate;
  echoSeq: Rate;
  echoPipelined: Rate;
  depth: number;
  rounds: number;
  /** Every round's rates, in ops/s, for the record. */
  perRound: Record<string, number>[];
}

/** The round with the median rate, so a burst of load from elsewhere does not decide. */
function medianRate(rs: Rate[]): Rate {
  return [...rs].sort((a, b) => a.opsPerSec - b.opsPerSec)[rs.length >> 1]!;
}

/**
 * xenstore over the socket with the stock client, and the echo floor, interleaved in
 * `rounds` rounds (each measurement bounded by maxOps and maxMs); the median round is kept.
 */
export async function xenstoreRates(socketPath: string, xenstoredPid: number, echoPath: string, opts: { rounds: number; maxOps: number; maxMs: number; depth: number }): Promise<XsRates> {
  const { rounds, maxOps, maxMs, depth } = opts;
  const xs = await XsClient.connect(socketPath);
  // A request and reply the size of a xenstore READ of a short path (16-byte header + path).
  const echo = await startEcho(echoPath, 16 + 18, rounds * maxMs * 8 + 10_000);
  try {
    const base = '/bench-xs';
    await xs.write(`${base}/key`, 'value-0123456789');
    const ops = {
      echo: { pid: echo.pid, op: () => echo.op() },
      read: { pid: xenstoredPid, op: () => xs.read(`${base}/key`) },
      write: { pid: xenstoredPid, op: (i: number) => xs.write(`${base}/w`, `value-${i}`) },
    };
    // Warm-up (JIT on both sides).
    for (const { op } of Object.values(ops)) await measure(op, 8, 2000, 1000);
    const got: Record<string, Rate[]> = {};
    const perRound: Record<string, number>[] = [];
    for (let r = 0; r < rounds; r++) {
      const row: Record<string, number> = {};
      for (const [name, { pid, op }] of Object.entries(ops)) {
        for (const [mode, d, n] of [['Seq', 1, maxOps], ['Pipelined', depth, maxOps * 4]] as const) {
          const rate = await measureCpu(pid, op, d, n, maxMs);
          (got[name + mode] ??= []).push(rate);
          row[name + mode] = Math.round(rate.opsPerSec);
          row[`${name}${mode}ServerCpuUs`] = Number(rate.serverCpuUsPerOp!.toFixed(2));
        }
      }
      perRound.push(row);
    }
    await xs.rm(base).catch(() => {});
    return {
      readSeq: medianRate(got.readSeq!),
      writeSeq: medianRate(got.writeSeq!),
      readPipelined: medianRate(got.readPipelined!),
      writePipelined: medianRate(got.writePipelined!),
      echoSeq: medianRate(got.echoSeq!),
      echoPipelined: medianRate(got.echoPipelined!),
      depth,
      rounds,
      perRound,
    };
  } finally {
    xs.close();
    echo.close();
  }
}

const ECHO_SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); });
srv.listen(process.argv[1], () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), Number(process.argv[2])).unref();
setInterval(() => {}, 1 << 30);
`;

/** A Node echo server in its own process, and a client op: one fixed-size request, one reply. */
async function startEcho(path: string, msgBytes: number, maxLifeMs: number): Promise<{ pid: number; op: () => Promise<void>; close: () => void }> {
  const child: ChildProcess = track(spawn(process.execPath, ['-e', ECHO_SERVER, path, String(maxLifeMs)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const kill = () => killChild(child);
  try {
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error('echo server did not start')), 10_000);
      child.stdout!.once('data', () => (clearTimeout(t), res()));
    });
    const sock: Socket = await new Promise((res, rej) => {
      const s = connect(path, () => res(s));
      s.once('error', rej);
    });
    sock.setNoDelay?.(true);
    sock.on('error', () => {});
    // Replies are fixed-size: count bytes and resolve waiters in order.
    const waiters: (() => void)[] = [];
    let buffered = 0;
    sock.on('data', (d: Buffer) => {
      buffered += d.length;
      while (buffered >= msgBytes && waiters.length) {
        buffered -= msgBytes;
        waiters.shift()!();
      }
    });
    const msg = Buffer.alloc(msgBytes, 0x61);
    return {
      pid: child.pid!,
      op: () => new Promise<void>((res) => (waiters.push(res), sock.write(msg))),
      close: () => (sock.destroy(), kill()),
    };
  } catch (e) {
    kill();
    throw e;
  }
}

/** The stock C client (Debian's xenstore-read, libxenstore) reading `count` paths in one run:
 * its rate net of process start, from a 1-path run and a `count`-path run. */
export async function cToolRate(env: NodeJS.ProcessEnv, path: string, count: number, timeoutMs: number): Promise<Rate | null> {
  const runOnce = (n: number) =>
    new Promise<number>((res, rej) => {
      const t0 = performance.now();
      const c = spawn('xenstore-read', Array.from({ length: n }, () => path), { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr!.on('data', (d) => (err += d));
      const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.on('error', rej);
      c.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) res(performance.now() - t0);
        else rej(new Error(`xenstore-read exited ${code}: ${err}`));
      });
    });
  try {
    const one = Math.min(await runOnce(1), await runOnce(1), await runOnce(1));
    const many = Math.min(await runOnce(count), await runOnce(count));
    return rate(count - 1, Math.max(0.001, many - one));
  } catch {
    return null;
  }
}
