// PIIX3 IDE driven like ata_piix/libata does: SRST and signatures, IDENTIFY, PIO read/write
// (single, MULTIPLE, LBA48), bus-master DMA through PRD tables, FLUSH, SET FEATURES; an ATAPI
// CD-ROM through PACKET (PIO with byte-count limits, and DMA); then the hostile cases: PRD
// tables outside RAM, looping, short, wrong direction, no bus mastering, garbage registers.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestCpu, makeImage, makeMachine, MiB, scratchDir } from './helpers.js';

const PRI = 0x1f0;
const PRI_CTL = 0x3f6;
const SEC = 0x170;
const SEC_CTL = 0x376;
const PRD = 0x8000;
const BUF = 0x10000;

let dir = '';
let cleanup = () => {};
beforeEach(() => {
  ({ dir, cleanup } = scratchDir());
});
afterEach(() => cleanup());

function setup(opts: { cdrom?: boolean; emptyCd?: boolean; readOnly?: boolean } = {}) {
  const disk = `${dir}/disk.img`;
  const iso = `${dir}/cd.iso`;
  const diskData = makeImage(disk, 4 * MiB);
  const isoData = makeImage(iso, 2 * MiB, 2048);
  const disks = [{ index: 0, path: disk, readOnly: opts.readOnly }];
  if (opts.cdrom) disks.push({ index: 2, path: opts.emptyCd ? (null as unknown as string) : iso, cdrom: true } as never);
  const t = makeMachine({ disks });
  const bm = t.cpu.bar(1, 1, 4);
  return { ...t, disk, iso, diskData, isoData, bm, ide: t.m.ide };
}

/** libata: wait for !BSY, then (for interrupt-driven commands) read STATUS to ack. */
function status(cpu: GuestCpu, base = PRI): number {
  return cpu.inb(base + 7);
}

function taskfile(cpu: GuestCpu, base: number, lba: number, count: number, cmd: number, lba48 = false, dev = 0) {
  if (lba48) {
    cpu.outb(base + 2, (count >> 8) & 0xff);
    cpu.outb(base + 3, Math.floor(lba / 2 ** 24) & 0xff);
    cpu.outb(base + 4, Math.floor(lba / 2 ** 32) & 0xff);
    cpu.outb(base + 5, Math.floor(lba / 2 ** 40) & 0xff);
  }
  cpu.outb(base + 2, count & 0xff);
  cpu.outb(base + 3, lba & 0xff);
  cpu.outb(base + 4, (lba >> 8) & 0xff);
  cpu.outb(base + 5, (lba >> 16) & 0xff);
  cpu.outb(base + 6, 0xe0 | (dev << 4) | (lba48 ? 0 : (lba >> 24) & 0x0f));
  cpu.outb(base + 7, cmd);
}

function words(mem: ReturnType<typeof setup>['mem'], gpa: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(mem.readU16(gpa + 2 * i)!);
  return out;
}

function ataString(w: number[], from: number, n: number): string {
  let s = '';
  for (let i = from; i < from + n; i++) s += String.fromCharCode(w[i]! >> 8, w[i]! & 0xff);
  return s.trim();
}

/** Builds a PRD table: [gpa, bytes][] with EOT on the last. */
function prd(mem: ReturnType<typeof setup>['mem'], at: number, entries: [number, number][], eot = true) {
  entries.forEach(([gpa, n], i) => {
    mem.writeU32(at + 8 * i, gpa);
    mem.writeU32(at + 8 * i + 4, (n & 0xffff) | (eot && i === entries.length - 1 ? 0x80000000 : 0));
  });
}

/** ata_bmdma_setup + exec + ata_bmdma_start, as libata orders them. */
function dmaCommand(cpu: GuestCpu, bm: number, toMemory: boolean, issue: () => void) {
  cpu.outl(bm + 4, PRD);
  cpu.outb(bm, toMemory ? 0x08 : 0x00);
  cpu.outb(bm + 2, cpu.inb(bm + 2) | 0x06); // clear INT and ERR
  issue();
  cpu.outb(bm, cpu.inb(bm) | 0x01);
}

describe('PIIX3 IDE: ATA disk', () => {
  it('soft reset leaves the ATA signature; IDENTIFY describes the image', () => {
    const { cpu, mem, sink } = setup();
    cpu.outb(PRI_CTL, 0x04);
    expect(status(cpu) & 0x80).toBe(0x80);
    cpu.outb(PRI_CTL, 0x00);
    expect([2, 3, 4, 5].map((r) => cpu.inb(PRI + r))).toEqual([1, 1, 0, 0]);
    expect(cpu.inb(PRI + 1)).toBe(0x01); // diagnostic code
    expect(status(cpu)).toBe(0x50);
    cpu.outb(PRI + 6, 0xa0);
    cpu.outb(PRI + 7, 0xec);
    expect(sink.level(14)).toBe(true);
    expect(cpu.inb(PRI_CTL) & 0x08).toBe(0x08); // alt status: DRQ, IRQ still pending
    expect(sink.level(14)).toBe(true);
    expect(status(cpu)).toBe(0x58);
    expect(sink.level(14)).toBe(false);
    cpu.ins(PRI, 2, 0x1000, 256);
    expect(status(cpu)).toBe(0x50);
    const w = words(mem, 0x1000, 256);
    expect(w[0]).toBe(0x0040);
    expect(ataString(w, 27, 20)).toBe('XENODE HARDDISK');
    expect(w[60]! | (w[61]! << 16)).toBe(8192); // 4 MiB / 512
    expect(w[100]).toBe(8192);
    expect(w[83]! & 0x3400).toBe(0x3400); // LBA48, FLUSH CACHE, FLUSH CACHE EXT
    expect(w[49]! & 0x0300).toBe(0x0300); // LBA, DMA
    // The absent slave: status and error read 0, latched registers read back.
    cpu.outb(PRI + 6, 0xb0);
    expect(status(cpu)).toBe(0);
    cpu.outb(PRI + 2, 0x55);
    expect(cpu.inb(PRI + 2)).toBe(0x55);
    cpu.outb(PRI + 7, 0xec); // ignored
    expect(status(cpu)).toBe(0);
  });

  it('PIO READ/WRITE SECTORS, READ MULTIPLE and LBA48 move the right sectors', () => {
    const { cpu, mem, sink, disk, diskData, ide } = setup();
    cpu.outb(PRI + 6, 0xe0);
    taskfile(cpu, PRI, 5, 3, 0x20);
    for (let s = 0; s < 3; s++) {
      expect(sink.level(14)).toBe(true);
      expect(status(cpu) & 0x89).toBe(0x08);
      cpu.ins(PRI, 2, 0x2000 + 512 * s, 256);
    }
    expect(status(cpu)).toBe(0x50);
    expect(sink.level(14)).toBe(false); // PIO data-in ends without an interrupt
    expect(Buffer.from(mem.bytes.subarray(0x2000, 0x2000 + 1536)).equals(diskData.subarray(5 * 512, 8 * 512))).toBe(true);

    // 32-bit data port reads work too (word 48 says dword I/O).
    taskfile(cpu, PRI, 9, 1, 0x20);
    status(cpu);
    cpu.ins(PRI, 4, 0x3000, 128);
    expect(Buffer.from(mem.bytes.subarray(0x3000, 0x3200)).equals(diskData.subarray(9 * 512, 10 * 512))).toBe(true);

    // WRITE SECTORS: first block without interrupt, then one per block.
    const payload = Buffer.alloc(1024, 0xab);
    payload.write('written by the guest', 0);
    mem.write(0x4000, payload);
    taskfile(cpu, PRI, 100, 2, 0x30);
    expect(status(cpu) & 0x08).toBe(0x08);
    expect(sink.level(14)).toBe(false);
    cpu.outs(PRI, 2, 0x4000, 256);
    expect(sink.level(14)).toBe(true);
    expect(status(cpu) & 0x08).toBe(0x08);
    cpu.outs(PRI, 2, 0x4200, 256);
    expect(sink.level(14)).toBe(true);
    expect(status(cpu)).toBe(0x50);
    expect(readFileSync(disk).subarray(100 * 512, 102 * 512).equals(payload)).toBe(true);

    // SET MULTIPLE 4, READ MULTIPLE 8 sectors: two DRQ blocks of 2 KiB.
    cpu.outb(PRI + 2, 4);
    cpu.outb(PRI + 7, 0xc6);
    expect(status(cpu)).toBe(0x50);
    taskfile(cpu, PRI, 200, 8, 0xc4);
    let irqs = 0;
    for (let b = 0; b < 2; b++) {
      if (sink.level(14)) irqs++;
      status(cpu);
      cpu.ins(PRI, 2, 0x5000 + 2048 * b, 1024);
    }
    expect(irqs).toBe(2);
    expect(Buffer.from(mem.bytes.subarray(0x5000, 0x5000 + 4096)).equals(diskData.subarray(200 * 512, 208 * 512))).toBe(true);

    // READ SECTORS EXT at an LBA48 address inside the disk.
    taskfile(cpu, PRI, 8000, 2, 0x24, true);
    status(cpu);
    cpu.ins(PRI, 2, 0x6000, 256);
    status(cpu);
    cpu.ins(PRI, 2, 0x6200, 256);
    expect(Buffer.from(mem.bytes.subarray(0x6000, 0x6400)).equals(diskData.subarray(8000 * 512, 8002 * 512))).toBe(true);
    // HOB readback of the high-order bytes.
    cpu.outb(PRI_CTL, 0x80);
    expect(cpu.inb(PRI + 2)).toBe(0);
    cpu.outb(PRI_CTL, 0x00);
    expect(ide.metrics.sectorsRead).toBe(3 + 1 + 8 + 2);
    expect(ide.metrics.sectorsWritten).toBe(2);
  });

  it('READ DMA / WRITE DMA through a PRD table, FLUSH CACHE, SET FEATURES', () => {
    const { cpu, mem, sink, bm, disk, diskData, ide } = setup();
    cpu.enableBusMaster(1, 1);
    prd(mem, PRD, [
      [BUF, 1024],
      [BUF + 0x10000, 1024],
    ]);
    cpu.outb(PRI + 6, 0xe0);
    dmaCommand(cpu, bm, true, () => taskfile(cpu, PRI, 20, 4, 0xc8));
    expect(sink.level(14)).toBe(true);
    expect(cpu.inb(bm + 2) & 0x07).toBe(0x04); // INT, not active (PRD exhausted), no error
    cpu.outb(bm, cpu.inb(bm) & ~1);
    expect(status(cpu)).toBe(0x50);
    expect(Buffer.from(mem.bytes.subarray(BUF, BUF + 1024)).equals(diskData.subarray(20 * 512, 22 * 512))).toBe(true);
    expect(Buffer.from(mem.bytes.subarray(BUF + 0x10000, BUF + 0x10400)).equals(diskData.subarray(22 * 512, 24 * 512))).toBe(true);

    // Start before the command (some drivers do) and a PRD larger than the transfer.
    prd(mem, PRD, [[BUF, 0]]); // 0 = 64 KiB
    const out = Buffer.alloc(1024, 0x5c);
    mem.write(BUF, out);
    cpu.outl(bm + 4, PRD);
    cpu.outb(bm + 2, 0x06);
    cpu.outb(bm, 0x01); // start, memory -> device
    taskfile(cpu, PRI, 300, 2, 0xca);
    expect(cpu.inb(bm + 2) & 0x07).toBe(0x05); // INT and still active: PRD not exhausted
    cpu.outb(bm, 0x00);
    expect(status(cpu)).toBe(0x50);
    expect(readFileSync(disk).subarray(300 * 512, 302 * 512).equals(out)).toBe(true);

    cpu.outb(PRI + 7, 0xe7);
    expect(status(cpu)).toBe(0x50);
    expect(ide.metrics.flushes).toBe(1);
    // SET FEATURES: MWDMA2 is reflected in IDENTIFY word 63, a bogus mode aborts.
    cpu.outb(PRI + 1, 0x03);
    cpu.outb(PRI + 2, 0x22);
    cpu.outb(PRI + 7, 0xef);
    expect(status(cpu)).toBe(0x50);
    cpu.outb(PRI + 7, 0xec);
    status(cpu);
    cpu.ins(PRI, 2, 0x1000, 256);
    expect(mem.readU16(0x1000 + 2 * 63)! & 0x0700).toBe(0x0400);
    cpu.outb(PRI + 1, 0x03);
    cpu.outb(PRI + 2, 0x77);
    cpu.outb(PRI + 7, 0xef);
    expect(status(cpu)).toBe(0x41); // DRDY | ERR, error ABRT
    expect(cpu.inb(PRI + 1)).toBe(0x04);
    expect(ide.metrics.dmaTransfers).toBe(2);
  });

  it('refuses out-of-range sectors (IDNF), unknown commands (ABRT), writes to read-only images', () => {
    const { cpu, disk } = setup({ readOnly: true });
    const before = readFileSync(disk);
    taskfile(cpu, PRI, 8190, 4, 0x20);
    expect(status(cpu)).toBe(0x41);
    expect(cpu.inb(PRI + 1)).toBe(0x10);
    taskfile(cpu, PRI, 2 ** 40, 1, 0x24, true);
    expect(status(cpu)).toBe(0x41);
    cpu.outb(PRI + 7, 0xb0); // SMART: not supported
    expect(status(cpu)).toBe(0x41);
    expect(cpu.inb(PRI + 1)).toBe(0x04);
    taskfile(cpu, PRI, 0, 1, 0x30);
    expect(status(cpu)).toBe(0x41);
    cpu.outs(PRI, 2, 0, 256); // ignored: no DRQ
    expect(readFileSync(disk).equals(before)).toBe(true);
  });
});

describe('PIIX3 IDE: ATAPI CD-ROM', () => {
  /** PACKET + 12-byte CDB (PIO or DMA); returns what the guest collected by PIO. */
  function packet(cpu: GuestCpu, cdb: number[], opts: { limit?: number; dma?: boolean; mem?: ReturnType<typeof setup>['mem'] } = {}) {
    const limit = opts.limit ?? 0xfffe;
    cpu.outb(SEC + 6, 0xa0);
    cpu.outb(SEC + 1, opts.dma ? 1 : 0);
    cpu.outb(SEC + 4, limit & 0xff);
    cpu.outb(SEC + 5, limit >> 8);
    cpu.outb(SEC + 7, 0xa0);
    const st = cpu.inb(SEC_CTL);
    expect(st & 0x88).toBe(0x08);
    expect(cpu.inb(SEC + 2) & 3).toBe(1); // CoD, to device
    const c = [...cdb, ...new Array(12 - cdb.length).fill(0)];
    for (let i = 0; i < 12; i += 2) cpu.outw(SEC, c[i]! | (c[i + 1]! << 8));
    const blocks: number[] = [];
    const data: number[] = [];
    if (opts.dma) return { blocks, data: new Uint8Array(0) };
    for (let guard = 0; guard < 10000; guard++) {
      const s = cpu.inb(SEC + 7);
      const reason = cpu.inb(SEC + 2) & 3;
      if (!(s & 0x08)) {
        expect(reason).toBe(3); // IO | CoD: command complete
        break;
      }
      expect(reason).toBe(2); // data to host
      const n = cpu.inb(SEC + 4) | (cpu.inb(SEC + 5) << 8);
      blocks.push(n);
      for (let i = 0; i < n; i += 2) {
        const w = cpu.inw(SEC);
        data.push(w & 0xff, w >> 8);
      }
      if (n & 1) data.pop();
    }
    return { blocks, data: new Uint8Array(data) };
  }

  it('is found by its signature and answers IDENTIFY PACKET DEVICE', () => {
    const { cpu, mem } = setup({ cdrom: true });
    cpu.outb(SEC_CTL, 0x04);
    cpu.outb(SEC_CTL, 0x00);
    expect([2, 3, 4, 5].map((r) => cpu.inb(SEC + r))).toEqual([1, 1, 0x14, 0xeb]);
    expect(cpu.inb(SEC + 7)).toBe(0); // ATAPI: DRDY clear after reset
    cpu.outb(SEC + 7, 0xec); // IDENTIFY DEVICE: aborted, signature kept
    expect(cpu.inb(SEC + 7)).toBe(0x41);
    expect([4, 5].map((r) => cpu.inb(SEC + r))).toEqual([0x14, 0xeb]);
    cpu.outb(SEC + 7, 0xa1);
    expect(cpu.inb(SEC + 7) & 0x08).toBe(0x08);
    cpu.ins(SEC, 2, 0x1000, 256);
    const w = words(mem, 0x1000, 256);
    expect(w[0]).toBe(0x85c0);
    expect(ataString(w, 27, 20)).toBe('XENODE DVD-ROM');
  });

  it('TEST UNIT READY, INQUIRY, READ CAPACITY, MODE SENSE, READ TOC', () => {
    const { cpu } = setup({ cdrom: true });
    expect(packet(cpu, [0x00]).data.length).toBe(0);
    expect(cpu.inb(SEC + 7) & 1).toBe(0);
    const inq = packet(cpu, [0x12, 0, 0, 0, 36]).data;
    expect(inq[0]).toBe(0x05);
    expect(inq[1]).toBe(0x80);
    expect(Buffer.from(inq.subarray(8, 16)).toString()).toBe('XENODE  ');
    const cap = Buffer.from(packet(cpu, [0x25]).data);
    expect(cap.readUInt32BE(0)).toBe(1023); // 2 MiB / 2048 - 1
    expect(cap.readUInt32BE(4)).toBe(2048);
    const ms = Buffer.from(packet(cpu, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 0xff]).data);
    expect(ms[8]).toBe(0x2a);
    expect(ms.readUInt16BE(0)).toBe(ms.length - 2);
    const toc = Buffer.from(packet(cpu, [0x43, 0, 0, 0, 0, 0, 0, 0, 0xff]).data);
    expect(toc.readUInt16BE(0)).toBe(18);
    expect([toc[2], toc[3], toc[6]]).toEqual([1, 1, 1]);
    expect(toc[14]).toBe(0xaa);
    expect(toc.readUInt32BE(16)).toBe(1024);
  });

  it('READ(10) by PIO in byte-count-limited DRQ blocks, and by DMA', () => {
    const { cpu, mem, isoData, bm, sink } = setup({ cdrom: true });
    const r = packet(cpu, [0x28, 0, 0, 0, 0, 10, 0, 0, 3], { limit: 0x1000 });
    expect(r.blocks).toEqual([0x1000, 0x800]);
    expect(Buffer.from(r.data).equals(isoData.subarray(10 * 2048, 13 * 2048))).toBe(true);
    // An odd limit is rounded down to even for all but the last block.
    const odd = packet(cpu, [0x28, 0, 0, 0, 0, 0, 0, 0, 1], { limit: 1001 });
    expect(odd.blocks).toEqual([1000, 1000, 48]);
    expect(Buffer.from(odd.data).equals(isoData.subarray(0, 2048))).toBe(true);
    // DMA: the engine moves 4 sectors into two PRD buffers.
    cpu.enableBusMaster(1, 1);
    prd(mem, PRD, [
      [BUF, 4096],
      [BUF + 0x4000, 4096],
    ]);
    cpu.outl(bm + 8 + 4, PRD);
    cpu.outb(bm + 8, 0x08);
    cpu.outb(bm + 8 + 2, 0x06);
    packet(cpu, [0x28, 0, 0, 0, 0, 100, 0, 0, 4], { dma: true });
    cpu.outb(bm + 8, 0x09);
    expect(sink.level(15)).toBe(true);
    expect(cpu.inb(bm + 8 + 2) & 0x07).toBe(0x04);
    expect(cpu.inb(SEC + 7)).toBe(0x50);
    expect(cpu.inb(SEC + 2) & 3).toBe(3);
    expect(Buffer.from(mem.bytes.subarray(BUF, BUF + 4096)).equals(isoData.subarray(100 * 2048, 102 * 2048))).toBe(true);
    expect(Buffer.from(mem.bytes.subarray(BUF + 0x4000, BUF + 0x5000)).equals(isoData.subarray(102 * 2048, 104 * 2048))).toBe(true);
  });

  it('CHECK CONDITION with sense data: out of range, unknown command, no medium', () => {
    const { cpu } = setup({ cdrom: true });
    packet(cpu, [0x28, 0, 0, 0, 0x04, 0, 0, 0, 1]);
    expect(cpu.inb(SEC + 7) & 1).toBe(1);
    expect(cpu.inb(SEC + 1) >> 4).toBe(5); // ILLEGAL REQUEST
    const sense = packet(cpu, [0x03, 0, 0, 0, 18]).data;
    expect([sense[0], sense[2], sense[12]]).toEqual([0x70, 5, 0x21]);
    const again = packet(cpu, [0x03, 0, 0, 0, 18]).data;
    expect(again[2]).toBe(0); // sense is consumed
    packet(cpu, [0xbb]);
    expect(packet(cpu, [0x03, 0, 0, 0, 18]).data[12]).toBe(0x20);

    const empty = setup({ cdrom: true, emptyCd: true });
    packet(empty.cpu, [0x00]);
    expect(empty.cpu.inb(SEC + 1) >> 4).toBe(2); // NOT READY
    expect(packet(empty.cpu, [0x03, 0, 0, 0, 18]).data[12]).toBe(0x3a);
  });
});

describe('PIIX3 IDE against a hostile guest', () => {
  function dmaRead(t: ReturnType<typeof setup>, sectors: number, opts: { toMemory?: boolean; cmd?: number } = {}) {
    const { cpu, bm } = t;
    cpu.outb(PRI + 6, 0xe0);
    dmaCommand(cpu, bm, opts.toMemory ?? true, () => taskfile(cpu, PRI, 0, sectors & 0xff, opts.cmd ?? 0xc8));
    const bms = cpu.inb(bm + 2);
    cpu.outb(bm, 0);
    return { bms, st: cpu.inb(PRI + 7), err: cpu.inb(PRI + 1) };
  }

  it('PRD table or PRD buffer outside guest RAM: master abort, command fails, nothing written', () => {
    const t = setup();
    t.cpu.enableBusMaster(1, 1);
    t.mem.writeU32(PRD, 16 * MiB - 512);
    t.mem.writeU32(PRD + 4, 0x80000000 | 4096);
    const tail = Buffer.from(t.mem.bytes.subarray(16 * MiB - 512)).toString('hex');
    let r = dmaRead(t, 8);
    expect(r.bms & 0x07).toBe(0x06); // ERR + INT, not active
    expect(r.st & 0x01).toBe(1);
    expect(r.err).toBe(0x04);
    expect(Buffer.from(t.mem.bytes.subarray(16 * MiB - 512)).toString('hex')).toBe(tail);
    expect(t.cpu.pciRead(1, 1, 0x06, 2) & 0x2000).toBe(0x2000);
    // The table itself in the MMIO hole.
    t.cpu.outl(t.bm + 4, 0xf0000000);
    t.cpu.outb(t.bm + 2, 0x06);
    taskfile(t.cpu, PRI, 0, 1, 0xc8);
    t.cpu.outb(t.bm, 0x09);
    expect(t.cpu.inb(t.bm + 2) & 0x02).toBe(0x02);
    t.cpu.outb(t.bm, 0);
    // The channel recovers for the next, valid command.
    t.cpu.inb(PRI + 7);
    prd(t.mem, PRD, [[BUF, 512]]);
    r = dmaRead(t, 1);
    expect(r.bms & 0x07).toBe(0x04);
    expect(r.st).toBe(0x50);
    expect(t.ide.metrics.dmaErrors).toBe(2);
  });

  it('a PRD table without end-of-table stops after 8192 entries', () => {
    const t = setup();
    t.cpu.enableBusMaster(1, 1);
    // 9000 entries of 2 bytes each, all pointing at the same buffer, no EOT anywhere. (The
    // buffer must not sit inside the 72 KB table, or the data would rewrite the table, as it
    // would on real hardware.)
    for (let i = 0; i < 9000; i++) {
      t.mem.writeU32(PRD + 8 * i, 0x100000);
      t.mem.writeU32(PRD + 8 * i + 4, 2);
    }
    const started = Date.now();
    const r = dmaRead(t, 0); // 256 sectors = 128 KiB > 8192 * 2 bytes
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.bms & 0x02).toBe(0x02);
    expect(r.st & 0x01).toBe(1);
    expect(t.ide.metrics.prdEntries).toBe(8192);
  });

  it('a PRD table shorter than the transfer, a wrong direction bit, bus mastering off', () => {
    const t = setup();
    t.cpu.enableBusMaster(1, 1);
    prd(t.mem, PRD, [[BUF, 1024]]);
    let r = dmaRead(t, 4);
    expect(r.bms & 0x02).toBe(0x02);
    expect(r.st & 0x01).toBe(1);
    t.cpu.inb(PRI + 7);
    prd(t.mem, PRD, [[BUF, 2048]]);
    r = dmaRead(t, 4, { toMemory: false }); // READ DMA but the engine set to read memory
    expect(r.bms & 0x02).toBe(0x02);
    t.cpu.pciWrite(1, 1, 0x04, 2, t.cpu.pciRead(1, 1, 0x04, 2) & ~4);
    const snapshot = Buffer.from(t.mem.bytes.subarray(BUF, BUF + 2048)).toString('hex');
    r = dmaRead(t, 4);
    expect(r.bms & 0x02).toBe(0x02);
    expect(Buffer.from(t.mem.bytes.subarray(BUF, BUF + 2048)).toString('hex')).toBe(snapshot);
  });

  it('survives garbage on every port and register, then works after SRST', () => {
    const t = setup({ cdrom: true });
    const { cpu, mem, bm } = t;
    cpu.enableBusMaster(1, 1);
    let seed = 99;
    const rnd = () => (seed = (seed * 1664525 + 1013904223) >>> 0);
    const ports = [...Array(8).keys()].flatMap((i) => [PRI + i, SEC + i]).concat([PRI_CTL, SEC_CTL], [...Array(16).keys()].map((i) => bm + i));
    for (let i = 0; i < 20000; i++) {
      const p = ports[rnd() % ports.length]!;
      const v = rnd();
      switch (v & 3) {
        case 0:
          cpu.outb(p, v >>> 8);
          break;
        case 1:
          cpu.outw(p, v >>> 8);
          break;
        case 2:
          cpu.outl(p, v);
          break;
        default:
          cpu.inw(p);
      }
    }
    // Recovery: SRST both channels, reprogram, and a DMA read works.
    for (const ctl of [PRI_CTL, SEC_CTL]) {
      cpu.outb(ctl, 0x04);
      cpu.outb(ctl, 0x00);
    }
    cpu.outb(bm, 0);
    cpu.outb(bm + 2, 0x06);
    cpu.outb(PRI + 6, 0xa0); // libata selects the device again after reset
    expect(cpu.inb(PRI + 7)).toBe(0x50);
    prd(mem, PRD, [[BUF, 512]]);
    const st = dmaRead(t, 1);
    expect(st.st).toBe(0x50);
    // (sector 0 may have been rewritten by random WRITE commands; compare with the file)
    const now = readFileSync(t.disk).subarray(0, 512);
    expect(Buffer.from(mem.bytes.subarray(BUF, BUF + 512)).equals(now)).toBe(true);
  });
});
