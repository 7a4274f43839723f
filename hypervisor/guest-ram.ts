// Guest RAM: the file every process that works on a guest's memory maps (the guest kernel,
// dom0's backends, device models, the hypervisor itself).
//
// It lives on a tmpfs of its own with huge=within_size (native hugeRamCreate: a detached
// mount, in no mount table), so the host kernel backs it with 2 MiB pages when it has them.
// A memfd would follow the host-wide shmem_enabled setting, "never" on these machines, and
// give 4 KiB pages scattered over the host's memory. That matters to disks above all: a
// 1 MiB request in 256 scattered pages has more segments than the virtio disk under these
// hosts takes in one request (254), so the host's block layer split every 1 MiB guest request
// in two, and that disk charges about the same for a request whatever its size. In 2 MiB
// pages, with blkfront handing out frames in order, the request is a few dozen segments. The guest kernel's copies (FUSE answers) and
// dom0's pinning walk fewer, hotter page structures too.
//
// XENODE_HUGE_RAM=0 asks for plain memfds; a kernel without the new mount API or tmpfs huge
// pages gets them too, with one line in `xl dmesg` saying why.
import { native } from '../native/index.js';

let fallbackReason: string | null = null;

/** A file of `bytes` bytes (zeros) for a guest's RAM; `name` shows in /proc/PID/fd. */
export function createGuestRam(name: string, bytes: number, log?: (msg: string) => void): number {
  const n = native();
  if (process.env.XENODE_HUGE_RAM !== '0' && fallbackReason === null) {
    try {
      return n.hugeRamCreate(name, bytes);
    } catch (e) {
      fallbackReason = (e as Error).message;
      log?.(`guest RAM in 2 MiB pages unavailable (${fallbackReason}): using memfds of 4 KiB pages`);
    }
  }
  return n.memfdCreate(name, bytes);
}
