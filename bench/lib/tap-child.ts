// The TAP rows of bench:primitives, run as `unshare --net node tap-child.js SAMPLES ROW_MS` so
// the TAPs live in a network namespace of their own and vanish with it. Prints
// {"open": [us...], "write": [us...]} on stdout.
import { execFileSync } from 'node:child_process';
import { native } from '../../native/index.js';

const n = native();
const samples = Number(process.argv[2] ?? 1000);
const rowMs = Number(process.argv[3] ?? 1000);
const us = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e3;

function timed(op: () => void): number[] {
  const out: number[] = [];
  const end = performance.now() + rowMs;
  while (out.length < samples && performance.now() < end) {
    const t0 = process.hrtime.bigint();
    op();
    out.push(us(t0));
  }
  return out;
}

const open = timed(() => n.close(n.tapOpen('xnb%d', true, n.TUN_F_CSUM).fd));

const tap = n.tapOpen('xnb%d', true, n.TUN_F_CSUM);
execFileSync('ip', ['link', 'set', tap.name, 'up']);
// A vnet header (no offload asked) and a broadcast frame of a local experimental ethertype:
// the kernel takes it in and drops it, as a bridge port with nothing to deliver it to would.
const frame = new Uint8Array(12 + 1514);
frame.fill(0xff, 12, 18);
frame.set([0x02, 0, 0, 0x78, 0x6e, 0x01], 18);
frame.set([0x88, 0xb5], 24);
const write = timed(() => void n.write(tap.fd, frame, 0, frame.length));
n.close(tap.fd);
process.stdout.write(JSON.stringify({ open, write }));
