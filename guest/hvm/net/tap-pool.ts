// The /dev/net/tun handles the jailer opened in the domain's network namespace (fds 4..35,
// XENODE_TUN_FDS), shared by every NIC driver of the HVM kernel: an emulated NIC's eth TAP
// (no vnet header: the RTL8139 has no offloads) and, with PV drivers, netfront's (with one).
// One pool, so the two kinds of driver can never pick the same fd.
import { native } from '../../../native/index.js';
import { parseTunFds, type NetTapProvider } from '../../kernel/frontends/netfront/tap-provider.js';

export class TapPool {
  private readonly free: number[];

  constructor(spec = process.env.XENODE_TUN_FDS) {
    this.free = parseTunFds(spec);
    for (const fd of this.free) {
      try {
        native().setCloexec(fd, true); // nothing the kernel spawns may inherit them
      } catch {
        /* not open: the pool is smaller than announced */
      }
    }
  }

  get available(): number {
    return this.free.length;
  }

  /** A TAP named `name` in the guest's namespace (O_NONBLOCK). */
  attach(name: string, vnetHdr: boolean, offloads = 0): { fd: number; name: string } {
    const fd = this.free.shift();
    if (fd === undefined) throw new Error('no TAP handle left: this domain has used all the NICs its jailer prepared');
    try {
      return native().tapAttach(fd, name, vnetHdr, offloads);
    } catch (e) {
      this.free.unshift(fd);
      throw e;
    }
  }

  /** netfront's view of the pool (PV-on-HVM). */
  provider(): NetTapProvider {
    return {
      ipNetns: [],
      create: (name, offloads) => this.attach(name, true, offloads),
      destroy: (fd) => native().close(fd),
    };
  }
}
