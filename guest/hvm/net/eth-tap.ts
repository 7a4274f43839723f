// An emulated NIC as the guest's network stack sees it: ethN, a TAP in the domain's network
// namespace (what a NIC driver's net_device is to Linux). Frames the stack sends come out of
// the TAP and go to the driver's xmit(); frames the NIC receives are written to the TAP. When
// the driver's transmit queue is full the TAP is not read (netif_stop_queue) until the driver
// says there is room again. Registered in the kernel's netdev list so that ip= / DHCP
// (guest/kernel/net/ipconfig.ts) configure it exactly like a PV NIC.
import { native, type FdWatcher } from '../../../native/index.js';
import { ip } from '../../../net/ip.js';
import { netdevs, type NetDevice } from '../../kernel/net/netdev.js';

/** What ethN needs from the NIC driver underneath. */
export interface EthernetDriver {
  readonly macString: string;
  xmit(frame: Uint8Array): boolean;
  txReady(): boolean;
  link(): boolean;
  onReceive: ((frame: Uint8Array) => void) | null;
  onTxSpace: (() => void) | null;
}

export interface EthCounters {
  fromStack: number;
  toStack: number;
  toStackDropped: number;
  oversize: number;
}

const READ_BUDGET = 64;
const MAX_FRAME = 65536;

export class EthTap implements NetDevice {
  readonly mtu = 1500;
  readonly ipNetns: string[] = [];
  sniffer: ((frame: Uint8Array) => boolean) | null = null;
  readonly up: Promise<void>;
  readonly counters: EthCounters = { fromStack: 0, toStack: 0, toStackDropped: 0, oversize: 0 };
  private resolveUp!: () => void;
  private rejectUp!: (e: Error) => void;
  private watcher: FdWatcher | null = null;
  private paused = false;
  private readonly buf = new Uint8Array(MAX_FRAME);
  private isUp = false;
  /** An emulated NIC is always on a bridge (type=ioemu vifs have no vif-route path). */
  readonly routed = false;

  constructor(
    private readonly nic: EthernetDriver,
    private readonly tap: { fd: number; name: string },
    readonly devid: number,
    readonly backendIp: string | undefined,
    private readonly log: (msg: string) => void,
  ) {
    this.up = new Promise((res, rej) => {
      this.resolveUp = res;
      this.rejectUp = rej;
    });
    this.up.catch(() => {});
  }

  get name(): string {
    return this.tap.name;
  }

  get mac(): string {
    return this.nic.macString;
  }

  carrier(): boolean {
    return this.isUp && this.nic.link();
  }

  xmit(frame: Uint8Array): boolean {
    return this.nic.xmit(frame);
  }

  /** Brings ethN up with the NIC's MAC and starts moving frames. */
  async start(): Promise<void> {
    this.nic.onReceive = (frame) => this.toStack(frame);
    this.nic.onTxSpace = () => this.resume();
    await ip([...this.ipNetns, 'link', 'set', 'dev', this.name, 'address', this.mac, 'mtu', String(this.mtu), 'up']);
    this.watcher = native().watchFd(this.tap.fd, (ev) => this.fromStack(ev));
    this.watcher.start(native().READABLE);
    netdevs.add(this);
    this.isUp = true;
    this.resolveUp();
  }

  private toStack(frame: Uint8Array): void {
    if (this.sniffer?.(frame)) return;
    try {
      if (native().write(this.tap.fd, frame, 0, frame.length) === null) this.counters.toStackDropped++;
      else this.counters.toStack++;
    } catch {
      this.counters.toStackDropped++;
    }
  }

  private fromStack(events: number): void {
    if (events < 0) return;
    for (let i = 0; i < READ_BUDGET; i++) {
      if (!this.nic.txReady()) {
        this.pause();
        return;
      }
      let n: number | null;
      try {
        n = native().read(this.tap.fd, this.buf, 0, this.buf.length);
      } catch {
        return;
      }
      if (n === null || n === 0) return;
      if (n > this.mtu + 18) {
        this.counters.oversize++;
        continue;
      }
      this.counters.fromStack++;
      if (!this.nic.xmit(this.buf.subarray(0, n))) {
        this.pause();
        return;
      }
    }
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.watcher?.stop();
  }

  private resume(): void {
    if (!this.paused || !this.watcher) return;
    this.paused = false;
    this.watcher.start(native().READABLE);
  }

  /** ethN goes away (shutdown). */
  stop(): void {
    this.isUp = false;
    this.rejectUp(new Error('device removed'));
    netdevs.remove(this);
    this.watcher?.close();
    this.watcher = null;
    try {
      native().close(this.tap.fd);
    } catch {
      /* already closed */
    }
    this.log(`${this.name}: down`);
  }
}
