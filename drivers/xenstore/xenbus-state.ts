// XenBus device states (xen/include/public/io/xenbus.h) and where split drivers keep them.

export enum XenbusState {
  Unknown = 0,
  Initialising = 1,
  /** Backend waits for information from the frontend (hotplug done, features published). */
  InitWait = 2,
  /** Frontend published its ring refs and event channel. */
  Initialised = 3,
  Connected = 4,
  /** Device is being torn down. */
  Closing = 5,
  Closed = 6,
  Reconfiguring = 7,
  Reconfigured = 8,
}

export function parseXenbusState(s: string): XenbusState {
  const n = Number(s.trim());
  return Number.isInteger(n) && n >= 0 && n <= 8 ? (n as XenbusState) : XenbusState.Unknown;
}

/** /local/domain/<domid>/device/<type>/<devid>: the frontend's directory. */
export function frontendPath(domid: number, type: string, devid: number): string {
  return `/local/domain/${domid}/device/${type}/${devid}`;
}

/** /local/domain/<backDomid>/backend/<type>/<frontDomid>/<devid>: the backend's directory. */
export function backendPath(backDomid: number, type: string, frontDomid: number, devid: number): string {
  return `/local/domain/${backDomid}/backend/${type}/${frontDomid}/${devid}`;
}
