// The Xen platform device and the unplug protocol exactly as Linux's
// arch/x86/xen/platform-pci-unplug.c speaks it, and what the machine does about it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeImage, makeMachine, MiB, scratchDir } from './helpers.js';

let dir = '';
let cleanup = () => {};
beforeEach(() => {
  ({ dir, cleanup } = scratchDir());
});
afterEach(() => cleanup());

function setup(opts: { blacklisted?: boolean } = {}) {
  makeImage(`${dir}/a.img`, MiB);
  makeImage(`${dir}/b.img`, MiB);
  makeImage(`${dir}/cd.iso`, MiB, 2048);
  const unplugged: number[] = [];
  const t = makeMachine({
    nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }, { devid: 1, mac: '00:16:3e:00:00:02' }],
    disks: [
      { index: 0, path: `${dir}/a.img` },
      { index: 1, path: `${dir}/b.img` },
      { index: 2, path: `${dir}/cd.iso`, cdrom: true },
    ],
    onUnplug: (m) => unplugged.push(m),
  });
  if (opts.blacklisted) t.m.platform!.blacklisted = true;
  return { ...t, unplugged };
}

describe('Xen platform PCI device', () => {
  it('is 5853:0001 with an I/O BAR and a 16 MiB MMIO BAR', () => {
    const { cpu } = setup();
    expect(cpu.pciRead(3, 0, 0, 4)).toBe(0x00015853);
    expect(cpu.pciRead(3, 0, 0x08, 4)).toBe(0xff800001); // class ff80, revision 1
    expect(cpu.pciRead(3, 0, 0x3d, 1)).toBe(1);
    const io = cpu.bar(3, 0, 0);
    expect(cpu.inb(io)).toBe(0); // platform flags
    cpu.outb(io, 1);
    expect(cpu.inb(0x10)).toBe(1); // same flags through the fixed port
    const mmio = cpu.bar(3, 0, 1);
    expect(mmio % (16 * MiB)).toBe(0);
    expect(cpu.readl(mmio + 0x123456)).toBe(0);
  });

  it('speaks the unplug protocol: magic, version, product, driver version, mask', () => {
    const { cpu, m, unplugged } = setup();
    expect(cpu.inw(0x10)).toBe(0x49d2);
    expect(cpu.inb(0x12)).toBe(1);
    cpu.outw(0x12, 3); // XEN_IOPORT_LINUX_PRODNUM
    cpu.outl(0x10, 0x12345678); // XEN_IOPORT_LINUX_DRVVER
    expect(cpu.inw(0x10)).toBe(0x49d2);
    cpu.outw(0x10, 0x3); // disks and NICs
    expect(unplugged).toEqual([3]);
    expect(m.platform!.metrics).toMatchObject({ unplugRequests: 1, unplugMask: 3, productNumber: 3, driverVersion: 0x12345678 });
    // NICs are gone from PCI, their BARs no longer decode.
    expect(cpu.pciRead(4, 0, 0, 4)).toBe(0xffffffff);
    expect(cpu.pciRead(5, 0, 0, 4)).toBe(0xffffffff);
    expect(m.pio.regions().some((r) => r.name.startsWith('rtl8139'))).toBe(false);
    expect(m.mmio.regions().some((r) => r.name.startsWith('rtl8139'))).toBe(false);
    // Both IDE disks are gone; the CD-ROM stays (PV drivers do not take over CD-ROMs).
    cpu.outb(0x1f6, 0xa0);
    expect(cpu.inb(0x1f7)).toBe(0xff); // primary channel now empty
    cpu.outb(0x176, 0xa0);
    cpu.outb(0x177, 0xa1);
    expect(cpu.inb(0x177) & 0x08).toBe(0x08);
    // The IDE controller itself stays on the bus.
    expect(cpu.pciRead(1, 1, 0, 4)).toBe(0x70108086);
  });

  it('AUX unplug keeps the primary master; the blacklisted magic is 0xd249', () => {
    const { cpu, m } = setup();
    cpu.outw(0x10, 0x4);
    expect(m.ide.channels[0].drives[0]).not.toBeNull();
    expect(m.ide.channels[0].drives[1]).toBeNull();
    expect(cpu.pciRead(4, 0, 0, 2)).toBe(0x10ec);
    const b = setup({ blacklisted: true });
    expect(b.cpu.inw(0x10)).toBe(0xd249);
  });

  it('logs guest lines from the log port, printable characters only', () => {
    const lines: string[] = [];
    const t = makeMachine({ log: { info: (s) => lines.push(s), warn() {}, error() {} } });
    for (const c of Buffer.from('hi\x07there\n')) t.cpu.outb(0x12, c);
    expect(lines).toContain('xen-platform: guest: hi.there');
  });
});
