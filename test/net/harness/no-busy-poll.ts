// Imported first by the in-process harness: frontend and backend share one thread there, so
// a busy poll waiting for the other side could never see it answer. Read by netback when its
// module loads.
process.env.XENODE_NET_BUSY_POLL_US = '0';
export {};
