// Node operations and the permission rules, through in-process clients (dom0 and
// unprivileged domains), checked against C xenstored's behaviour.
import { describe, expect, it } from 'vitest';
import { expectCode, server } from './helpers.js';

describe('node operations', () => {
  it('starts from a dom0-only tree like Xen', async () => {
    const { dom0 } = server();
    expect(await dom0.directory('/')).toEqual(['local', 'tool', 'vm']);
    expect(await dom0.directory('/local/domain')).toEqual(['0']);
    expect(await dom0.getPerms('/')).toEqual([{ id: 0, access: 'n' }]);
    expect(await dom0.getPerms('@releaseDomain')).toEqual([{ id: 0, access: 'n' }]);
  });

  it('WRITE creates parents, DIRECTORY lists children in creation order', async () => {
    const { dom0 } = server();
    await dom0.write('/a/b/c', 'v1');
    await dom0.write('/a/z', '');
    await dom0.write('/a/b/d', new Uint8Array([0, 1, 2, 255]));
    expect(await dom0.read('/a/b/c')).toBe('v1');
    expect(await dom0.read('/a/b')).toBe('');
    expect(await dom0.directory('/a')).toEqual(['b', 'z']);
    expect(await dom0.directory('/a/b')).toEqual(['c', 'd']);
    expect([...(await dom0.readBytes('/a/b/d'))]).toEqual([0, 1, 2, 255]);
    expect(await dom0.exists('/a/b')).toBe(true);
    expect(await dom0.exists('/a/q')).toBe(false);
  });

  it('MKDIR leaves existing values alone; RM is recursive and tolerant of a missing leaf', async () => {
    const { dom0 } = server();
    await dom0.write('/m', 'keep');
    await dom0.mkdir('/m');
    expect(await dom0.read('/m')).toBe('keep');
    await dom0.write('/m/x/y', '1');
    await dom0.rm('/m/x');
    expect(await dom0.directory('/m')).toEqual([]);
    await dom0.rm('/m/nothing'); // parent exists: fine
    await expectCode(dom0.rm('/nope/nothing'), 'ENOENT'); // parent missing: error
    await expectCode(dom0.rm('/'), 'EINVAL');
    await expectCode(dom0.read('/m/x/y'), 'ENOENT');
  });

  it('rejects invalid paths with EINVAL', async () => {
    const { dom0 } = server();
    for (const p of ['/a/', '/a//b', '/a b', '/a\u00e9', '@releaseDomain', '/x'.repeat(1600)]) {
      await expectCode(dom0.write(p, 'x'), 'EINVAL');
    }
  });

  it('GET_DOMAIN_PATH and relative paths resolve under /local/domain/<domid>', async () => {
    const { dom0, as } = server();
    expect(await dom0.getDomainPath(7)).toBe('/local/domain/7');
    await dom0.mkdir('/local/domain/7');
    await dom0.setPerms('/local/domain/7', ['n7']);
    const d7 = as(7);
    await d7.write('data/x', 'rel');
    expect(await dom0.read('/local/domain/7/data/x')).toBe('rel');
    expect(await d7.read('data/x')).toBe('rel');
    await dom0.write('/local/domain/0/mine', 'dom0 relative');
    expect(await dom0.read('mine')).toBe('dom0 relative');
  });

  it('answers E2BIG for a DIRECTORY over 4096 bytes; the client falls back to DIRECTORY_PART', async () => {
    const { dom0 } = server();
    const names = Array.from({ length: 300 }, (_, i) => `child-with-a-long-name-${i}`);
    for (const n of names) await dom0.write(`/big/${n}`, '');
    await expectCode(dom0.request(1 /* DIRECTORY */, ['/big'], 0), 'E2BIG');
    expect(await dom0.directory('/big')).toEqual(names);
  });
});

describe('permissions', () => {
  async function setup() {
    const f = server();
    // Owner 7; 8 may only write; 9 nothing; everyone else gets the owner entry's letter: read.
    await f.dom0.write('/p/node', 'secret');
    await f.dom0.setPerms('/p', ['r0']);
    await f.dom0.setPerms('/p/node', ['r7', 'w8', 'n9']);
    return f;
  }

  it('first entry is the owner (full access); its letter is everyone else default', async () => {
    const { as } = await setup();
    const [d7, d8, d9, d10] = [as(7), as(8), as(9), as(10)];
    expect(await d7.read('/p/node')).toBe('secret');
    await d7.write('/p/node', 'by owner');
    await expectCode(d8.read('/p/node'), 'EACCES');
    await d8.write('/p/node', 'by 8');
    await expectCode(d9.read('/p/node'), 'EACCES');
    await expectCode(d9.write('/p/node', 'x'), 'EACCES');
    expect(await d10.read('/p/node')).toBe('by 8');
    await expectCode(d10.write('/p/node', 'x'), 'EACCES');
  });

  it('a missing node is ENOENT only to callers the nearest ancestor would allow', async () => {
    const { dom0, as } = await setup();
    await dom0.write('/hidden/x', '');
    await expectCode(as(10).read('/p/none'), 'ENOENT'); // /p readable by all
    await expectCode(as(10).read('/hidden/x/none'), 'EACCES'); // /hidden/x is n0
    await expectCode(as(10).read('/hidden/x'), 'EACCES');
  });

  it('only dom0 may change the owner; only the owner may change permissions', async () => {
    const { dom0, as } = await setup();
    await expectCode(as(7).setPerms('/p/node', ['r8']), 'EPERM');
    await as(7).setPerms('/p/node', ['n7', 'b8']);
    expect(await dom0.getPerms('/p/node')).toEqual([{ id: 7, access: 'n' }, { id: 8, access: 'b' }]);
    await expectCode(as(8).setPerms('/p/node', ['n7']), 'EACCES');
    await dom0.setPerms('/p/node', ['n9']);
    expect(await as(9).read('/p/node')).toBe('secret');
  });

  it('new nodes inherit the parent permissions; a domU creator becomes the owner', async () => {
    const { dom0, as } = server();
    await dom0.mkdir('/local/domain/5');
    await dom0.setPerms('/local/domain/5', ['n0', 'b5', 'r6']);
    await as(5).write('/local/domain/5/dev/x', '1');
    expect(await dom0.getPerms('/local/domain/5/dev')).toEqual([
      { id: 5, access: 'n' }, { id: 5, access: 'b' }, { id: 6, access: 'r' },
    ]);
    await dom0.write('/local/domain/5/by0', '');
    expect(await dom0.getPerms('/local/domain/5/by0')).toEqual([
      { id: 0, access: 'n' }, { id: 5, access: 'b' }, { id: 6, access: 'r' },
    ]);
    // Creating needs write access on the nearest existing ancestor.
    await expectCode(as(6).write('/local/domain/5/y', '1'), 'EACCES');
  });

  it('validates SET_PERMS: malformed EINVAL, too many ENOSPC (dom0 exempt)', async () => {
    const { dom0, as } = server();
    await dom0.mkdir('/q');
    await dom0.setPerms('/q', ['n4']);
    await expectCode(dom0.request(14, ['/q', 'x4'], 0), 'EINVAL');
    await expectCode(dom0.request(14, ['/q'], 0), 'EINVAL');
    await expectCode(as(4).setPerms('/q', ['n4', 'r1', 'r2', 'r3', 'r5', 'r6']), 'ENOSPC');
    await as(4).setPerms('/q', ['n4', 'r1', 'r2', 'r3', 'r5']);
    await dom0.setPerms('/q', ['n4', 'r1', 'r2', 'r3', 'r5', 'r6', 'r7']);
  });

  it('privileged-only requests are EACCES for a domU', async () => {
    const { as } = server();
    const d3 = as(3);
    await expectCode(d3.introduce(4, 1, 1), 'EACCES');
    await expectCode(d3.release(4), 'EACCES');
    await expectCode(d3.isDomainIntroduced(4), 'EACCES');
    await expectCode(d3.control('print', 'x'), 'EACCES');
  });

  it('CONTROL print logs; unknown commands are EINVAL', async () => {
    const { dom0, logs } = server();
    expect(await dom0.control('print', 'hello from test')).toBe('OK');
    expect(logs).toContain('control: hello from test');
    await expectCode(dom0.control('frobnicate'), 'EINVAL');
    expect(await dom0.control('quota')).toMatch(/nodes\s+:\s+1000/);
  });
});
