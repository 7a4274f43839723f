// `xenode mkimage DIR IMAGE SIZE`: an ext4 image made from a directory, for guests' disks.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeImage, parseSize } from '../../common/mkimage.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-mkimage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('xenode mkimage', () => {
  it('parses sizes with suffixes', () => {
    expect(parseSize('64M')).toBe(64 << 20);
    expect(parseSize('1g')).toBe(1 << 30);
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('12 parsecs')).toThrow(/bad size/);
  });

  it('makes a raw disk holding an ext4 filesystem with the directory in it, without a journal', () => {
    const src = join(dir, 'site');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'index.html'), '<h1>hi</h1>\n');
    writeFileSync(join(src, 'sub', 'data.bin'), Buffer.alloc(100_000, 7));
    const img = join(dir, 'web.img');
    makeImage(src, img, parseSize('8M'));
    expect(statSync(img).size).toBe(8 << 20);
    const cat = spawnSync('/usr/sbin/debugfs', ['-R', 'cat /index.html', img], { encoding: 'utf8' });
    expect(cat.stdout).toBe('<h1>hi</h1>\n');
    const stat = spawnSync('/usr/sbin/debugfs', ['-R', 'stat /sub/data.bin', img], { encoding: 'utf8' });
    expect(stat.stdout).toMatch(/Size: 100000/);
    const features = spawnSync('/usr/sbin/dumpe2fs', ['-h', img], { encoding: 'utf8' }).stdout;
    expect(features).not.toMatch(/has_journal/);
    expect(() => makeImage(src, img, parseSize('8M'))).toThrow(/exists/);
    expect(() => makeImage(join(dir, 'nope'), join(dir, 'x.img'), parseSize('8M'))).toThrow(/not a directory/);
  });
});
