// Non-blocking fd I/O as the native addon provides it (native().read / native().write: null on
// EAGAIN). Backends take this interface instead of the addon so they can be bundled and tested
// anywhere; pass `native()` itself in production.
export interface FdIo {
  read(fd: number, buf: Uint8Array, offset: number, length: number): number | null;
  write(fd: number, buf: Uint8Array, offset: number, length: number): number | null;
}
