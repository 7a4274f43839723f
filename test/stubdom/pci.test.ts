// PCI enumeration the way Linux's pci_conf1 + pci_scan_slot do it: mechanism #1 probe, bus 0
// scan (vendor ID, header type for multi-function), class codes, BAR sizing with all-ones,
// command register decode gating, interrupt line/pin, and the PIIX3 PIRQ routing.
import { describe, expect, it } from 'vitest';
import { makeMachine, scratchDir, makeImage } from './helpers.js';

function scan(cpu: ReturnType<typeof makeMachine>['cpu']) {
  const found: { dev: number; fn: number; id: number; cls: number; hdr: number }[] = [];
  for (let dev = 0; dev < 32; dev++) {
    for (let fn = 0; fn < 8; fn++) {
      const id = cpu.pciRead(dev, fn, 0, 4);
      if (id === 0xffffffff || id === 0) {
        if (fn === 0) break;
        continue;
      }
      const hdr = cpu.pciRead(dev, fn, 0x0e, 1);
      found.push({ dev, fn, id, cls: cpu.pciRead(dev, fn, 0x08, 4) >>> 8, hdr });
      if (fn === 0 && !(hdr & 0x80)) break;
    }
  }
  return found;
}

describe('PCI host bridge and config mechanism #1', () => {
  it('passes Linux pci_check_type1 and enumerates every device with the right IDs', () => {
    const { cpu } = makeMachine({ nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }, { devid: 1, mac: '00:16:3e:00:00:02' }] });
    // pci_check_type1: outb(0x01, 0xCFB); tmp = inl(0xCF8); outl(0x80000000, 0xCF8); inl == 0x80000000
    cpu.outb(0xcfb, 0x01);
    const tmp = cpu.inl(0xcf8);
    cpu.outl(0xcf8, 0x80000000);
    expect(cpu.inl(0xcf8)).toBe(0x80000000);
    cpu.outl(0xcf8, tmp);
    const devs = scan(cpu);
    expect(devs.map((d) => [d.dev, d.fn, d.id.toString(16), d.cls.toString(16)])).toEqual([
      [0, 0, '12378086', '60000'],
      [1, 0, '70008086', '60100'],
      [1, 1, '70108086', '10180'],
      [1, 3, '71138086', '68000'],
      [3, 0, '15853', 'ff8000'],
      [4, 0, '813910ec', '20000'],
      [5, 0, '813910ec', '20000'],
    ]);
    expect(devs[1]!.hdr).toBe(0x80); // PIIX3 is multi-function
    expect(cpu.pciRead(4, 0, 0x08, 1)).toBe(0x10); // 8139C, not C+ (8139too takes it)
    expect(cpu.pciRead(3, 0, 0x2c, 4)).toBe(0x00015853); // subsystem
    // Disabled config cycle and other buses: all ones.
    cpu.outl(0xcf8, 0x00000000);
    expect(cpu.inl(0xcfc)).toBe(0xffffffff);
    cpu.outl(0xcf8, 0x80010000);
    expect(cpu.inl(0xcfc)).toBe(0xffffffff);
  });

  it('sizes BARs with all-ones and gates decode with the command register', () => {
    const { cpu, m } = makeMachine({ nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }] });
    const io = cpu.bar(4, 0, 0);
    const mmio = cpu.bar(4, 0, 1);
    expect(io).toBeGreaterThanOrEqual(0xc000);
    expect(mmio).toBeGreaterThanOrEqual(0xf0000000);
    // The NIC answers at both BARs (IDR0 = first MAC byte).
    expect(cpu.inb(io)).toBe(0x00);
    expect(cpu.inb(io + 5)).toBe(0x01);
    expect(cpu.readb(mmio + 5)).toBe(0x01);
    // Sizing as pci_read_bases does: decode off, write ~0, read mask, restore.
    const cmd = cpu.pciRead(4, 0, 4, 2);
    cpu.pciWrite(4, 0, 4, 2, cmd & ~3);
    expect(cpu.inb(io + 5)).toBe(0xff); // I/O decode off: open bus
    expect(cpu.readb(mmio + 5)).toBe(0xff);
    cpu.pciWrite(4, 0, 0x10, 4, 0xffffffff);
    cpu.pciWrite(4, 0, 0x14, 4, 0xffffffff);
    cpu.pciWrite(4, 0, 0x18, 4, 0xffffffff);
    expect(cpu.pciRead(4, 0, 0x10, 4)).toBe(0xffffff01); // 256 bytes of I/O
    expect(cpu.pciRead(4, 0, 0x14, 4)).toBe(0xffffff00); // 256 bytes of 32-bit MMIO
    expect(cpu.pciRead(4, 0, 0x18, 4)).toBe(0); // unimplemented BAR
    expect(cpu.pciRead(3, 0, 0x14, 4)).toBe(mmioPlatform(cpu));
    cpu.pciWrite(3, 0, 0x14, 4, 0xffffffff);
    expect(cpu.pciRead(3, 0, 0x14, 4)).toBe(0xff000008); // 16 MiB prefetchable
    cpu.pciWrite(4, 0, 0x10, 4, 0xd000);
    cpu.pciWrite(4, 0, 0x14, 4, 0xfe000000);
    cpu.pciWrite(4, 0, 4, 2, cmd);
    expect(cpu.inb(0xd005)).toBe(0x01);
    expect(cpu.readb(0xfe000005)).toBe(0x01);
    expect(cpu.inb(io + 5)).toBe(0xff); // old location no longer decodes
    // Moving a BAR onto another device's ports is refused (the first owner keeps them).
    const ideBm = cpu.bar(1, 1, 4);
    cpu.pciWrite(4, 0, 0x10, 4, ideBm);
    expect(m.pio.find(ideBm)?.name).toBe('piix3-ide BAR4');
    // Status bits are write-1-to-clear; read-only fields ignore writes.
    cpu.pciWrite(4, 0, 0x00, 4, 0);
    expect(cpu.pciRead(4, 0, 0, 4)).toBe(0x813910ec);
    cpu.pciWrite(4, 0, 0x3d, 1, 3);
    expect(cpu.pciRead(4, 0, 0x3d, 1)).toBe(1);
  });

  it('routes INTx through the PIIX3 PIRQ registers and reports it in Interrupt Line', () => {
    const { cpu, m, sink } = makeMachine({ nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }] });
    // Slot 4 INTA -> PIRQ (4-1+0)&3 = 3 = PIRQD -> IRQ 11 by default.
    expect(cpu.pciRead(4, 0, 0x3c, 1)).toBe(11);
    expect(cpu.pciRead(4, 0, 0x3d, 1)).toBe(1);
    expect(cpu.pciRead(1, 0, 0x63, 1)).toBe(11);
    const nic = m.nic(0)!;
    nic.setIrq(true);
    expect(sink.level(11)).toBe(true);
    expect(cpu.pciRead(4, 0, 0x06, 2) & 0x08).toBe(0x08); // status: interrupt pending
    // INTx Disable masks the pin but not the status bit.
    cpu.pciWrite(4, 0, 0x04, 2, cpu.pciRead(4, 0, 0x04, 2) | 0x400);
    expect(sink.level(11)).toBe(false);
    cpu.pciWrite(4, 0, 0x04, 2, cpu.pciRead(4, 0, 0x04, 2) & ~0x400);
    expect(sink.level(11)).toBe(true);
    // The guest re-routes PIRQD to IRQ 5: the asserted line moves.
    cpu.pciWrite(1, 0, 0x63, 1, 5);
    expect(sink.level(11)).toBe(false);
    expect(sink.level(5)).toBe(true);
    // Disabled (bit 7) or reserved IRQ: not connected.
    cpu.pciWrite(1, 0, 0x63, 1, 0x80);
    expect(sink.level(5)).toBe(false);
    cpu.pciWrite(1, 0, 0x63, 1, 2);
    expect(sink.level(2)).toBe(false);
  });

  it('turns an 0xCF9 reset request into the embedder callback', () => {
    const resets: boolean[] = [];
    const { cpu } = makeMachine({ onReset: (hard) => resets.push(hard) });
    cpu.outb(0xcf9, 0x02);
    expect(resets).toEqual([]);
    cpu.outb(0xcf9, 0x06);
    expect(resets).toEqual([true]);
    cpu.outb(0xcf9, 0x04);
    expect(resets).toEqual([true, false]);
  });

  it('PIIX3 IDE: legacy mode, BAR4 bus master, IDETIM decode enable', () => {
    const { dir, cleanup } = scratchDir();
    try {
      makeImage(`${dir}/d.img`, 1024 * 1024);
      const { cpu } = makeMachine({ disks: [{ index: 0, path: `${dir}/d.img` }] });
      expect(cpu.pciRead(1, 1, 0x09, 1)).toBe(0x80);
      expect(cpu.pciRead(1, 1, 0x20, 4) & 1).toBe(1);
      expect(cpu.pciRead(1, 1, 0x40, 2) & 0x8000).toBe(0x8000);
      expect(cpu.inb(0x1f7)).toBe(0x50);
      // ata_piix's "port disabled" check: clearing IDETIM decode hides the channel.
      cpu.pciWrite(1, 1, 0x40, 2, 0);
      expect(cpu.inb(0x1f7)).toBe(0xff);
      cpu.pciWrite(1, 1, 0x40, 2, 0x8000);
      expect(cpu.inb(0x1f7)).toBe(0x50);
      expect(cpu.inb(0x177)).toBe(0xff); // empty secondary channel floats
    } finally {
      cleanup();
    }
  });
});

describe('PCI against a hostile guest', () => {
  it('garbage in every config register of every function cannot hijack fixed ports', () => {
    const { dir, cleanup } = scratchDir();
    try {
      makeImage(`${dir}/d.img`, 1024 * 1024);
      const { cpu, m } = makeMachine({ disks: [{ index: 0, path: `${dir}/d.img` }], nics: [{ devid: 0, mac: '00:16:3e:00:00:01' }], serial: [{}] });
      let seed = 4242;
      const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);
      const targets = [0xcf8, 0x1f0, 0x3f6, 0x3f8, 0x10, 0x170];
      for (let i = 0; i < 20000; i++) {
        const v = rnd();
        const dev = [0, 1, 3, 4, 7][v % 5]!;
        const fn = dev === 1 ? (v >> 3) & 1 : 0;
        const reg = (v >>> 8) & 0xfc;
        // Aim BARs at the fixed ports and at each other half of the time.
        const val = reg >= 0x10 && reg < 0x28 && v & 0x10000 ? targets[v % targets.length]! : rnd();
        cpu.pciWrite(dev, fn, reg, 4, val);
      }
      // Config mechanism, IDE legacy ports, COM1 and the platform ports still belong to their owners.
      expect(m.pio.find(0xcf8)?.name).toBe('pci-config');
      expect(m.pio.find(0x1f0)?.name).toBe('ide0');
      expect(m.pio.find(0x3f8)?.name).toBe('com1');
      expect(m.pio.find(0x10)?.name).toBe('xen-platform-fixed');
      expect(cpu.pciRead(0, 0, 0, 4)).toBe(0x12378086);
      expect(cpu.pciRead(4, 0, 0, 4)).toBe(0x813910ec);
      // Registered ranges never overlap.
      const rs = [...m.pio.regions(), ...m.mmio.regions()];
      for (const a of rs) for (const b of rs) if (a !== b && a.handler !== b.handler) {
        const sameBus = m.pio.regions().includes(a) === m.pio.regions().includes(b);
        if (sameBus) expect(a.base + a.length <= b.base || b.base + b.length <= a.base).toBe(true);
      }
    } finally {
      cleanup();
    }
  });
});

function mmioPlatform(cpu: ReturnType<typeof makeMachine>['cpu']): number {
  return (cpu.bar(3, 0, 1) | 0x8) >>> 0;
}
