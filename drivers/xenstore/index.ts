// The xenstore client library: wire codec, ring layout, transports, client, xenbus states.
export * from './xs-wire.js';
export * from './xs-ring.js';
export * from './xs-framing.js';
export type { Transport } from './transport.js';
export { socketTransport, defaultXenstoredSocketPath } from './socket-transport.js';
export { ringTransport, type RingTransport } from './ring-transport.js';
export { XsClient, XsTransaction, type XsValue, type WatchCallback } from './client.js';
export * from './xenbus-state.js';
