// Names a peer sends pick an entry from a table: hypercalls (a guest's or dom0's), toolstack
// commands (a local client of toolstack.sock), xenstore CONTROL commands and message types.
// Names every JavaScript object inherits - `constructor`, `__proto__`, `toString`,
// `hasOwnProperty` - must be as unknown as any other name: ENOSYS or EINVAL, one plain log
// line at most, never a stack trace, and everything keeps working.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HypercallError } from '../../drivers/hypercall/channel.js';
import { XsClient } from '../../drivers/xenstore/client.js';
import { XsType } from '../../drivers/xenstore/xs-wire.js';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { inProcessHypervisorSuite } from '../helpers/in-process-hypervisor.js';
import { server } from '../xenstored/helpers.js';

const INHERITED = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf'];
const STACK = /\n\s+at /;

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as HypercallError).errno ?? (e as { code?: string }).code ?? String(e);
  }
  return 'resolved';
}

describe.skipIf(shouldSkip())('hypercall table', () => {
  const h = inProcessHypervisorSuite('dispatch');

  it('answers ENOSYS to inherited names, from a guest and from dom0, with no stack trace', async () => {
    const { hv, dom0, guest, domid } = h();
    for (const name of INHERITED) {
      expect(await errno(guest.invoke(name)), `guest ${name}`).toBe('ENOSYS');
      expect(await errno(dom0.invoke(name)), `dom0 ${name}`).toBe('ENOSYS');
    }
    const log = hv.log.read(false);
    expect(log).not.toMatch(STACK);
    expect(log).not.toMatch(/is not a function/);
    // Both still work.
    expect(await guest.invoke('xen.version')).toMatchObject({ major: 4 });
    expect((await dom0.invoke<{ domid: number }>('domctl.getdomaininfo', { domid })).domid).toBe(domid);
  });

  it('refuses inherited names as shutdown reasons: the guest stays up', async () => {
    const { hv, dom0, guest, domid } = h();
    for (const reason of INHERITED) {
      expect(await errno(guest.invoke('sched.shutdown', { reason })), reason).toBe('EINVAL');
      expect(await errno(dom0.invoke('domctl.shutdown', { domid, reason })), reason).toBe('EINVAL');
    }
    const info = await dom0.invoke<{ shutdown: boolean; crashed: boolean; shutdownReason: string | null }>('domctl.getdomaininfo', { domid });
    expect(info).toMatchObject({ shutdown: false, crashed: false, shutdownReason: null });
    expect(hv.log.read(false)).not.toMatch(STACK);
  });
});

describe.skipIf(shouldSkip())('toolstack and xenstored tables, on a running xenode', () => {
  const xn = new Instance('dispatch');
  beforeAll(() => xn.start());
  afterAll(() => xn.stop());

  /** Lines to toolstack.sock as any local client may write them; one reply line each. */
  function toolstack(lines: string[]): Promise<{ id: number; error?: { code: string; message: string } }[]> {
    return new Promise((resolve, reject) => {
      const s = connect(`${xn.env.XENODE_RUN_DIR}/toolstack.sock`);
      let buf = '';
      s.setEncoding('utf8');
      s.on('connect', () => s.write(lines.map((l) => `${l}\n`).join('')));
      s.on('data', (c: string) => {
        buf += c;
        const got = buf.split('\n').filter(Boolean);
        if (got.length >= lines.length) {
          s.end();
          resolve(got.map((l) => JSON.parse(l)));
        }
      });
      s.on('error', reject);
    });
  }

  it('toolstack: inherited command names are unknown commands (ENOSYS)', async () => {
    const replies = await toolstack(INHERITED.map((cmd, i) => JSON.stringify({ id: i + 1, cmd, args: {} })));
    for (const [i, r] of replies.entries()) {
      expect(r.error?.code, INHERITED[i]).toBe('ENOSYS');
      expect(r.error?.message).toMatch(/unknown toolstack command/);
    }
  });

  it('toolstack: requests that are not objects with a string cmd get EINVAL, and dom0 carries on', async () => {
    const bad = ['null', '[]', '42', '"list"', '{"cmd":5}', '{"cmd":"list","args":"x"}', '{"__proto__":{"cmd":"list"}}'];
    const replies = await toolstack(bad);
    for (const [i, r] of replies.entries()) expect(r.error?.code, bad[i]).toBe('EINVAL');
    expect((await xn.xlOk('list')).split('\n')[1]).toMatch(/^Domain-0\s+0\s/);
    expect(xn.log()).not.toMatch(STACK);
  });

  it('xenstored: inherited CONTROL commands are EINVAL, unknown types ENOSYS, and such node names are plain nodes', async () => {
    const c = await XsClient.connect(xn.env.XENSTORED_PATH);
    try {
      for (const cmd of INHERITED) expect(await errno(c.control(cmd)), cmd).toBe('EINVAL');
      for (const type of [XsType.INVALID, 27, 128, 0x7fffffff, 0xffffffff]) expect(await errno(c.request(type, ['x'], 0)), String(type)).toBe('ENOSYS');
      for (const name of INHERITED) {
        await c.write(`/tool/dispatch-test/${name}`, `value of ${name}`);
        expect(await c.read(`/tool/dispatch-test/${name}`)).toBe(`value of ${name}`);
      }
      expect((await c.directory('/tool/dispatch-test')).sort()).toEqual([...INHERITED].sort());
      expect(await c.control('check')).toBe('OK');
    } finally {
      c.close();
    }
    expect(xn.log()).not.toMatch(STACK);
  });
});

describe('xenstored tables, from an unprivileged domain', () => {
  it('CONTROL is refused before any lookup, unknown types are ENOSYS, inherited names are plain nodes', async () => {
    const { as, logs, dom0 } = server();
    await dom0.mkdir('/local/domain/7');
    await dom0.setPerms('/local/domain/7', ['n7']);
    const g = as(7);
    for (const cmd of INHERITED) expect(await errno(g.control(cmd))).toBe('EACCES');
    expect(await errno(g.request(0xffffffff as XsType, ['x'], 0))).toBe('ENOSYS');
    await g.write('__proto__', 'x');
    await g.write('constructor/toString', 'y');
    expect(await g.read('/local/domain/7/__proto__')).toBe('x');
    expect(await g.read('/local/domain/7/constructor/toString')).toBe('y');
    expect(logs.join('\n')).not.toMatch(STACK);
  });
});
