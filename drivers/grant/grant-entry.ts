// grant_table.h, version 1: the entry layout, its flags and the GNTST_ status codes.
//
// struct grant_entry_v1 (8 B): flags u16 @0, domid u16 @2, frame u32 @4.
// The granting guest writes domid and frame, then flags (type GTF_permit_access, maybe
// GTF_readonly) last. Whoever maps or copies the grant (Xen; here also dom0 acting with the
// hypervisor's checks) sets GTF_reading / GTF_writing while it uses the frame, by
// compare-and-swap of the 32-bit word holding flags and domid together (Xen's grant_combo),
// so the domid it checked is the one it pinned.

export const GRANT_ENTRY_V1_SIZE = 8;
export const GRANT_ENTRY_FLAGS_OFFSET = 0;
export const GRANT_ENTRY_DOMID_OFFSET = 2;
export const GRANT_ENTRY_FRAME_OFFSET = 4;
/** Entries in one 4 KiB grant-table frame. */
export const GRANT_ENTRIES_PER_FRAME = 4096 / GRANT_ENTRY_V1_SIZE;

// ---- Type (bits 0-1) ----
export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_accept_transfer = 2;
export const GTF_transitive = 3;
export const GTF_type_mask = 3;

// ---- Subflags of GTF_permit_access ----
/** Set by the granter: the grantee may only read. */
export const GTF_readonly = 1 << 2;
/** Set by the mapper while the frame is mapped or being copied. */
export const GTF_reading = 1 << 3;
/** Set by the mapper while the frame is mapped writable or being copied into. */
export const GTF_writing = 1 << 4;
export const GTF_PWT = 1 << 5;
export const GTF_PCD = 1 << 6;
export const GTF_PAT = 1 << 7;
export const GTF_sub_page = 1 << 8;

// ---- Subflags of GTF_accept_transfer ----
export const GTF_transfer_committed = 1 << 2;
export const GTF_transfer_completed = 1 << 3;

// ---- Reserved references ----
/** Entries the toolstack may pre-populate; a guest's allocator never hands them out. */
export const GNTTAB_NR_RESERVED_ENTRIES = 8;
export const GNTTAB_RESERVED_CONSOLE = 0;
export const GNTTAB_RESERVED_XENSTORE = 1;

// ---- Operations (GNTTABOP_*) ----
export const GNTTABOP_map_grant_ref = 0;
export const GNTTABOP_unmap_grant_ref = 1;
export const GNTTABOP_setup_table = 2;
export const GNTTABOP_dump_table = 3;
export const GNTTABOP_transfer = 4;
export const GNTTABOP_copy = 5;
export const GNTTABOP_query_size = 6;
export const GNTTABOP_unmap_and_replace = 7;
export const GNTTABOP_set_version = 8;
export const GNTTABOP_get_status_frames = 9;
export const GNTTABOP_get_version = 10;
export const GNTTABOP_swap_grant_ref = 11;
export const GNTTABOP_cache_flush = 12;

// ---- gnttab_map_grant_ref.flags ----
export const GNTMAP_device_map = 1 << 0;
export const GNTMAP_host_map = 1 << 1;
export const GNTMAP_readonly = 1 << 2;
export const GNTMAP_application_map = 1 << 3;
export const GNTMAP_contains_pte = 1 << 4;

// ---- gnttab_copy.flags ----
export const GNTCOPY_source_gref = 1 << 0;
export const GNTCOPY_dest_gref = 1 << 1;

// ---- Status codes (all errors negative) ----
export const GNTST_okay = 0;
export const GNTST_general_error = -1;
export const GNTST_bad_domain = -2;
export const GNTST_bad_gntref = -3;
export const GNTST_bad_handle = -4;
export const GNTST_bad_virt_addr = -5;
export const GNTST_bad_dev_addr = -6;
export const GNTST_no_device_space = -7;
export const GNTST_permission_denied = -8;
export const GNTST_bad_page = -9;
export const GNTST_bad_copy_arg = -10;
export const GNTST_address_too_big = -11;
export const GNTST_eagain = -12;
export const GNTST_no_space = -13;

/** GNTTABOP_error_msgs, indexed by -status. */
export const GNTTABOP_error_msgs: readonly string[] = [
  'okay',
  'undefined error',
  'unrecognised domain id',
  'invalid grant reference',
  'invalid mapping handle',
  'invalid virtual address',
  'invalid device address',
  'no spare translation slot in the I/O MMU',
  'permission denied',
  'bad page',
  'copy arguments cross page boundary',
  'page address size too large',
  'operation not done; try again',
  'out of space',
];

export function gnttabErrorMessage(status: number): string {
  return GNTTABOP_error_msgs[-status] ?? `unknown grant status ${status}`;
}

export interface GrantEntryV1 {
  flags: number;
  domid: number;
  frame: number;
}

/** Plain codec, for private copies (dumps, tests). Live entries go through GrantTable /
 * the mapper, which use Atomics. */
export const grantEntryV1 = {
  size: GRANT_ENTRY_V1_SIZE,
  encode(v: DataView, o: number, f: GrantEntryV1): void {
    v.setUint16(o, f.flags, true);
    v.setUint16(o + 2, f.domid, true);
    v.setUint32(o + 4, f.frame, true);
  },
  decode(v: DataView, o: number, into?: GrantEntryV1): GrantEntryV1 {
    const r = into ?? { flags: 0, domid: 0, frame: 0 };
    r.flags = v.getUint16(o, true);
    r.domid = v.getUint16(o + 2, true);
    r.frame = v.getUint32(o + 4, true);
    return r;
  },
};

/** Index of an entry's flags+domid word in an Int32Array over the table (frame is +1). */
export function grantWordIndex(ref: number): number {
  return ref * 2;
}
