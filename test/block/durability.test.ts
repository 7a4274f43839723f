// FLUSH means durable: a write the guest fsync'd (FUSE FSYNC -> BLKIF_OP_FLUSH_DISKCACHE ->
// fdatasync in blkback) is in the image even when the backend process (dom0) is killed with
// SIGKILL the moment the guest has its answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rpcCall } from '../../dom0/toolstack/rpc.js';
import { Instance, shouldSkip } from '../helpers/instance.js';

describe.skipIf(shouldSkip())('PV block durability', () => {
  const xn = new Instance('blkdur');
  beforeAll(() => xn.start());
  afterAll(() => xn.stop());

  it("an fsync'd write survives kill -9 of the backend process", async () => {
    const disk = join(xn.dir, 'dur.img');
    writeFileSync(disk, '');
    truncateSync(disk, 16 << 20);
    await xn.xlOk('create', xn.config('dur', ['name = "dur"', 'type = "pv"', 'memory = 128', 'extra = "console=hvc0"', `disk = ['${disk},raw,xvda,rw']`, ''].join('\n')));
    await xn.waitForShell('dur');
    const out = await xn.consoleRun('dur', 'head -c 1048576 /dev/urandom > /tmp/r && md5sum < /tmp/r && dd if=/tmp/r of=/dev/xvda bs=64k seek=32 conv=fsync,notrunc 2>/dev/null && echo synced');
    expect(out).toContain('synced');
    const sum = /([0-9a-f]{32})/.exec(out)![1];

    const sock = join(xn.dir, 'run', 'toolstack.sock');
    const stats = await rpcCall<Record<string, Record<string, number>>>(sock, 'device-stats', {});
    const vbd = Object.entries(stats).find(([k]) => k.startsWith('vbd/'))?.[1];
    expect(vbd?.f_req).toBeGreaterThan(0); // the fsync reached blkback as a flush
    expect(vbd?.wr_sect).toBeGreaterThanOrEqual(2048);

    const { pid } = await rpcCall<{ pid: number }>(sock, 'ping', {});
    process.kill(pid, 'SIGKILL');
    const img = readFileSync(disk);
    expect(createHash('md5').update(img.subarray(2 << 20, 3 << 20)).digest('hex')).toBe(sum);
  });
});
