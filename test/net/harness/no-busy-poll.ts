// Imported first by the in-process harness: frontend and backend share one thread there, so
// a busy poll waiting for the other side could never see it answer. netback reads the
// variable when its module loads; the harness puts it back once its imports are done, so
// nothing started later from this process (a dom0 of another suite) inherits it.
const previous = process.env.XENODE_NET_BUSY_POLL_US;
process.env.XENODE_NET_BUSY_POLL_US = '0';

export function restoreBusyPollEnv(): void {
  if (previous === undefined) delete process.env.XENODE_NET_BUSY_POLL_US;
  else process.env.XENODE_NET_BUSY_POLL_US = previous;
}
