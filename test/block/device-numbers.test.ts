// Linux's device numbers for the guest's disks and partitions (guest/kernel/block/
// device-numbers.ts), as /proc/partitions in a Linux guest shows them.
import { describe, expect, it } from 'vitest';
import { diskNumbers, BLOCK_EXT_MAJOR } from '../../guest/kernel/block/device-numbers.js';
import { blockDevices, freeExtMinor, registerBlockDevice, unregisterBlockDevice } from '../../guest/kernel/block/block-devices.js';

describe('Linux device numbers', () => {
  it('numbers xvd, hd and sd disks as Linux does', () => {
    expect(diskNumbers('xvda')).toEqual({ major: 202, firstMinor: 0, minors: 16 });
    expect(diskNumbers('xvdb')).toEqual({ major: 202, firstMinor: 16, minors: 16 });
    expect(diskNumbers('xvdp')).toEqual({ major: 202, firstMinor: 240, minors: 16 });
    // From xvdq on, Xen's extended numbers: 256 minors per disk.
    expect(diskNumbers('xvdq')).toEqual({ major: 202, firstMinor: 16 * 256, minors: 256 });
    // A disk exported under a partition's name is that one minor, and has no partitions.
    expect(diskNumbers('xvda2')).toEqual({ major: 202, firstMinor: 2, minors: 1 });
    expect(diskNumbers('hda')).toEqual({ major: 3, firstMinor: 0, minors: 64 });
    expect(diskNumbers('hdb')).toEqual({ major: 3, firstMinor: 64, minors: 64 });
    expect(diskNumbers('hdc')).toEqual({ major: 22, firstMinor: 0, minors: 64 });
    expect(diskNumbers('hdd')).toEqual({ major: 22, firstMinor: 64, minors: 64 });
    expect(diskNumbers('sdb')).toEqual({ major: 8, firstMinor: 16, minors: 16 });
    expect(diskNumbers('xvd51712')).toBeUndefined();
    expect(diskNumbers('51712')).toBeUndefined();
  });

  it('gives partitions past a disk\'s minors the lowest free minor of major 259', () => {
    const reg = (name: string, minor: number) => registerBlockDevice({ name, major: BLOCK_EXT_MAJOR, minor, sectors: 1, readonly: false, parent: 'xvda', path: `/dev/${name}` });
    expect(freeExtMinor(BLOCK_EXT_MAJOR)).toBe(0);
    reg('xvda16', freeExtMinor(BLOCK_EXT_MAJOR));
    reg('xvda17', freeExtMinor(BLOCK_EXT_MAJOR));
    expect(blockDevices().map((d) => [d.name, d.minor])).toEqual([['xvda16', 0], ['xvda17', 1]]);
    unregisterBlockDevice('xvda16');
    expect(freeExtMinor(BLOCK_EXT_MAJOR)).toBe(0);
    unregisterBlockDevice('xvda17');
  });
});
