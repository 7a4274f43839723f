// The project's raw futex (native addon), as FutexOps. Kept apart from futex.ts so code that
// only needs the interface (and bundles into worker threads) does not load the addon.
import { native } from '../../native/index.js';
import type { FutexOps } from './futex.js';

export function nativeFutex(): FutexOps {
  const n = native();
  return { futexWait: n.futexWait.bind(n), futexWake: n.futexWake.bind(n) };
}
