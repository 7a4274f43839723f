// PV drivers for HVM, the guest side of the Xen platform device: the unplug handshake as
// Linux's platform-pci-unplug.c speaks it flips the machine (onUnplug): the emulated NICs leave
// the PCI bus and the IDE disks go, while the CD-ROM stays.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFirmware } from '../../guest/hvm/firmware/firmware.js';
import { pciScan } from '../../guest/hvm/firmware/pci.js';
import { AtaPiix } from '../../guest/hvm/drivers/ata-piix.js';
import { pvhvmRequested, unplugMask, xenUnplugEmulated } from '../../guest/hvm/pvhvm.js';
import { TestPlatform } from './harness.js';

let dir = '';
let p: TestPlatform;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xenode-hvm-pv-'));
  writeFileSync(join(dir, 'a.img'), Buffer.alloc(1024 * 1024));
  writeFileSync(join(dir, 'cd.iso'), Buffer.alloc(64 * 2048));
  p = await TestPlatform.start({
    serial: false,
    nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }],
    disks: [
      { index: 0, path: join(dir, 'a.img') },
      { index: 2, path: join(dir, 'cd.iso'), cdrom: true },
    ],
  });
});
afterAll(async () => {
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('PV-on-HVM unplug', () => {
  it('parses the switches', () => {
    expect(pvhvmRequested({ xen_pvhvm: '1' })).toBe(true);
    expect(pvhvmRequested({ xen_pvhvm: '0' })).toBe(false);
    expect(pvhvmRequested({})).toBe(false);
    expect(unplugMask(undefined)).toBe(3);
    expect(unplugMask('nics')).toBe(2);
    expect(unplugMask('ide-disks,nics')).toBe(3);
    expect(unplugMask('aux-ide-disks')).toBe(4);
    expect(unplugMask('never')).toBe(0);
  });

  it('finds the platform device, speaks the protocol and unplugs disks and NICs', async () => {
    const fw = await runFirmware({ cpu: p.cpu, ram: p.ramBuf, log: () => {}, noBoot: true });
    expect(fw.devices.some((d) => d.vendor === 0x10ec)).toBe(true);
    const log: string[] = [];
    const r = xenUnplugEmulated(p.cpu, fw.devices, unplugMask(undefined), (m) => log.push(m));
    expect(r).toEqual({ platform: true, mask: 3 });
    expect((await p.waitFor((m) => m.type === 'unplug')).mask).toBe(3);
    expect(log).toContain('Xen Platform PCI: I/O protocol version 1');
    const m = (await p.metrics()).metrics;
    expect(m.platform).toMatchObject({ unplugRequests: 1, unplugMask: 3, productNumber: 3, driverVersion: 0x060100 });
    // The kernel's own scan no longer sees the NIC; its IDE probe finds only the CD-ROM.
    const devices = pciScan(fw.cfg);
    expect(devices.some((d) => d.vendor === 0x10ec)).toBe(false);
    const ata = await AtaPiix.probe({ cpu: p.cpu, cfg: fw.cfg, pci: devices.find((d) => d.device === 0x7010)!, ram: p.ram, log: () => {} });
    expect(ata.devices.map((d) => `${d.name}:${d.kind}`)).toEqual(['hdc:atapi']);
  });

  it('stays on emulated devices without a platform device', () => {
    const log: string[] = [];
    expect(xenUnplugEmulated(p.cpu, [], 3, (m) => log.push(m))).toEqual({ platform: false, mask: 0 });
    expect(log[0]).toMatch(/device not found/);
  });
});
