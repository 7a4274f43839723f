// The pages behind an HVM domain's emulated hardware (docs/hvm.md), one memfd of three pages
// shared by the vCPU runtime (the guest process's "CPU") and the device model in the stub
// domain. The guest OS itself never touches them; only the runtime that plays the CPU's
// VM-exit does, as only Xen touches the ioreq pages.
//   page 0  shared_iopage: ioreq_t per vCPU (drivers/wire/ioreq.ts)
//   page 1  buffered_iopage (drivers/wire/buffered-ioreq.ts)
//   page 2  xenode's platform page: the words below
export const HVM_IOREQ_PAGES = 3;
export const IOREQ_PAGE_OFFSET = 0;
export const BUFIOREQ_PAGE_OFFSET = 4096;
export const PLATFORM_PAGE_OFFSET = 8192;

/** Int32 indices into the whole 3-page buffer. */
export const PlatformWord = {
  /** vCPU -> device model: bumped and futex-woken after each ioreq is published. */
  DOORBELL: PLATFORM_PAGE_OFFSET / 4 + 0,
  /** Set by the stub domain to stop the device model's loop. */
  STOP: PLATFORM_PAGE_OFFSET / 4 + 1,
  /** Device model -> guest: bit n set while interrupt line n is asserted (level). */
  IRQ_LEVEL: PLATFORM_PAGE_OFFSET / 4 + 2,
  /** Count of raise events, for diagnostics and exit accounting. */
  IRQ_RAISES: PLATFORM_PAGE_OFFSET / 4 + 3,
  /** Device model -> KVM engine: bit n set on every raise of line n; the engine takes the word
   * (Atomics.exchange) when it mirrors the lines into KVM, so an edge whose line was lowered
   * again before anyone looked (a 16550's THRE, say) is not lost (hypervisor/kvm/irq-mirror.ts). */
  IRQ_EDGES: PLATFORM_PAGE_OFFSET / 4 + 4,
  /** Device model -> vCPU runtime: 1 + the vCPU of a pending NMI (xl trigger DOM nmi), taken
   * by the runtime (Atomics.exchange) on the irq event that follows. */
  NMI_PENDING: PLATFORM_PAGE_OFFSET / 4 + 5,
} as const;
