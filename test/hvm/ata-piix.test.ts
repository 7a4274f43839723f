// ata_piix against the machine's PIIX3 IDE: probe (ATA disk on the primary master, ATAPI
// CD-ROM on the secondary master), READ/WRITE DMA through PRD tables in guest RAM, the PIO
// fallback, FLUSH CACHE, ATAPI READ(10) of an ISO image, and the /dev/hdX file operations.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFirmware, type FirmwareResult } from '../../guest/hvm/firmware/firmware.js';
import { AtaPiix } from '../../guest/hvm/drivers/ata-piix.js';
import { IdeBlockDevice } from '../../guest/hvm/drivers/ide-blockdev.js';
import type { FuseReply, RxPage } from '../../guest/kernel/fuse/fuse-file.js';
import { TestPlatform } from './harness.js';

const DISK_BYTES = 8 * 1024 * 1024;
let dir = '';
let p: TestPlatform;
let fw: FirmwareResult;
let diskImage: Buffer;
let iso: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xenode-hvm-ata-'));
  diskImage = Buffer.alloc(DISK_BYTES);
  for (let s = 0; s < DISK_BYTES / 512; s++) {
    diskImage.write(`SECT${s}`, s * 512, 'latin1');
    diskImage[s * 512 + 511] = s & 0xff;
  }
  writeFileSync(join(dir, 'disk.img'), diskImage);
  iso = Buffer.alloc(300 * 2048);
  for (let b = 0; b < 300; b++) iso.write(`BLOCK${b}`, b * 2048 + 100, 'latin1');
  iso[16 * 2048] = 1;
  iso.write('CD001', 16 * 2048 + 1, 'latin1');
  writeFileSync(join(dir, 'cd.iso'), iso);
  p = await TestPlatform.start({
    serial: false,
    disks: [
      { index: 0, path: join(dir, 'disk.img') },
      { index: 2, path: join(dir, 'cd.iso'), cdrom: true },
    ],
  });
  fw = await runFirmware({ cpu: p.cpu, ram: p.ramBuf, log: () => {}, noBoot: true });
}, 30_000);

afterAll(async () => {
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function reply() {
  let result: { kind: string; value?: unknown } | null = null;
  const r: FuseReply = {
    data: (bufs) => (result = { kind: 'data', value: Buffer.concat(bufs.map((b) => Buffer.from(b))) }),
    spans: (mem, spans, n) => {
      const parts = Array.from({ length: n }, (_, i) => Buffer.from(mem.subarray(spans[2 * i]!, spans[2 * i]! + spans[2 * i + 1]!)));
      result = { kind: 'data', value: Buffer.concat(parts) };
    },
    written: (n) => (result = { kind: 'written', value: n }),
    ok: () => (result = { kind: 'ok' }),
    error: (e) => (result = { kind: 'error', value: e }),
  };
  return { r, get: () => result as { kind: string; value?: any } | null };
}

describe.each([{ dma: true }, { dma: false }])('ata_piix (dma: $dma)', ({ dma }) => {
  let ata: AtaPiix;
  const log: string[] = [];

  it('probes an ATA disk on hda and an ATAPI CD-ROM on hdc', async () => {
    const ide = fw.devices.find((d) => d.device === 0x7010)!;
    ata = await AtaPiix.probe({ cpu: p.cpu, cfg: fw.cfg, pci: ide, ram: p.ram, log: (m) => log.push(m), dma });
    ata.attachIrq(p.intc);
    expect(ata.devices.map((d) => [d.name, d.kind, d.dma])).toEqual([
      ['hda', 'ata', dma],
      ['hdc', 'atapi', dma],
    ]);
    const hda = ata.device('hda')!;
    expect(hda.blocks).toBe(DISK_BYTES / 512);
    expect(hda.model).toBe('XENODE HARDDISK');
    expect(hda.lba48).toBe(true);
    expect(ata.device('hdc')!.blocks).toBe(300);
    expect(log.join('\n')).toMatch(/ata1\.00: ATA-7: XENODE HARDDISK/);
    expect(log.join('\n')).toMatch(dma ? /ata1\.00: configured for MWDMA2/ : /ata1\.00: configured for PIO4/);
  });

  it('reads and writes sectors', async () => {
    const hda = ata.device('hda')!;
    let got = Buffer.alloc(0);
    const now = readFileSync(join(dir, 'disk.img'));
    await ata.readSectors(hda, 100, 8, (d) => (got = Buffer.from(d)));
    expect(got.equals(now.subarray(100 * 512, 108 * 512))).toBe(true);
    // A large read (LBA48 path beyond 256 sectors when DMA).
    const n = dma ? 2048 : 300;
    await ata.readSectors(hda, 5000, n, (d) => (got = Buffer.from(d)));
    expect(got.equals(now.subarray(5000 * 512, (5000 + n) * 512))).toBe(true);
    const data = Buffer.alloc(16 * 512, dma ? 0xd1 : 0x91);
    await ata.writeSectors(hda, 2000, 16, data);
    await ata.flush(hda);
    const file = readFileSync(join(dir, 'disk.img'));
    expect(file.subarray(2000 * 512, 2016 * 512).equals(data)).toBe(true);
    expect(file.subarray(2016 * 512, 2017 * 512).equals(now.subarray(2016 * 512, 2017 * 512))).toBe(true);
    const m = (await p.metrics()).metrics;
    expect(m.ide.flushes).toBeGreaterThan(0);
    if (dma) expect(m.ide.dmaTransfers).toBeGreaterThanOrEqual(3);
    expect(m.ide.errors).toBe(0);
  });

  it('costs a bounded number of exits and one interrupt per command', async () => {
    const hda = ata.device('hda')!;
    const ex0 = p.cpu.exitCounters().byDevice['ide0']!.exits;
    const irq0 = p.intc.counters().lines[14]!.handled;
    const N = 50;
    for (let i = 0; i < N; i++) await ata.readSectors(hda, i * 8, 8, () => {});
    const exits = (p.cpu.exitCounters().byDevice['ide0']!.exits - ex0) / N;
    const irqs = (p.intc.counters().lines[14]!.handled - irq0) / N;
    console.log(`ata_piix ${dma ? 'DMA' : 'PIO'}: ${exits.toFixed(1)} exits and ${irqs.toFixed(2)} interrupts per 4 KiB read`);
    expect(exits).toBeLessThanOrEqual(dma ? 12 : 25);
    expect(irqs).toBeCloseTo(dma ? 1 : 8, 0);
  });

  it('refuses out-of-range sectors', async () => {
    const hda = ata.device('hda')!;
    await expect(ata.readSectors(hda, hda.blocks - 1, 2, () => {})).rejects.toThrow(/out of range/);
  });

  it('reads an ISO image through ATAPI', async () => {
    const hdc = ata.device('hdc')!;
    let got = Buffer.alloc(0);
    await ata.readBlocks(hdc, 16, 1, (d) => (got = Buffer.from(d)));
    expect(got[0]).toBe(1);
    expect(got.subarray(1, 6).toString('latin1')).toBe('CD001');
    await ata.readBlocks(hdc, 0, 300, (d) => (got = Buffer.from(d)));
    expect(got.equals(iso)).toBe(true);
    const inquiry = await ata.packet(hdc, Uint8Array.of(0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0), 36);
    expect(Buffer.from(inquiry.subarray(8, 14)).toString('latin1')).toBe('XENODE');
  });

  it('serves /dev/hda and /dev/hdc file operations (FUSE ops)', async () => {
    const hda = new IdeBlockDevice(ata, ata.device('hda')!, p.ram.pagePool(64), () => {});
    const hdc = new IdeBlockDevice(ata, ata.device('hdc')!, p.ram.pagePool(8), () => {});
    expect(hda.attr().size).toBe(DISK_BYTES);
    expect(hdc.attr().size).toBe(300 * 2048);
    expect(hdc.open(1)).toBe(30); // EROFS
    const wait = async (x: ReturnType<typeof reply>) => {
      await p.until(() => x.get() !== null, 5000, 'reply');
      return x.get()!;
    };
    // Unaligned read across sectors.
    let x = reply();
    hda.read(3 * 512 + 7, 1000, x.r);
    expect((await wait(x)).value.equals(readFileSync(join(dir, 'disk.img')).subarray(3 * 512 + 7, 3 * 512 + 1007))).toBe(true);
    // Aligned write straight from receive pages (what FUSE hands over).
    const pages: RxPage[] = [];
    const payload = Buffer.alloc(3 * 4096, 0x5e);
    for (let i = 0; i < 3; i++) {
      const pg = hda.allocRx()!;
      pg.view.set(payload.subarray(i * 4096, (i + 1) * 4096));
      pages.push(pg);
    }
    x = reply();
    hda.write(4096 * 10, payload.length, pages, x.r);
    expect(await wait(x)).toEqual({ kind: 'written', value: payload.length });
    // Unaligned write: read-modify-write.
    const pg = hda.allocRx()!;
    pg.view.set(Buffer.from('hello, sector boundary'));
    x = reply();
    hda.write(512 * 30 + 500, 22, [pg], x.r);
    expect(await wait(x)).toEqual({ kind: 'written', value: 22 });
    x = reply();
    hda.fsync(false, x.r);
    expect((await wait(x)).kind).toBe('ok');
    const file = readFileSync(join(dir, 'disk.img'));
    expect(file.subarray(4096 * 10, 4096 * 13).equals(payload)).toBe(true);
    expect(file.subarray(512 * 30 + 500, 512 * 30 + 522).toString('latin1')).toBe('hello, sector boundary');
    expect(file.subarray(512 * 30, 512 * 30 + 6).toString('latin1')).toBe('SECT30');
    // A CD read spanning blocks.
    x = reply();
    hdc.read(16 * 2048 - 10, 20, x.r);
    expect((await wait(x)).value.equals(iso.subarray(16 * 2048 - 10, 16 * 2048 + 10))).toBe(true);
    ata.detachIrq();
  });
});
