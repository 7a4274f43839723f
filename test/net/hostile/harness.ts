// An in-process dom0 for the hostile-frontend tests: the real hypervisor core (domains,
// memfds, grant tables, event channels with real eventfds), the real xenstored (also on a unix
// socket, for the hotplug scripts' xenstore-write), the real backend bus with the real netback,
// real TAPs plugged by the real vif-bridge script into a private bridge, and the test LAN on
// it. Guests have no kernel process: the test plays their kernels through
// Hypervisor.attachGuestChannel, either with the real netfront (a well-behaved guest whose
// eth0 lives in a namespace of its own) or with HostileFront, which writes raw ring entries.
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Hypervisor } from '../../../hypervisor/hypervisor.js';
import { native } from '../../../native/index.js';
import { HypercallClient } from '../../../drivers/hypercall/channel.js';
import { EventChannels } from '../../../drivers/evtchn/event-channels.js';
import { XsClient } from '../../../drivers/xenstore/client.js';
import { Xenstored } from '../../../dom0/xenstored/xenstored.js';
import { ForeignMemory } from '../../../dom0/foreign-memory.js';
import { BackendBus } from '../../../dom0/backends/backend-bus.js';
import { netbackBackend } from '../../../dom0/backends/netback/xenbus.js';
import { addDevice, removeDevice } from '../../../dom0/toolstack/devices/device-store.js';
import { vifDeviceEntries } from '../../../dom0/toolstack/devices/vif.js';
import { resolveNicDefaults } from '../../../dom0/toolstack/config/vif-spec.js';
import { GrantTable } from '../../../drivers/grant/grant-table.js';
import { PageAllocator } from '../../../guest/kernel/page-allocator.js';
import { FrontendBus, type KernelServices } from '../../../guest/kernel/xenbus-frontends.js';
import { netfrontFactory } from '../../../guest/kernel/frontends/netfront/netfront.js';
import type { NetTapProvider } from '../../../guest/kernel/frontends/netfront/tap-provider.js';
import { RawNetFront } from '../harness/raw-front.js';
import { ringStorm } from '../harness/loopback-evtchn.js';
import { XenbusState } from '../../../drivers/xenstore/xenbus-state.js';
import { runIn, TestLan } from '../../helpers/lan.js';
import { vifBackendError, vifBackendState, vifStats } from '../harness/vif-state.js';

const PAGE = 4096;
const GUEST_MIB = 32;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface Guest {
  domid: number;
  hc: HypercallClient;
  memory: SharedArrayBuffer;
  grants: GrantTable;
  pages: PageAllocator;
  xs: XsClient;
}

export class NetHarness {
  readonly dir: string;
  readonly logs: string[] = [];
  readonly lan: TestLan;
  hv!: Hypervisor;
  hc!: HypercallClient;
  evtchn!: EventChannels;
  xenstored!: Xenstored;
  xs!: XsClient;
  bus!: BackendBus;
  private readonly env: Record<string, string | undefined> = {};
  private readonly guests: Guest[] = [];
  private readonly netns: string[] = [];
  private goodBuses: FrontendBus[] = [];

  constructor(readonly label: string) {
    this.dir = mkdtempSync(join(tmpdir(), `xenode-hostile-${label}-`));
    chmodSync(this.dir, 0o755);
    this.lan = new TestLan(label, this.dir);
  }

  async start(): Promise<void> {
    const env = {
      XENODE_RUN_DIR: join(this.dir, 'run'),
      XENODE_CGROUP: `xenode-test-${this.label}-${process.pid}`,
      XENSTORED_PATH: join(this.dir, 'xenstored.sock'),
    };
    for (const [k, v] of Object.entries(env)) {
      this.env[k] = process.env[k];
      process.env[k] = v;
    }
    this.hv = new Hypervisor();
    const [ours, theirs] = native().seqpacketPair();
    this.hv.attachDom0(ours, () => {});
    this.hc = new HypercallClient(theirs);
    this.evtchn = new EventChannels(this.hc);
    this.xenstored = new Xenstored({ log: () => {} });
    await this.xenstored.listen(env.XENSTORED_PATH);
    this.xs = new XsClient(this.xenstored.connectLocal(0));
    const line = (lvl: string) => (m: string) => this.logs.push(`${lvl}: ${m}`);
    this.bus = new BackendBus({ xs: this.xs, evtchn: this.evtchn, hc: this.hc, foreign: new ForeignMemory(this.hc), log: { info: line('info'), warn: line('warn'), error: line('error') } });
    this.bus.register('vif', netbackBackend);
    await this.bus.start();
    await this.lan.up();
  }

  /** A domain with memory and a grant table, whose "kernel" is this test. */
  async createGuest(name: string): Promise<Guest> {
    const nrPages = GUEST_MIB * 256;
    const { domid } = await this.hc.invoke<{ domid: number }>('domctl.createdomain', {
      label: name,
      memoryMiB: GUEST_MIB,
      vcpus: 1,
      kernel: { kind: 'pv', startInfoPfn: nrPages - 1 },
    });
    const [ours, theirs] = native().seqpacketPair();
    this.hv.attachGuestChannel(domid, ours);
    const hc = new HypercallClient(theirs);
    const self = await hc.call<{ bytes: number }>('memory.map_self');
    const memory = native().mapShared(self.fds[0]!, self.result.bytes);
    native().close(self.fds[0]!);
    const gt = await hc.call<{ frames: number }>('gnttab.setup_table');
    const grantFrames = native().mapShared(gt.fds[0]!, gt.result.frames * PAGE);
    native().close(gt.fds[0]!);
    const grants = new GrantTable(grantFrames, { nrEntries: gt.result.frames * (PAGE / 8) });
    const pages = new PageAllocator(memory, 1, nrPages - 8);
    await this.xs.mkdir(`/local/domain/${domid}`);
    await this.xs.setPerms(`/local/domain/${domid}`, [`n${domid}`]);
    await this.xs.write(`/local/domain/${domid}/domid`, String(domid));
    await this.xs.write(`/local/domain/${domid}/name`, name);
    const g: Guest = { domid, hc, memory, grants, pages, xs: new XsClient(this.xenstored.connectLocal(domid)) };
    this.guests.push(g);
    return g;
  }

  /** What the toolstack writes for `vif = ['bridge=...,mac=...,...']`. */
  async addVif(domid: number, devid: number, extra: Record<string, string | number> = {}): Promise<void> {
    // Named after the suite, so they never meet another xenode's vif<domid>.<devid>.
    const nic = resolveNicDefaults({ bridge: this.lan.bridge, ifname: this.vifName(domid, devid), ...extra }, { guestType: 'pv', devid });
    await addDevice(this.xs, domid, vifDeviceEntries(nic));
  }

  vifName(domid: number, devid: number): string {
    return `xv${this.label}${domid}.${devid}`;
  }

  async removeVif(domid: number, devid: number): Promise<void> {
    await removeDevice(this.xs, domid, 'vif', devid, { force: true });
  }

  backendState(domid: number, devid: number): Promise<number> {
    return vifBackendState(this.xs, domid, devid);
  }

  backendError(domid: number, devid: number): Promise<string> {
    return vifBackendError(this.xs, domid, devid);
  }

  stats(domid: number, devid: number): Promise<Record<string, number>> {
    return vifStats(this.bus, domid, devid);
  }

  /** A well-behaved guest running the real netfront; its eth0 lives in namespace xnhg-<label>
   * (the test's view of that guest's network). */
  async goodGuest(name: string, address: string, cmdline = ''): Promise<{ guest: Guest; netns: string; exec: (argv: string[], timeoutMs?: number) => Promise<{ code: number; out: string }> }> {
    const g = await this.createGuest(name);
    const netns = `xnhg-${this.label}-${g.domid}`;
    spawnSync('ip', ['netns', 'del', netns]);
    const r = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add ${netns}: ${r.stderr}`);
    this.netns.push(netns);
    spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    let n = 0;
    const provider: NetTapProvider = {
      ipNetns: ['-n', netns],
      create: (ifname, offloads) => {
        const tmp = `xnt${this.label}${g.domid}${n++}`.slice(0, 15);
        const t = native().tapOpen(tmp, true, offloads);
        const run = (args: string[]) => {
          const x = spawnSync('ip', args, { encoding: 'utf8' });
          if (x.status !== 0) throw new Error(`ip ${args.join(' ')}: ${x.stderr}`);
        };
        run(['link', 'set', 'dev', tmp, 'netns', netns]);
        run(['-n', netns, 'link', 'set', 'dev', tmp, 'name', ifname]);
        return { fd: t.fd, name: ifname };
      },
      destroy: (fd) => native().close(fd),
    };
    const k: KernelServices = {
      domid: g.domid,
      xs: g.xs,
      evtchn: new EventChannels(g.hc),
      hc: g.hc,
      grants: g.grants,
      pages: g.pages,
      memory: g.memory,
      printk: (m) => this.logs.push(`d${g.domid}: ${m}`),
      cmdline,
    };
    const bus = new FrontendBus(k);
    bus.register('vif', netfrontFactory({ provider: () => provider }));
    await bus.start();
    this.goodBuses.push(bus);
    await this.addVif(g.domid, 0, { ip: address });
    const fe = `/local/domain/${g.domid}/device/vif/0/state`;
    try {
      await until(`${name}'s vif to connect`, async () => (await this.backendState(g.domid, 0)) === XenbusState.Connected);
      await until(`${name}'s netfront to connect`, async () => (await this.xs.read(fe).catch(() => '')) === '4');
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.logs.join('\n')}`);
    }
    spawnSync('ip', ['-n', netns, 'addr', 'add', address, 'dev', 'eth0']);
    return {
      guest: g,
      netns,
      // Never spawnSync here: the data path runs in this very process.
      exec: (argv, timeoutMs = 20_000) => runIn(netns, argv, timeoutMs),
    };
  }

  async stop(): Promise<void> {
    for (const b of this.goodBuses.splice(0)) await b.removeAll().catch(() => {});
    await this.bus?.removeAll().catch(() => {});
    for (const g of this.guests.splice(0)) {
      g.xs.close();
      g.hc.close();
    }
    await this.hv?.destroyAll().catch(() => {});
    this.xs?.close();
    await this.xenstored?.close().catch(() => {});
    this.hc?.close();
    for (const ns of this.netns.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
    this.lan.down();
    for (const [k, v] of Object.entries(this.env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A frontend that plays by no rules (../harness/raw-front.ts), facing the real hypervisor. */
export class HostileFront extends RawNetFront {
  private sendFd = -1;

  constructor(
    readonly h: NetHarness,
    override readonly g: Guest,
    devid: number,
  ) {
    super(g, devid);
  }

  /** Rings and channel published, state Connected; waits for the backend to connect. */
  async connect(keys: Record<string, string | number> = {}, waitConnected = true): Promise<void> {
    await this.h.addVif(this.g.domid, this.devid, { mac: this.mac });
    await until('backend InitWait', async () => (await this.h.backendState(this.g.domid, this.devid)) === XenbusState.InitWait);
    const { result, fds } = await this.g.hc.call<{ port: number }>('evtchn.alloc_unbound', { dom: 'self', remote_dom: 0 });
    this.port = result.port;
    for (const fd of fds) native().close(fd); // we never wait for events: we poll
    this.g.hc.onUpcall('evtchn.bound', (args: { port: number }, bfds: number[]) => {
      if (args.port === this.port && bfds[0] !== undefined) this.sendFd = bfds[0];
      else for (const fd of bfds) native().close(fd);
    });
    await this.publish(keys);
    if (waitConnected) {
      await until('backend Connected', async () => (await this.h.backendState(this.g.domid, this.devid)) === XenbusState.Connected);
      await until('the event channel', () => this.sendFd >= 0);
    }
  }

  notify(): void {
    if (this.sendFd >= 0) native().eventfdWrite(this.sendFd, 1);
  }

  /** Rings our event channel from another thread for `ms` milliseconds, as fast as it can. */
  storm(ms: number): Promise<number> {
    return ringStorm(this.sendFd, ms);
  }
}
