// The BIOS boot sequence: try the devices of the `boot=` order one after the other, as SeaBIOS
// does, with its messages.
//
//   c  "Booting from Hard Disk..."  the first ATA disk, bootable when sector 0 ends in 55 AA
//   d  "Booting from DVD/CD..."     the first ATAPI drive, bootable when block 16 is an
//                                   ISO 9660 primary volume descriptor (01 "CD001")
//   n  "Booting from ROM..."        network boot: there is no PXE option ROM here
//   a  floppy: there is no floppy controller
//
// The kernel itself is built into this firmware image (direct kernel boot, like xl's HVM
// `kernel=`), so the choice does not change what runs; it is reported, and a machine with no
// bootable device still boots the built-in kernel after SeaBIOS's "No bootable device." line.
export interface BootDisk {
  name: string;
  kind: 'disk' | 'cdrom';
  /** Reads one block (512 bytes for a disk, 2048 for a CD) or throws. */
  readBlock(lba: number): Promise<Uint8Array>;
}

export interface BootChoice {
  letter: string;
  device: string;
}

/** The letters xl's `boot=` allows, in order, unknown ones dropped; default "cd" (xl's). */
export function parseBootOrder(v: string | undefined): string[] {
  const letters = (v ?? '').toLowerCase().split('').filter((c) => 'acdn'.includes(c));
  const out: string[] = [];
  for (const l of letters) if (!out.includes(l)) out.push(l);
  return out.length ? out : ['c', 'd'];
}

export function isMbr(sector0: Uint8Array): boolean {
  return sector0.length >= 512 && sector0[510] === 0x55 && sector0[511] === 0xaa;
}

export function isIso9660Pvd(block16: Uint8Array): boolean {
  return block16.length >= 6 && block16[0] === 1 && String.fromCharCode(...block16.subarray(1, 6)) === 'CD001';
}

export async function chooseBootDevice(order: string[], disks: BootDisk[], log: (line: string) => void): Promise<BootChoice | null> {
  for (const letter of order) {
    switch (letter) {
      case 'c': {
        const d = disks.find((x) => x.kind === 'disk');
        log('Booting from Hard Disk...');
        if (!d) {
          log('Boot failed: could not read the boot disk');
          break;
        }
        try {
          if (isMbr(await d.readBlock(0))) {
            log('Booting from 0000:7c00');
            return { letter, device: d.name };
          }
          log('Boot failed: not a bootable disk');
        } catch {
          log('Boot failed: could not read the boot disk');
        }
        break;
      }
      case 'd': {
        const d = disks.find((x) => x.kind === 'cdrom');
        log('Booting from DVD/CD...');
        if (!d) {
          log('Boot failed: Could not read from CDROM (code 0001)');
          break;
        }
        try {
          if (isIso9660Pvd(await d.readBlock(16))) {
            log('Booting from 0000:7c00');
            return { letter, device: d.name };
          }
          log('Boot failed: Could not read from CDROM (code 0004)');
        } catch {
          log('Boot failed: Could not read from CDROM (code 0003)');
        }
        break;
      }
      case 'n':
        log('Booting from ROM...');
        log('Boot failed: no PXE option ROM (network boot is not supported)');
        break;
      case 'a':
        log('Booting from Floppy...');
        log('Boot failed: could not read the boot disk');
        break;
    }
    log('');
  }
  log('No bootable device.');
  return null;
}
