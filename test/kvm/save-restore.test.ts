// xl save / xl restore of an HVM guest on the KVM engine (docs/kvm.md, "Save, restore,
// migration"): a tiny kernel counting on its serial line (hypervisor/kvm/tiny-guest.ts,
// counterKernel: the count lives in guest RAM, the loop in its registers) is saved, restored,
// and goes on counting from where it was, as `xl console` shows; `-c` leaves it running; and a
// damaged, truncated, newer or mismatched image is refused with nothing left behind.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';
import { counterKernel } from '../../hypervisor/kvm/tiny-guest.js';
import { kvmMustRunButCannot, kvmSkipReason } from './helpers.js';

const integrationSkip = shouldSkip();
const kvmSkip = kvmMustRunButCannot() ? '' : kvmSkipReason();

/** The counts the guest printed, in order. */
function counts(text: string): number[] {
  return [...text.matchAll(/(?:^|\n)([0-9a-f]{8})\r/g)].map((m) => parseInt(m[1]!, 16));
}

/** Byte offset and length of the first record of `type` in a save image (save-stream.ts layout). */
function findRecord(img: Buffer, type: number): { at: number; len: number } {
  for (let off = 16; off + 16 <= img.length; ) {
    const t = img.readUInt32LE(off);
    const len = img.readUInt32LE(off + 4);
    if (t === type) return { at: off, len };
    off += 16 + len;
  }
  throw new Error(`no record of type ${type}`);
}

describe.skipIf(integrationSkip || kvmSkip !== '')(`xl save / restore of a KVM guest${kvmSkip ? ` (skipped: ${kvmSkip})` : ''}`, () => {
  const xn = new Instance('kvmsave');
  let kernel = '';
  let cfg = '';
  const img = () => join(xn.dir, 'count.save');

  beforeAll(async () => {
    kernel = join(xn.dir, 'count.bzImage');
    writeFileSync(kernel, counterKernel());
    cfg = xn.config('count', [`name = 'count'`, `builder = 'hvm'`, `kernel = '${kernel}'`, `memory = 64`, `vcpus = 1`, `serial = 'pty'`, `vga = 'none'`, `on_crash = 'preserve'`, ''].join('\n'));
    await xn.start();
  }, 60_000);

  afterAll(async () => {
    await xn.stop();
  }, 60_000);

  const present = async () => (await xn.list()).some((d) => d.name === 'count');
  const lastCount = () => counts(xn.consoleLog('count')).at(-1) ?? 0;

  it('a counting guest saved and restored goes on counting where it was, on xl console', async () => {
    await xn.xlOk('create', cfg);
    await xn.waitFor('the guest to count to 5', () => lastCount() >= 5, 30_000);
    const save = await xn.xl('save', 'count', img());
    expect(save.code, save.stderr).toBe(0);
    expect(save.stderr).toContain('Saving to');
    expect(await present()).toBe(false); // saved without -c: the domain is gone
    const atSave = lastCount();
    // Zero pages travel as a flag: far less than the 64 MiB of RAM.
    expect(statSync(img()).size).toBeLessThan(8 << 20);
    await new Promise((r) => setTimeout(r, 500));
    expect(lastCount()).toBe(atSave); // nothing counts while it is saved

    const restore = await xn.xl('restore', img());
    expect(restore.code, restore.stderr).toBe(0);
    expect(await present()).toBe(true);
    const con = new XlConsole(xn, 'count').attach();
    try {
      // The console shows counts past the saved one: it went on, not from zero.
      const next = (atSave + 3).toString(16).padStart(8, '0');
      await con.waitFor(new RegExp(next), 30_000);
    } finally {
      con.close();
    }
    const after = counts(xn.consoleLog('count'));
    const firstAfter = after[after.indexOf(atSave) + 1]!;
    expect(firstAfter).toBe(atSave + 1);
    expect(after.slice(after.indexOf(atSave)).every((c, i) => c === atSave + i)).toBe(true);
  }, 120_000);

  it('xl save -c takes a checkpoint and leaves the guest running; the checkpoint restores to that point', async () => {
    const ck = join(xn.dir, 'count.ck');
    const r = await xn.xl('save', '-c', 'count', ck);
    expect(r.code, r.stderr).toBe(0);
    const atCheckpoint = lastCount();
    expect((await xn.list()).find((d) => d.name === 'count')?.state).not.toContain('p');
    await xn.waitFor('the guest to count on after the checkpoint', () => lastCount() >= atCheckpoint + 4, 30_000);
    await xn.xlOk('destroy', 'count');
    const before = counts(xn.consoleLog('count')).length;
    await xn.xlOk('restore', ck);
    await xn.waitFor('counts from the checkpoint', () => counts(xn.consoleLog('count')).length >= before + 2, 30_000);
    const resumed = counts(xn.consoleLog('count')).slice(before);
    // From the checkpoint (give or take the line in flight), not from where it was destroyed.
    expect(resumed[0]).toBeGreaterThanOrEqual(atCheckpoint);
    expect(resumed[0]).toBeLessThanOrEqual(atCheckpoint + 2);
  }, 120_000);

  it('save -p leaves the domain paused; a restore with -p stays paused until unpause', async () => {
    const p = join(xn.dir, 'count.p');
    expect((await xn.xl('save', '-p', 'count', p)).code).toBe(0);
    expect((await xn.list()).find((d) => d.name === 'count')?.state).toContain('p');
    await xn.xlOk('destroy', 'count');
    await xn.xlOk('restore', '-p', p);
    const at = lastCount();
    await new Promise((r) => setTimeout(r, 600));
    expect(lastCount()).toBe(at);
    await xn.xlOk('unpause', 'count');
    await xn.waitFor('counting again', () => lastCount() > at, 20_000);
    await xn.xlOk('destroy', 'count');
  }, 120_000);

  describe('bad images are refused and leave nothing behind', () => {
    const refused = async (file: string, expected: RegExp, ...extra: string[]) => {
      const r = await xn.xl('restore', ...extra, file);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(expected);
      expect(await present()).toBe(false);
      expect(xn.log()).not.toMatch(/stubdom d\d+: .*(TypeError|RangeError)/);
    };

    it('a truncated image', async () => {
      const good = readFileSync(img());
      const f = join(xn.dir, 'trunc.save');
      writeFileSync(f, good.subarray(0, Math.floor(good.length * 0.7)));
      await refused(f, /xenode cannot restore .*before its END record \(truncated\)/);
    }, 60_000);

    it('an image of a newer format version', async () => {
      const b = Buffer.from(readFileSync(img()));
      b.writeUInt32LE(2, 8);
      const f = join(xn.dir, 'newer.save');
      writeFileSync(f, b);
      await refused(f, /format version 2; this xenode reads version 1/);
    }, 60_000);

    it('an image whose RAM size disagrees with the config given', async () => {
      const other = xn.config('count96', readFileSync(cfg, 'utf8').replace('memory = 64', 'memory = 96'));
      await refused(img(), /holds 64 MiB of RAM, the config gives memory = 96/, other);
    }, 60_000);

    it('flipped bytes in the device state: the checksum, and past it the device model, refuse', async () => {
      const good = Buffer.from(readFileSync(img()));
      const dev = findRecord(good, 5); // DEVICES
      const flipped = Buffer.from(good);
      flipped[dev.at + 16 + 40]! ^= 0xff;
      const f = join(xn.dir, 'flipped.save');
      writeFileSync(f, flipped);
      await refused(f, /DEVICES record at byte \d+: checksum mismatch/);
      // A forged image with a matching checksum: the UART's receive FIFO head out of range.
      const forged = Buffer.from(good);
      const body = forged.subarray(dev.at + 16, dev.at + 16 + dev.len);
      const field = body.indexOf(Buffer.from([1, 6, ...Buffer.from('rxHead')]));
      expect(field).toBeGreaterThan(0);
      body[field + 8] = 200;
      forged.writeUInt32LE(crc32(body) >>> 0, dev.at + 8);
      writeFileSync(f, forged);
      await refused(f, /saved device state is refused: com1: rxHead = 200 is outside 0..15/);
      // And the good image still restores.
      await xn.xlOk('restore', img());
      expect(await present()).toBe(true);
      await xn.xlOk('destroy', 'count');
    }, 90_000);
  });

  it('a PV guest is refused up front, naming why, and no file is written', async () => {
    await xn.create('pvg');
    const f = join(xn.dir, 'pv.save');
    const r = await xn.xl('save', 'pvg', f);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("xenode cannot save pvg: a PV guest's kernel here is a Node program in its own process");
    const m = await xn.xl('migrate', 'pvg', 'otherhost');
    expect(m.code).toBe(1);
    expect(m.stderr).toContain('xenode cannot migrate pvg');
    expect(() => statSync(f)).toThrow();
    await xn.xlOk('destroy', 'pvg');
  }, 60_000);
});
