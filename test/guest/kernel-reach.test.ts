// A hostile guest root against its own kernel (the minimal userland, where PID 1 is the guest
// kernel's process): typed at `xl console` as a user would. The kernel's process is out of
// reach (nested user namespace, non-dumpable: no ptrace, no /proc/1/mem, /proc/1/fd or
// process_vm_readv, no pidfd_getfd of its hypercall socket, RAM or event-channel fds), the
// seccomp filter answers the calls native/guest-seccomp.h blocks, and ordinary tools still
// work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { kernelPid } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';

/** Python on the host's /usr (the minimal userland's): each call with harmless arguments, all
 * results on one line as "name=result/ERRNO" (one line: the console's screen stays short). */
const SYSCALLS_PY = [
  'import ctypes as c, errno',
  'l = c.CDLL(None, use_errno=True); b = c.create_string_buffer(256); a = c.addressof(b); o = c.addressof(c.create_string_buffer(16))',
  'calls = dict(userfaultfd=(323, 1), keyctl=(250, 0, -3, 0), add_key=(248, a, a, 0, 0, -3), bpf=(321, 0, a, 128),',
  '  perf_event_open=(298, a, 0, -1, -1, 0), kexec_load=(246, 0, 0, 0, 0), init_module=(175, a, 16, a), finit_module=(313, 0, a, 0),',
  '  open_by_handle_at=(304, -100, a, 0), io_uring_setup=(425, 1, a), prlimit64_read=(302, 1, 7, 0, o), prlimit64_kernel=(302, 1, 7, o, 0),',
  '  prlimit64_self=(302, 0, 7, 0, o))',
  'def call(nr, *args):',
  '    c.set_errno(0); r = l.syscall(nr, *[c.c_long(v) for v in args]); return "%d/%s" % (r, errno.errorcode.get(c.get_errno(), "0"))',
  'print(" ".join("%s=%s" % (n, call(*x)) for n, x in calls.items()))',
].join('\n');

function results(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const m of out.matchAll(/(\w+)=(-?\d+)\/(\w+)/g)) r[m[1]!] = Number(m[2]) < 0 ? m[3]! : 'ok';
  return r;
}

describe.skipIf(shouldSkip())('a guest kernel out of its userland\'s reach', () => {
  const xn = new Instance('kreach');
  let con: XlConsole;
  beforeAll(async () => {
    await xn.start();
    await xn.create('hostile');
    con = new XlConsole(xn, 'hostile').attach();
    await con.waitFor(/# $/m, 20_000);
  }, 60_000);
  afterAll(async () => {
    con?.close();
    await xn.stop();
  });

  it('PID 1 is the kernel, and its process cannot be traced, read or robbed of its fds', async () => {
    expect((await con.run('cat /proc/1/cmdline | tr "\\0" " "')).trim()).toMatch(/kernel\.mjs/);
    // gdb's and strace's attach: PTRACE_ATTACH / PTRACE_SEIZE.
    expect(await con.run('strace -p 1 -e trace=none 2>&1 | head -1', 15_000)).toMatch(/Operation not permitted/);
    expect(await con.run('gdb -p 1 -batch -ex "info registers" 2>&1 | grep -i ptrace | head -1', 30_000)).toMatch(/Operation not permitted/);
    expect(await con.run('head -c 16 /proc/1/mem 2>&1')).toMatch(/Permission denied/);
    // Its fd numbers may be listed (the directory is its uid's), never followed or opened.
    expect(await con.run('readlink /proc/1/fd/3 || echo unreadable')).toMatch(/unreadable/);
    expect(await con.run('head -c 1 /proc/1/fd/3 2>&1')).toMatch(/Permission denied/);
    expect(await con.run('cat /proc/1/environ 2>&1')).toMatch(/Permission denied/);
    // pidfd_getfd of every fd the kernel could hold: the hypercall socket (3), TAPs, RAM,
    // grant table and event channels.
    const grab = 'python3 -c "import os, ctypes, errno\nl = ctypes.CDLL(None, use_errno=True); p = os.pidfd_open(1)\n' +
      'got = [(fd, l.syscall(438, p, fd, 0), ctypes.get_errno()) for fd in range(3, 200)]\n' +
      'print(\'taken\', [fd for fd, r, e in got if r >= 0], \'errors\', sorted({errno.errorcode[e] for fd, r, e in got if r < 0}))"';
    expect((await con.run(grab, 15_000)).trim()).toBe("taken [] errors ['EPERM']");
    // process_vm_readv of the kernel's memory (its own address 0x400000 or any other).
    const peek = 'python3 -c "import ctypes as c, errno\nclass Iov(c.Structure): _fields_ = [(\'b\', c.c_void_p), (\'n\', c.c_size_t)]\n' +
      'l = c.CDLL(None, use_errno=True); b = c.create_string_buffer(16); here = Iov(c.addressof(b), 16); there = Iov(0x400000, 16)\n' +
      'r = l.syscall(310, 1, c.byref(here), 1, c.byref(there), 1, 0); print(\'read\', r, errno.errorcode.get(c.get_errno()))"';
    expect((await con.run(peek, 15_000)).trim()).toBe('read -1 EPERM');
    // The userland's user namespace is nested in the kernel's, with the same ids.
    expect((await con.run('cat /proc/self/uid_map')).trim().split(/\s+/)).toEqual(['0', '0', '65536']);
    expect(await con.run('nsenter -t 1 -m true 2>&1')).toMatch(/Permission denied|Operation not permitted/);
  }, 90_000);

  it('blocks the system calls the filter lists, and leaves the guest its own processes', async () => {
    const r = results(await con.run(`python3 -c '${SYSCALLS_PY}'`, 30_000));
    for (const name of ['userfaultfd', 'keyctl', 'add_key', 'bpf', 'perf_event_open', 'kexec_load', 'init_module', 'finit_module', 'open_by_handle_at', 'prlimit64_kernel'])
      expect([name, r[name]]).toEqual([name, 'EPERM']);
    expect(r.io_uring_setup).toBe('ENOSYS');
    expect(r.prlimit64_read).toBe('ok');
    expect(r.prlimit64_self).toBe('ok');
    expect((await con.run("awk '/^Seccomp:/ {print $2}' /proc/self/status")).trim()).toBe('2');
    // Guest root still traces its own programs, configures its network and mounts.
    expect(await con.run('strace -f -e trace=execve true 2>&1 | head -1')).toMatch(/execve\("\/usr\/bin\/true"/);
    expect((await con.run('ip addr add 198.18.0.9/32 dev lo && ip -4 addr show dev lo | grep -c 198.18.0.9; ip addr del 198.18.0.9/32 dev lo')).trim()).toBe('1');
    expect((await con.run('mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && grep -c " /mnt/t " /proc/mounts; umount /mnt/t')).trim()).toBe('1');
    expect((await con.run('hostname renamed && hostname')).trim()).toBe('renamed');
  }, 60_000);

  it('the kernel is the same process after all this', async () => {
    const domid = Number((await xn.xlOk('domid', 'hostile')).trim());
    expect(kernelPid(xn, domid)).toBeGreaterThan(0);
    expect((await con.run('echo still here')).trim()).toBe('still here');
  });
});
