// Media change on the stub domain's ATAPI CD-ROM as a guest's sr driver sees it: a new disc is
// UNIT ATTENTION / MEDIUM MAY HAVE CHANGED (06/28/00) once, on the first command that is not
// INQUIRY, REQUEST SENSE or GET EVENT STATUS NOTIFICATION; an empty drive is NOT READY / MEDIUM
// NOT PRESENT (02/3A/00); GESN reports NEW MEDIA once and the media status; READ CAPACITY and
// READ (10) are the new disc's; START STOP UNIT ejects unless PREVENT MEDIUM REMOVAL holds.
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBacking } from '../../stubdom/devices/ide/block-backing.js';
import { AtapiCdrom } from '../../stubdom/devices/ide/atapi-cdrom.js';
import { GuestCpu, makeImage, makeMachine, MiB, scratchDir } from '../stubdom/helpers.js';

const SEC = 0x170;

let dir = '';
let cleanup = () => {};
beforeEach(() => ({ dir, cleanup } = scratchDir()));
afterEach(() => cleanup());

/** PACKET + CDB by PIO; the data-in and the CHECK CONDITION's sense key (0 = good). */
function packet(cpu: GuestCpu, cdb: number[]): { data: number[]; key: number } {
  cpu.outb(SEC + 6, 0xa0);
  cpu.outb(SEC + 1, 0);
  cpu.outb(SEC + 4, 0xfe);
  cpu.outb(SEC + 5, 0xff);
  cpu.outb(SEC + 7, 0xa0);
  const c = [...cdb, ...new Array(12 - cdb.length).fill(0)];
  for (let i = 0; i < 12; i += 2) cpu.outw(SEC, c[i]! | (c[i + 1]! << 8));
  const data: number[] = [];
  for (let guard = 0; guard < 1000; guard++) {
    const s = cpu.inb(SEC + 7);
    if (!(s & 0x08)) return { data, key: s & 1 ? cpu.inb(SEC + 1) >> 4 : 0 };
    const n = cpu.inb(SEC + 4) | (cpu.inb(SEC + 5) << 8);
    for (let i = 0; i < n; i += 2) {
      const w = cpu.inw(SEC);
      data.push(w & 0xff, w >> 8);
    }
  }
  throw new Error('packet did not complete');
}

const sense = (cpu: GuestCpu) => {
  const d = packet(cpu, [0x03, 0, 0, 0, 18]).data;
  return [d[2]!, d[12]!, d[13]!];
};
const gesn = (cpu: GuestCpu) => packet(cpu, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8]).data;
const capacity = (cpu: GuestCpu) => Buffer.from(packet(cpu, [0x25]).data).readUInt32BE(0) + 1;

function emptyDrive() {
  const t = makeMachine({ disks: [{ index: 2, path: null, cdrom: true }] });
  const drive = t.m.ide.channels[1]!.drives[0] as AtapiCdrom;
  return { ...t, drive };
}

describe('ATAPI media change (xl cd-insert / cd-eject)', () => {
  it('an empty drive: NOT READY, MEDIUM NOT PRESENT; GESN says no media', () => {
    const { cpu } = emptyDrive();
    expect(packet(cpu, [0x00]).key).toBe(2);
    expect(sense(cpu)).toEqual([2, 0x3a, 0]);
    expect(gesn(cpu).slice(0, 6)).toEqual([0, 4, 4, 0x10, 0, 0]); // 4 bytes of event data: the media class
  });

  it('insert: GESN NEW MEDIA once, UNIT ATTENTION once, then the new disc\'s capacity and bytes', () => {
    const { cpu, drive } = emptyDrive();
    const iso = `${dir}/a.iso`;
    const bytes = makeImage(iso, 1 * MiB, 2048);
    drive.changeMedium(FileBacking.open(iso, { readOnly: true }));
    // INQUIRY and GESN do not take the unit attention.
    expect(packet(cpu, [0x12, 0, 0, 0, 36]).key).toBe(0);
    expect(gesn(cpu).slice(4, 6)).toEqual([2, 2]); // NEW MEDIA, media present
    expect(gesn(cpu).slice(4, 6)).toEqual([0, 2]); // reported once
    expect(packet(cpu, [0x00]).key).toBe(6);
    expect(sense(cpu)).toEqual([6, 0x28, 0]);
    expect(packet(cpu, [0x00]).key).toBe(0);
    expect(capacity(cpu)).toBe(512);
    const sector = packet(cpu, [0x28, 0, 0, 0, 0, 7, 0, 0, 1]).data;
    expect(Buffer.from(sector).equals(bytes.subarray(7 * 2048, 8 * 2048))).toBe(true);

    // Another disc of another size.
    const iso2 = `${dir}/b.iso`;
    writeFileSync(iso2, Buffer.alloc(300 * 2048, 0x5a));
    drive.changeMedium(FileBacking.open(iso2, { readOnly: true }));
    expect(packet(cpu, [0x25]).key).toBe(6); // READ CAPACITY gets the attention first
    expect(capacity(cpu)).toBe(300);
    expect(packet(cpu, [0x28, 0, 0, 0, 0, 0, 0, 0, 1]).data[0]).toBe(0x5a);
  });

  it('host eject: attention, then NOT READY and the tray open in GESN', () => {
    const iso = `${dir}/a.iso`;
    makeImage(iso, 64 * 2048, 2048);
    const t = makeMachine({ disks: [{ index: 2, path: iso, cdrom: true }] });
    const drive = t.m.ide.channels[1]!.drives[0] as AtapiCdrom;
    expect(capacity(t.cpu)).toBe(64);
    drive.changeMedium(null);
    expect(packet(t.cpu, [0x00]).key).toBe(6);
    expect(packet(t.cpu, [0x00]).key).toBe(2);
    expect(sense(t.cpu)).toEqual([2, 0x3a, 0]);
    expect(gesn(t.cpu).slice(4, 6)).toEqual([0, 1]); // no change to report, tray open
    expect(packet(t.cpu, [0x28, 0, 0, 0, 0, 0, 0, 0, 1]).key).toBe(2);
  });

  it('guest eject by START STOP UNIT, refused while the medium is locked', () => {
    const iso = `${dir}/a.iso`;
    makeImage(iso, 64 * 2048, 2048);
    const t = makeMachine({ disks: [{ index: 2, path: iso, cdrom: true }] });
    packet(t.cpu, [0x1e, 0, 0, 0, 1]); // PREVENT MEDIUM REMOVAL
    expect(packet(t.cpu, [0x1b, 0, 0, 0, 2]).key).toBe(2);
    expect(sense(t.cpu)).toEqual([2, 0x53, 2]);
    expect(capacity(t.cpu)).toBe(64); // still there
    packet(t.cpu, [0x1e, 0, 0, 0, 0]); // ALLOW
    expect(packet(t.cpu, [0x1b, 0, 0, 0, 2]).key).toBe(0);
    expect(packet(t.cpu, [0x00]).key).toBe(2);
    expect(gesn(t.cpu)[5]).toBe(1); // tray open
    expect(packet(t.cpu, [0x1b, 0, 0, 0, 3]).key).toBe(0); // load: tray closed, still empty
    expect(gesn(t.cpu)[5]).toBe(0);
  });

  it('GESN without the polled bit is refused (asynchronous notification is not supported)', () => {
    const { cpu } = emptyDrive();
    expect(packet(cpu, [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8]).key).toBe(5);
    expect(sense(cpu)).toEqual([5, 0x24, 0]);
  });
});
