// A guest flooding every log path the host keeps for it must not fill the host's disk nor push
// the hypervisor's own lines out of `xl dmesg`. Paths, from guest root: its console (hvc0:
// guest-<name>.log) and its kernel's stdout and stderr (now pipes, read into
// kernel-<domid>.log), which guest root can take from PID 1 with pidfd_getfd(2) for as long as
// it has ptrace rights over its kernel. From a hostile guest kernel: console.write hypercalls (Xen's
// CONSOLEIO_write), failing hypercalls, and malformed xenstore requests. The flood
// lasted 30 s; here 10 s: the caps and rate limits are reached within the first second, so a
// longer flood only costs CI time.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XsType } from '../../drivers/xenstore/xs-wire.js';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { inProcessHypervisorSuite } from '../helpers/in-process-hypervisor.js';
import { server } from '../xenstored/helpers.js';

const FLOOD_S = 10;
const MB = 1 << 20;

/** Bytes in every file under `dir`. */
function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? du(p) : statSync(p).size;
  }
  return n;
}

describe.skipIf(shouldSkip())('a guest flooding its console and its kernel\'s stdio', () => {
  const xn = new Instance('logflood');
  let domid = 0;
  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('flood');
    await xn.waitForShell('flood');
  });
  afterAll(() => xn.stop());

  it(`grows the host's logs by a few MB at most in ${FLOOD_S} s, and xl dmesg keeps the boot lines`, async () => {
    const logDir = join(xn.dir, 'log');
    const before = du(logDir);
    const line = 'x'.repeat(200);
    // Three writers at once, each as fast as the guest can go: two on the kernel's stdout and
    // stderr (taken with pidfd_getfd), one on the console.
    const stdio = (fd: number) =>
      `python3 -c 'import ctypes,os,time
libc=ctypes.CDLL(None,use_errno=True)
fd=libc.syscall(438,os.pidfd_open(1),${fd},0)
print("kernel fd ${fd}:", "taken" if fd>=0 else "refused")
end=time.time()+${FLOOD_S}
while fd>=0 and time.time()<end: os.write(fd,b"${line}\\n"*64)' &`;
    const took = await xn.consoleRun('flood', `${stdio(1)} ${stdio(2)} sleep 0.5`);
    console.log(`log flood: ${took.trim().split('\n').filter((l) => l.startsWith('kernel fd')).join('; ')}`);
    await xn.consoleRun('flood', `timeout ${FLOOD_S} yes ${line} & true`);
    await new Promise((r) => setTimeout(r, (FLOOD_S + 2) * 1000));
    const grown = du(logDir) - before;
    console.log(`log flood: host logs grew by ${(grown / MB).toFixed(2)} MB in ${FLOOD_S} s`);
    expect(grown).toBeLessThan(5 * MB);
    // Each capped log holds at most 1 MiB, plus one rotated copy.
    for (const f of [join(logDir, `kernel-${domid}.log`), join(logDir, 'console', 'guest-flood.log')]) {
      expect(statSync(f).size, f).toBeLessThanOrEqual(MB);
    }
    expect(statSync(join(logDir, 'console', 'guest-flood.log.1')).size).toBeLessThanOrEqual(MB);
    // The guest is fine and its shell answers.
    expect((await xn.consoleRun('flood', 'echo still-$((40+2))', 20_000)).trim()).toContain('still-42');
    const dmesg = await xn.xlOk('dmesg');
    expect(dmesg).toMatch(/\(XEN\) xenode hypervisor starting on /);
    expect(dmesg).toMatch(new RegExp(`\\(XEN\\) d${domid}: created "flood"`));
  }, 60_000);
});

describe.skipIf(shouldSkip())('a hostile guest kernel flooding the hypervisor\'s and xenstored\'s logs', () => {
  const h = inProcessHypervisorSuite('logflood');

  it('20,000 console.write hypercalls: 10 lines reach xl dmesg, the boot lines stay', async () => {
    const { hv, dom0, guest, domid } = h();
    const text = 'y'.repeat(1000);
    for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 1000 }, () => guest.invoke('console.write', { text })));
    const dmesg = hv.log.read(false);
    const guestLines = dmesg.split('\n').filter((l) => l.startsWith(`(XEN) d${domid}: y`));
    expect(guestLines.length).toBe(10);
    expect(dmesg).toMatch(/\(XEN\) xenode hypervisor starting on /);
    expect(dmesg.length).toBeLessThan(20 * 1024);
    // dom0's own lines are not limited.
    await dom0.invoke('console.write', { text: 'dom0 says hello' });
    expect(hv.log.read(false)).toContain('(XEN) d0: dom0 says hello');
  });

  it('5,000 malformed xenstore requests: 10 log lines, and the guest still gets its answers', async () => {
    const { as, logs, dom0: xs0 } = server();
    await xs0.mkdir('/local/domain/9');
    await xs0.setPerms('/local/domain/9', ['n9']);
    const g = as(9);
    const errors = await Promise.all(Array.from({ length: 5000 }, (_, i) => g.request(i % 2 ? XsType.WATCH : (0xffff00 as XsType), ['only-one'], 0).catch((e) => e.code)));
    expect(new Set(errors)).toEqual(new Set(['EINVAL', 'ENOSYS']));
    expect(logs.length).toBeLessThanOrEqual(11);
    await g.write('still', 'works');
    expect(await g.read('still')).toBe('works');
  });
});
