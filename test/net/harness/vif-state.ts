// What dom0 says about a vif, as the toolstack reads it: the backend's xenbus state, the error
// it wrote on a fatal error, and netback's counters through the backend bus.
import type { XsClient } from '../../../drivers/xenstore/client.js';
import type { BackendBus } from '../../../dom0/backends/backend-bus.js';

export async function vifBackendState(xs: XsClient, domid: number, devid: number): Promise<number> {
  return Number(await xs.read(`/local/domain/0/backend/vif/${domid}/${devid}/state`).catch(() => '-1'));
}

export async function vifBackendError(xs: XsClient, domid: number, devid: number): Promise<string> {
  return xs.read(`/local/domain/0/error/backend/vif/${domid}/${devid}/error`).catch(() => '');
}

export async function vifStats(bus: BackendBus, domid: number, devid: number): Promise<Record<string, number>> {
  return (await bus.stats())[`vif/${domid}/${devid}`] ?? {};
}
