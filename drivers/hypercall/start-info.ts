// Xen's start_info page (xen/include/public/xen.h, x86_64 layout), written by dom0's domain
// builder into the new domain's memory and read by the guest kernel at boot. The guest is
// told the page's frame number on its command line, as a real PV kernel is told in %rsi.
export const PAGE_SIZE = 4096;
export const START_INFO_MAGIC = 'xen-3.0-x86_64';
export const MAX_GUEST_CMDLINE = 1024;

export const SIF_PRIVILEGED = 1 << 0;
export const SIF_INITDOMAIN = 1 << 1;

/** Byte offsets of struct start_info on x86_64 (unsigned long = 8 bytes). */
export const StartInfoOffsets = {
  magic: 0, // char[32]
  nr_pages: 32,
  shared_info: 40, // machine address of shared_info (frame << 12)
  flags: 48,
  store_mfn: 56,
  store_evtchn: 64,
  console_mfn: 72,
  console_evtchn: 80,
  pt_base: 88,
  nr_pt_frames: 96,
  mfn_list: 104,
  mod_start: 112,
  mod_len: 120,
  cmd_line: 128, // int8_t[1024]
  first_p2m_pfn: 1152,
  nr_p2m_frames: 1160,
  size: 1168,
} as const;

export interface StartInfo {
  magic: string;
  nrPages: number;
  sharedInfoFrame: number;
  flags: number;
  storeMfn: number;
  storeEvtchn: number;
  consoleMfn: number;
  consoleEvtchn: number;
  cmdLine: string;
}

/** Where the domain builder puts its special pages: the top of the domain's memory. */
/** How many pages at the top of a domain's memory specialPages() takes. */
export const SPECIAL_PAGES = 4;

export function specialPages(nrPages: number) {
  return {
    startInfo: nrPages - 1,
    xenstore: nrPages - 2,
    console: nrPages - 3,
    sharedInfo: nrPages - 4,
    /** Frames below this are the guest's own to allocate. */
    firstReserved: nrPages - 4,
  };
}

export function encodeStartInfo(page: Uint8Array, si: StartInfo): void {
  const dv = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  page.fill(0, 0, StartInfoOffsets.size);
  const enc = new TextEncoder();
  page.set(enc.encode(si.magic).subarray(0, 31), StartInfoOffsets.magic);
  dv.setBigUint64(StartInfoOffsets.nr_pages, BigInt(si.nrPages), true);
  dv.setBigUint64(StartInfoOffsets.shared_info, BigInt(si.sharedInfoFrame) * 4096n, true);
  dv.setUint32(StartInfoOffsets.flags, si.flags, true);
  dv.setBigUint64(StartInfoOffsets.store_mfn, BigInt(si.storeMfn), true);
  dv.setUint32(StartInfoOffsets.store_evtchn, si.storeEvtchn, true);
  dv.setBigUint64(StartInfoOffsets.console_mfn, BigInt(si.consoleMfn), true);
  dv.setUint32(StartInfoOffsets.console_evtchn, si.consoleEvtchn, true);
  const cmd = enc.encode(si.cmdLine);
  if (cmd.length >= MAX_GUEST_CMDLINE) throw new RangeError(`command line of ${cmd.length} bytes exceeds ${MAX_GUEST_CMDLINE - 1}`);
  page.set(cmd, StartInfoOffsets.cmd_line);
}

/** Decode a start_info page. The guest copies it out once; the builder is trusted (dom0). */
export function decodeStartInfo(page: Uint8Array): StartInfo {
  const copy = page.slice(0, StartInfoOffsets.size);
  const dv = new DataView(copy.buffer);
  const cstr = (off: number, max: number) => {
    const bytes = copy.subarray(off, off + max);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  };
  return {
    magic: cstr(StartInfoOffsets.magic, 32),
    nrPages: Number(dv.getBigUint64(StartInfoOffsets.nr_pages, true)),
    sharedInfoFrame: Number(dv.getBigUint64(StartInfoOffsets.shared_info, true) / 4096n),
    flags: dv.getUint32(StartInfoOffsets.flags, true),
    storeMfn: Number(dv.getBigUint64(StartInfoOffsets.store_mfn, true)),
    storeEvtchn: dv.getUint32(StartInfoOffsets.store_evtchn, true),
    consoleMfn: Number(dv.getBigUint64(StartInfoOffsets.console_mfn, true)),
    consoleEvtchn: dv.getUint32(StartInfoOffsets.console_evtchn, true),
    cmdLine: cstr(StartInfoOffsets.cmd_line, MAX_GUEST_CMDLINE),
  };
}
