// Guest RAM on a tmpfs of its own in 2 MiB pages (hypervisor/guest-ram.ts, native
// hugeRamCreate). What a user notices is a guest's 1 MiB disk requests reaching the host disk
// whole (bench:block, docs/benchmarks.md; it depends on the host's disk, so no test asserts
// it). Here: the memory is what it claims to be, nothing is left in any mount table, and the
// way back to memfds works.
import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { createGuestRam } from '../../hypervisor/guest-ram.js';

const n = native();
const MiB = 1 << 20;
const isRoot = process.getuid?.() === 0;
const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) n.close(fd);
  delete process.env.XENODE_HUGE_RAM;
});

/** A field of /proc/self/smaps for this process's mapping of the file named `name`. */
function smapsField(name: string, field: string): number {
  let inside = false;
  for (const l of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(l)) inside = l.includes(name);
    else if (inside && l.startsWith(`${field}:`)) return Number(l.split(/\s+/)[1]);
  }
  return NaN;
}

describe('guest RAM', () => {
  // fsopen/fsmount need CAP_SYS_ADMIN, which the hypervisor (root) has; under CI this must run.
  const skip = !isRoot && process.env.CI !== 'true';
  it.skipIf(skip)(`comes in 2 MiB host pages, from a tmpfs in no mount table${skip ? ' (skipped: needs root for fsopen/fsmount)' : ''}`, () => {
    const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
    const fd = createGuestRam('xenode-dtest-ram', 8 * MiB);
    open.push(fd);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe('/xenode-dtest-ram (deleted)');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mountsBefore);
    const mem = new Uint8Array(n.mapShared(fd, 8 * MiB));
    for (let i = 0; i < mem.length; i += 4096) mem[i] = i & 0xff;
    // Eligible for 2 MiB pages whatever the host's shmem_enabled says (whether the kernel
    // found free 2 MiB blocks at that moment is up to its fragmentation, not to us).
    expect(smapsField('xenode-dtest-ram', 'THPeligible')).toBe(1);
    // Bytes are bytes: a second mapping of the same file sees them.
    const again = new Uint8Array(n.mapShared(fd, 8 * MiB));
    expect(again[5 * 4096]).toBe((5 * 4096) & 0xff);
    expect(n.fdSize(fd)).toBe(8 * MiB);
  });

  it('XENODE_HUGE_RAM=0 gives a memfd of 4 KiB pages', () => {
    process.env.XENODE_HUGE_RAM = '0';
    const fd = createGuestRam('xenode-dtest-ram', MiB);
    open.push(fd);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:xenode-dtest-ram/);
  });

  it('refuses a name that is not a plain file name', () => {
    expect(() => n.hugeRamCreate('../x', MiB)).toThrow(/plain file name/);
    expect(() => n.hugeRamCreate('', MiB)).toThrow(/plain file name/);
  });
});
