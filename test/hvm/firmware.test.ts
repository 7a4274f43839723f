// The HVM guest's firmware against a real PcMachine (firmware: false): PCI enumeration, BAR
// sizing and assignment, PIRQ routing and interrupt lines, IDE decode, and the boot sequence.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFirmware, type FirmwareResult } from '../../guest/hvm/firmware/firmware.js';
import { chooseBootDevice, parseBootOrder } from '../../guest/hvm/firmware/boot-order.js';
import { TestPlatform } from './harness.js';

let dir = '';
let p: TestPlatform;
let fw: FirmwareResult;
const lines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xenode-hvm-fw-'));
  const disk = Buffer.alloc(4 * 1024 * 1024);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  writeFileSync(join(dir, 'disk.img'), disk);
  const iso = Buffer.alloc(64 * 2048);
  iso[16 * 2048] = 1;
  iso.write('CD001', 16 * 2048 + 1, 'latin1');
  writeFileSync(join(dir, 'cd.iso'), iso);
  p = await TestPlatform.start({
    nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }, { devid: 1, mac: '00:16:3e:00:00:02' }],
    disks: [
      { index: 0, path: join(dir, 'disk.img') },
      { index: 2, path: join(dir, 'cd.iso'), cdrom: true },
    ],
  });
  fw = await runFirmware({ cpu: p.cpu, ram: p.ramBuf, bootOrder: 'dc', log: (l) => lines.push(l) });
}, 30_000);

afterAll(async () => {
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('HVM firmware', () => {
  it('enumerates every device of the machine', () => {
    const ids = fw.devices.map((d) => `${d.dev}.${d.fn} ${d.vendor.toString(16)}:${d.device.toString(16)}`);
    expect(ids).toEqual(['0.0 8086:1237', '1.0 8086:7000', '1.1 8086:7010', '1.3 8086:7113', '3.0 5853:1', '4.0 10ec:8139', '5.0 10ec:8139']);
    // The PIIX4 ACPI PM function: its SCI hard-wired to IRQ 9, as hvmloader programs it.
    expect(fw.devices.find((d) => d.device === 0x7113)!.irq).toBe(9);
    const ide = fw.devices.find((d) => d.device === 0x7010)!;
    expect(ide.classCode).toBe(0x010180);
    expect(ide.bars[4]).toMatchObject({ kind: 'io', size: 16 });
    const plat = fw.devices.find((d) => d.vendor === 0x5853)!;
    expect(plat.bars[0]).toMatchObject({ kind: 'io', size: 256 });
    expect(plat.bars[1]).toMatchObject({ kind: 'mem', size: 16 * 1024 * 1024, prefetchable: true });
    const nic = fw.devices.find((d) => d.device === 0x8139)!;
    expect(nic.bars[0]).toMatchObject({ kind: 'io', size: 256 });
    expect(nic.bars[1]).toMatchObject({ kind: 'mem', size: 256 });
    expect(nic.pin).toBe(1);
  });

  it('assigns BARs, routes PIRQs, sets interrupt lines and enables decode, as the machine sees it', async () => {
    const { pci, idetim, pirq } = await p.pci();
    expect(pirq).toEqual([10, 11, 10, 11]);
    expect(idetim.every((t: number) => (t & 0x8000) !== 0)).toBe(true);
    const at = (dev: number, fn: number) => pci.find((f: any) => f.dev === dev && f.fn === fn);
    expect(at(1, 1).bars[4]).toMatchObject({ base: 0xc000, decodes: true });
    expect(at(3, 0).bars[0]).toMatchObject({ base: 0xc100, decodes: true });
    expect(at(4, 0).bars[0]).toMatchObject({ base: 0xc200, decodes: true });
    expect(at(5, 0).bars[0]).toMatchObject({ base: 0xc300, decodes: true });
    expect(at(3, 0).bars[1]).toMatchObject({ base: 0xf0000000, decodes: true });
    expect(at(4, 0).bars[1].base).toBe(0xf1000000);
    expect(at(5, 0).bars[1].base).toBe(0xf1000100);
    // INTA of slot 3 -> PIRQ C -> 10; slot 4 -> PIRQ D -> 11; slot 5 -> PIRQ A -> 10
    expect(at(3, 0).line).toBe(10);
    expect(at(4, 0).line).toBe(11);
    expect(at(5, 0).line).toBe(10);
    expect(fw.devices.find((d) => d.dev === 4)!.irq).toBe(11);
    // Bus mastering stays off until a driver asks; I/O + memory decode on.
    expect(at(4, 0).command & 0x7).toBe(0x3);
    expect(lines).toContain('pci dev 04:0 INTA->IRQ11');
    expect(lines).toContain('PCI-ISA link 0 routed to IRQ10');
    expect(lines).toContain('pci dev 03:0 bar 14 size 001000000: 0f0000008');
  });

  it('honours the boot order and checks for an MBR and an ISO 9660 volume', () => {
    expect(lines).toContain('Booting from DVD/CD...');
    expect(fw.boot).toEqual({ letter: 'd', device: 'hdc' });
    expect(lines.some((l) => /ata0-0: XENODE HARDDISK ATA-7 Hard-Disk \(4 MiBytes\)/.test(l))).toBe(true);
    expect(lines.some((l) => /ata1-0: XENODE DVD-ROM ATAPI-4 DVD\/CD/.test(l))).toBe(true);
    expect(lines.indexOf('Booting from Hard Disk...')).toBe(-1);
  });

  it('falls through unbootable devices to "No bootable device."', async () => {
    const log: string[] = [];
    const blank = { name: 'hda', kind: 'disk' as const, readBlock: async () => new Uint8Array(512) };
    expect(await chooseBootDevice(parseBootOrder('nc'), [blank], (l) => log.push(l))).toBeNull();
    expect(log.filter(Boolean)).toEqual([
      'Booting from ROM...',
      'Boot failed: no PXE option ROM (network boot is not supported)',
      'Booting from Hard Disk...',
      'Boot failed: not a bootable disk',
      'No bootable device.',
    ]);
    expect(parseBootOrder(undefined)).toEqual(['c', 'd']);
    expect(parseBootOrder('dxcd')).toEqual(['d', 'c']);
  });

  it('counts exits by device', () => {
    const c = p.cpu.exitCounters();
    expect(c.total).toBeGreaterThan(100);
    expect(c.pciConfig).toBeGreaterThan(50);
    expect(c.byDevice['pci-config']!.exits).toBeGreaterThan(100);
    expect(c.byDevice['ide0']!.exits).toBeGreaterThan(0);
    expect(c.byDevice['unclaimed']).toBeUndefined();
  });
});
