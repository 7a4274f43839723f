// The root filesystem's writes are gathered (fuse2fs writes through the kernel's write-back
// file, guest/kernel/block/disk-files.ts) yet an fsync in the guest still means durable: a file
// the guest wrote and fsync'd is in the image, intact, even when the backend process (dom0) is
// killed with SIGKILL the moment the guest has its answer; and its 4 KiB blocks reached the
// backend as large requests, not one request per block.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { rpcCall } from '../../dom0/toolstack/rpc.js';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';
import { busyboxAvailable, busyboxRoot } from '../helpers/busybox-root.js';

const BLOB_BLOCKS = 1024; // 4 MiB in 4 KiB blocks

describe.skipIf(shouldSkip() || !busyboxAvailable())('durability of a guest-owned root filesystem', () => {
  const xn = new Instance('rootdur');
  let con: XlConsole | null = null;
  let root = '';
  beforeAll(() => xn.start());
  afterAll(async () => {
    con?.close();
    await xn.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("a file fsync'd on the root is in the image after kill -9 of the backend, written in large requests", { timeout: 120_000 }, async () => {
    root = busyboxRoot();
    const image = join(xn.dir, 'dur-root.img');
    const m = spawnSync('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-d', root, '-E', 'root_owner=0:0', image, '64M'], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    await xn.xlOk('create', xn.config('rdur', `name = "rdur"\nmemory = 128\ndisk = [ 'file:${image},xvda,w' ]\nextra = "root=/dev/xvda console=hvc0"\n`));
    con = new XlConsole(xn, 'rdur').attach();
    await con.waitFor(/# $/m, 60_000);

    const sock = join(xn.dir, 'run', 'toolstack.sock');
    const vbd = async () => Object.entries(await rpcCall<Record<string, Record<string, number>>>(sock, 'device-stats', {})).find(([k]) => k.startsWith('vbd/'))![1];
    await con.run('head -c 4194304 /dev/urandom > /tmp/blob && md5sum < /tmp/blob > /tmp/blob.md5');
    const before = await vbd();
    // dd's conv=fsync: fsync on the file, which fuse2fs answers with a flush of everything.
    const out = await con.run(`dd if=/tmp/blob of=/root/blob bs=4096 count=${BLOB_BLOCKS} conv=fsync 2>/dev/null && cat /tmp/blob.md5 && echo synced`, 60_000);
    expect(out).toContain('synced');
    const sum = /([0-9a-f]{32})/.exec(out)![1];
    const after = await vbd();
    expect(after.f_req! - before.f_req!).toBeGreaterThan(0); // the fsync reached blkback as a flush
    expect(after.wr_sect! - before.wr_sect!).toBeGreaterThanOrEqual(BLOB_BLOCKS * 8);
    // Write-through, each block was a request of its own (>= 1024); write-back gathers them.
    expect(after.wr_req! - before.wr_req!).toBeLessThan(BLOB_BLOCKS / 8);

    const { pid } = await rpcCall<{ pid: number }>(sock, 'ping', {});
    process.kill(pid, 'SIGKILL');
    const dumped = join(xn.dir, 'blob.out');
    const d = spawnSync('debugfs', ['-R', `dump /root/blob ${dumped}`, image], { encoding: 'utf8' });
    expect(d.status, d.stderr).toBe(0);
    expect(createHash('md5').update(readFileSync(dumped)).digest('hex')).toBe(sum);
  });
});
