// The guest kernel's network devices (Linux's netdev list, in miniature): netfront registers
// each eth it makes, and kernel code that works below the guest's IP stack (IP
// autoconfiguration's DHCP client, guest/kernel/net/) finds them here. Userland sees the
// same devices as ordinary interfaces in the guest's network namespace.

export interface NetDevice {
  /** Interface name in the guest (eth0, eth1 ...). */
  readonly name: string;
  /** The vif's devid. */
  readonly devid: number;
  readonly mac: string;
  readonly mtu: number;
  /** The vif's ip= from the toolstack (backend key), if any. */
  readonly backendIp: string | undefined;
  /** dom0 routes this vif rather than bridging it (its hotplug script is vif-route): there is
   * no LAN behind it, and dom0's own addresses answer ARP on it, so the way out is on-link. */
  readonly routed: boolean;
  /** `ip` arguments that reach the namespace the device lives in (empty: our own). */
  readonly ipNetns: string[];
  /** True once the backend is connected (carrier). */
  carrier(): boolean;
  /** Sends one raw Ethernet frame onto the wire (below the guest's stack). */
  xmit(frame: Uint8Array): boolean;
  /** Sees every received frame first while set; returning true consumes the frame. */
  sniffer: ((frame: Uint8Array) => boolean) | null;
}

type Listener = (dev: NetDevice) => void;

class NetDevices {
  private readonly byName = new Map<string, NetDevice>();
  private readonly listeners = new Set<Listener>();

  add(dev: NetDevice): void {
    this.byName.set(dev.name, dev);
    for (const l of this.listeners) l(dev);
  }

  /** Told of every device added from now on (a NIC hot-plugged into the running guest). */
  onAdd(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  remove(dev: NetDevice): void {
    if (this.byName.get(dev.name) === dev) this.byName.delete(dev.name);
  }

  all(): NetDevice[] {
    return [...this.byName.values()];
  }

  byDevid(devid: number): NetDevice | undefined {
    return this.all().find((d) => d.devid === devid);
  }

  /** Lowest free ethN (Linux names its netfront interfaces in probe order). */
  freeName(prefix = 'eth'): string {
    for (let i = 0; ; i++) if (!this.byName.has(`${prefix}${i}`)) return `${prefix}${i}`;
  }

  /** Waits until every listed vif has a device with carrier, or the deadline passes;
   * returns the ones that made it. */
  async waitFor(devids: number[], timeoutMs: number): Promise<NetDevice[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ready = devids.map((d) => this.byDevid(d)).filter((d): d is NetDevice => !!d && d.carrier());
      if (ready.length === devids.length || Date.now() >= deadline) return ready;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export const netdevs = new NetDevices();
