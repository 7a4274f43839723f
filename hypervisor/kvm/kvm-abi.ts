// The KVM engine's shared constants: the exit record native/kvm.cc fills and the per-vCPU
// control block its worker thread obeys. Pure data (no imports), so the vCPU worker can be
// bundled without the rest of the engine.

// ---- exit record (native/kvm.cc: REC_*) ----
export const REC_TYPE = 0;
export const REC_DIR = 4;
export const REC_SIZE = 8;
export const REC_COUNT = 12;
export const REC_ADDR = 16;
export const REC_DATA = 24;
export const REC_REASON = 32;
export const REC_SUB = 36;
export const REC_EXTRA = 40;
export const REC_EXTRA2 = 48;
export const REC_EXTRA3 = 56;
export const REC_BYTES = 64;
export const REC_TOTAL = 64 + 4096;

export const EXIT_NONE = 0;
export const EXIT_IO = 1;
export const EXIT_MMIO = 2;
export const EXIT_SHUTDOWN = 3;
export const EXIT_INTERNAL_ERROR = 4;
export const EXIT_FAIL_ENTRY = 5;
export const EXIT_INTERRUPTED = 6;
export const EXIT_HLT = 7;
export const EXIT_SYSTEM_EVENT = 8;
export const EXIT_UNKNOWN = 9;

/** KVM_INTERNAL_ERROR_EMULATION, and its flag saying the instruction bytes are included. */
export const INTERNAL_ERROR_EMULATION = 1;
export const EMULATION_FLAG_INSN_BYTES = 1;

export const EXIT_NAMES: Record<number, string> = {
  [EXIT_NONE]: 'none',
  [EXIT_IO]: 'io',
  [EXIT_MMIO]: 'mmio',
  [EXIT_SHUTDOWN]: 'shutdown (triple fault)',
  [EXIT_INTERNAL_ERROR]: 'internal error',
  [EXIT_FAIL_ENTRY]: 'VM entry failure',
  [EXIT_INTERRUPTED]: 'interrupted',
  [EXIT_HLT]: 'hlt',
  [EXIT_SYSTEM_EVENT]: 'system event',
  [EXIT_UNKNOWN]: 'unknown exit',
};

// ---- per-vCPU control block: an Int32Array over a SharedArrayBuffer, CTL_WORDS per vCPU ----
export const CTL_WORDS = 16;
/** What the owner wants: CMD_RUN, CMD_PAUSE or CMD_STOP. Written by the owner, read by the worker. */
export const CTL_CMD = 0;
/** What the worker is doing (ST_*). Written by the worker only. */
export const CTL_STATE = 1;
/** Worker-maintained counters (low 31 bits, wrapping): ioreqs sent, internal-port exits. */
export const CTL_IOREQS = 2;
export const CTL_INTERNAL = 3;
/** Set by the worker when the guest asked for a reset (keyboard controller / port 0x92). */
export const CTL_RESET = 4;
/** Instructions the engine finished for KVM's emulator (INT3 -> #BP). */
export const CTL_ASSISTS = 5;

export const CMD_RUN = 0;
export const CMD_PAUSE = 1;
export const CMD_STOP = 2;

export const ST_STARTING = 0;
export const ST_RUNNING = 1;
/** Waiting for the device model's answer to an ioreq (counts as paused: no guest code runs). */
export const ST_IOREQ = 2;
export const ST_PAUSED = 3;
export const ST_STOPPED = 4;

// ---- the stand-alone runner's device-model thread (dm-worker.ts): Int32 words ----
/** The doorbell vCPUs bump and futex-wake after publishing IOREQ_READY. */
export const DM_DOORBELL = 0;
/** Non-zero asks the device-model thread to return. */
export const DM_STOP = 1;
