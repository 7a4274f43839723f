// dom0's handle on the stub domains (stubdom/main.ts): one per HVM guest, as Xen runs one
// stub domain per guest, so a device model that a guest subverts holds that guest's memory
// and devices and nothing else. Each is confined by native/stubdom-sandbox.c (its own uids,
// no capabilities, no_new_privs, a seccomp allowlist, its own mount, pid, network, IPC
// namespaces, a memory and pids cgroup: docs/hvm.md, "The stub domain"). Requests carry the
// guest's fds (RAM, ioreq pages, irq doorbell, TAPs, images, serial pty, the VNC listening
// socket) as SCM_RIGHTS: the stub domain opens nothing of the host by path. A device model
// that ends by itself, or a stub domain that dies (kill -9 included), takes its guest down as
// crashed, at once: the guest's vCPU would otherwise wait on an ioreq nobody answers.
//
// A stub domain outlives dom0, as Xen's stub domains are domains the hypervisor keeps: its
// sandbox is started in a session of its own (no signal to dom0's process group or terminal
// reaches it; its PDEATHSIG ties it to the sandbox, not to dom0), and dom0 leaves copies of
// what must survive with the hypervisor's fd store (fd-store-client.ts): its end of the
// channel (so the stub domain sees no hang-up when dom0 dies, and what it sends meanwhile, a
// dm.exit included, waits in the socket for the next dom0), the readers of its logs, and the
// claim on its uids. A new dom0 takes them back (adopt) and talks on with call ids past any
// the dead one used; what it does not take over (reclaimLeftovers) is killed and removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, nativeBuildDir } from '../native/index.js';
import { HypercallClient } from '../drivers/hypercall/channel.js';
import { dirtyBitmapBytes, type DmControl, type DmControlResult, type DmDisk, type DmDisplay, type DmExit, type DmStarted } from '../stubdom/protocol.js';
import { bindVncDisplay, VNC_BASE_PORT } from '../stubdom/vnc/vnc-server.js';
import type { Logger } from '../common/log.js';
import { stubdomRootsDir } from '../common/paths.js';
import { adoptUidRange, claimUidRange, uidPoolFromEnv, type UidRange } from '../common/uid-ranges.js';
import type { FdStoreClient } from './fd-store-client.js';
import { StubdomCgroup } from './stubdom-cgroup.js';
import { StubdomLogs } from './stubdom-logs.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..');

/** What a stub domain may use beyond its guest's RAM (which it maps; the pages of it the device
 * model touches first are charged to it, so the limit adds the guest's memory): Node and one
 * device model run in about 60 MiB, and the display's video memory comes on top. */
export const STUBDOM_BASE_MEMORY = 192 << 20;
const STOP_TIMEOUT_MS = 3000;

export interface DeviceModelFds {
  memory: number;
  ioreq: number;
  irq: number;
  serial: number;
  /** The guest's console log: its serial output is written there (capped, dom0/stubdom-logs.ts). */
  consoleLog: string;
  taps: { devid: number; mac: string; fd: number }[];
  /** Disk images opened by dom0, by IDE index (an empty cdrom has none). */
  disks: Map<number, number>;
}

export interface DeviceModelSpec {
  domid: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  disks: DmDisk[];
  firmware?: boolean;
  display?: DmDisplay;
  /** A restore: the device models wait for their saved state (loadState) before serving. */
  awaitState?: boolean;
}

/** The fd store entry of a stub domain: what its fds are, in this order. */
const STORE_ENTRY = 'stubdom';
interface StoredStubdom {
  /** fds: channel, console log reader, stdout reader, stderr reader, uid claim. */
  uidBase: number;
  launcherPid: number;
}

/** Call ids per dom0 generation: a restarted dom0 starts past every id its predecessors used. */
const IDS_PER_GENERATION = 2 ** 32;

/** One running stub domain. */
interface StubDomain {
  domid: number;
  /** The sandbox this dom0 started; null for one a dead dom0 started and this one took over. */
  launcher: ChildProcess | null;
  launcherPid: number;
  client: HypercallClient;
  /** dom0's end of the channel (the client's). */
  channelFd: number;
  uids: UidRange;
  cgroup: StubdomCgroup;
  root: string;
  /** dom0 asked it to stop: its end is not a crash. */
  stopping: boolean;
  exited: Promise<void>;
  done: () => void;
  pid: number | null;
  logs: StubdomLogs;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `its sandbox was killed by ${signal}`;
  if (code !== null && code > 128) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] ?? `signal ${code - 128}`;
    return `killed by ${name}${name === 'SIGSYS' ? ' (a system call outside its seccomp allowlist)' : ''}`;
  }
  return `exited with status ${code}`;
}

/** A stub domain's (empty) root mount point, and their parent when it is the last. */
function removeRootDir(root: string): void {
  for (const dir of [root, dirname(root)]) {
    try {
      rmdirSync(dir);
    } catch {
      /* gone, or another stub domain's is still there */
    }
  }
}

export class StubdomHost {
  private readonly domains = new Map<number, StubDomain>();
  /** Leftover groups being removed, by domid: a new stub domain for that domid waits. */
  private readonly reclaiming = new Map<number, Promise<void>>();

  private readonly firstCallId: number;

  /** `store`: where stub domains' fds are left to outlive this dom0 (none: they die with it);
   * `generation`: how many dom0s ran before this one (main.ts). */
  constructor(
    private readonly log: Logger,
    private readonly onDmExit: (e: DmExit) => void,
    private readonly store: FdStoreClient | null = null,
    generation = 0,
  ) {
    this.firstCallId = generation * IDS_PER_GENERATION + 1;
  }

  /** Stub domains' cgroups and root directories nobody serves: a dom0 that died started them
   * and this one did not take them over (adopt), or their guest is gone. Kill what still runs
   * there and remove them. Call once, after adopting. */
  reclaimLeftovers(): void {
    for (const cg of StubdomCgroup.leftovers()) {
      if (this.domains.has(cg.domid)) continue;
      this.log.warn(`stub domain of domain ${cg.domid} is left from a dom0 that died and serves no guest here: killing it`);
      cg.killAll();
      const root = join(stubdomRootsDir(), String(cg.domid));
      const done = cg.remove().then(() => {
        removeRootDir(root);
        this.reclaiming.delete(cg.domid);
      });
      this.reclaiming.set(cg.domid, done);
    }
  }

  /** Start a confined stub domain for one guest and its device model in it. */
  async start(spec: DeviceModelSpec, f: DeviceModelFds): Promise<DmStarted> {
    if (this.domains.has(spec.domid)) throw new Error(`domain ${spec.domid} already has a stub domain`);
    const fds: number[] = [];
    const at = (fd: number) => (fd < 0 ? -1 : fds.push(fd) - 1);
    // The VNC server listens in the host's namespace (the stub domain's has no interfaces):
    // dom0 binds the socket, the stub domain accepts on it.
    const vnc = spec.display?.vnc;
    let listenFd = -1;
    try {
      const port = vnc ? await this.bindVnc(vnc, (fd) => (listenFd = fd)) : 0;
      const args = {
        ...spec,
        display: spec.display && { ...spec.display, vnc: vnc && { ...vnc, listenFd: at(listenFd), display: port - VNC_BASE_PORT } },
        disks: spec.disks.map((d) => ({ ...d, fd: at(f.disks.get(d.index) ?? -1) })),
        fds: { memory: at(f.memory), ioreq: at(f.ioreq), irq: at(f.irq), serial: at(f.serial), log: -1 },
        nics: f.taps.map((t) => ({ devid: t.devid, mac: t.mac, tapFd: at(t.fd) })),
      };
      const sd = await this.launch(spec.domid, spec.memoryBytes + (spec.display?.vramBytes ?? 0), f.consoleLog);
      args.fds.log = at(sd.logs.consoleFd);
      try {
        return (await sd.client.call('start', args, fds)).result as DmStarted;
      } catch (e) {
        await this.stop(spec.domid);
        throw e;
      } finally {
        // The stub domain has its own copy now.
        native().close(sd.logs.consoleFd);
      }
    } finally {
      if (listenFd >= 0) native().close(listenFd);
    }
  }

  /** Bind the display's listening socket and keep a copy of its descriptor that dom0's event
   * loop does not watch: closing Node's server at once, before the loop polls again, means
   * dom0 never accepts a viewer; early ones wait in the backlog for the stub domain. */
  private async bindVnc(vnc: NonNullable<DmDisplay['vnc']>, keep: (fd: number) => void): Promise<number> {
    const { server, port } = await bindVncDisplay(vnc);
    try {
      const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      if (fd < 0) throw new Error('VNC: no descriptor for the listening socket');
      keep(native().dup(fd));
    } finally {
      server.close();
    }
    return port;
  }

  private async launch(domid: number, guestBytes: number, consoleLog: string): Promise<StubDomain> {
    await this.reclaiming.get(domid);
    const uids = await claimUidRange(uidPoolFromEnv());
    const cgroup = new StubdomCgroup(domid);
    const root = join(stubdomRootsDir(), String(domid));
    let launcher: ChildProcess;
    let logs: StubdomLogs | null = null;
    const [ours, theirs] = native().seqpacketPair();
    try {
      logs = new StubdomLogs(consoleLog);
      cgroup.create(STUBDOM_BASE_MEMORY + guestBytes);
      mkdirSync(root, { recursive: true, mode: 0o755 });
      // What Node needs to run stubdom/main.js, read-only at the same paths: the compiled
      // code, the addon, package.json (it makes dist/ ES modules), and Node itself when it is
      // not under /usr (which the sandbox always has).
      const binds = [dist, nativeBuildDir(), join(dist, '..', 'package.json')];
      if (!process.execPath.startsWith('/usr/')) binds.push(dirname(dirname(process.execPath)));
      // detached: a session of its own. The stub domain is the hypervisor's, not part of dom0.
      launcher = spawn(
        join(nativeBuildDir(), 'xenode-stubdom-sandbox'),
        [
          '--uid', String(uids.base), '--gid', String(uids.base), '--root', root,
          ...cgroup.dirs.flatMap((d) => ['--cgroup', d]),
          ...binds.flatMap((b) => ['--bind-ro', b]),
          '--keep-fd', '3',
          '--', process.execPath, join(dist, 'stubdom', 'main.js'),
        ],
        { stdio: ['ignore', 'pipe', 'pipe', theirs], detached: true },
      );
      for (const s of [launcher.stdout!, launcher.stderr!]) logs.attach(s, (l) => process.stderr.write(`${l}\n`));
    } catch (e) {
      logs?.close();
      native().close(ours);
      uids.release();
      await cgroup.remove();
      throw e;
    } finally {
      native().close(theirs);
    }
    const sd = this.serve(domid, ours, { launcher, launcherPid: launcher.pid ?? 0, uids, cgroup, root, logs });
    launcher.on('exit', (code, signal) => this.ended(sd, describeExit(code, signal)));
    this.log.info(`stub domain of domain ${domid} started (pid ${launcher.pid}, uid ${uids.base})`);
    await this.deposit(sd, [launcher.stdout, launcher.stderr]);
    return sd;
  }

  /** Talk to a stub domain over `channel` (ours, or the one a dead dom0 left). */
  private serve(domid: number, channel: number, parts: Pick<StubDomain, 'launcher' | 'launcherPid' | 'uids' | 'cgroup' | 'root' | 'logs'>): StubDomain {
    const client = new HypercallClient(channel, { firstId: this.firstCallId });
    let exited!: () => void;
    const sd: StubDomain = { domid, client, channelFd: channel, ...parts, stopping: false, exited: new Promise((r) => (exited = r)), done: () => exited(), pid: null };
    client.onUpcall('dm.exit', (args: DmExit) => {
      // Only about its own guest: a stub domain serves one.
      if (args?.domid !== domid) return;
      sd.stopping = true;
      this.onDmExit(args);
    });
    this.domains.set(domid, sd);
    return sd;
  }

  /** Leave copies of what must outlive this dom0 with the hypervisor (the module comment). A
   * stub domain whose copies could not be left still works; it ends with this dom0. */
  private async deposit(sd: StubDomain, streams: unknown[]): Promise<void> {
    if (!this.store) return;
    const fds: number[] = [];
    try {
      const streamFds = streams.map((st) => (st as { _handle?: { fd?: number } } | null)?._handle?.fd ?? -1);
      if (streamFds.some((fd) => fd < 0)) throw new Error('no descriptor for its stdout or stderr');
      fds.push(sd.uids.dupClaim());
      const meta: StoredStubdom = { uidBase: sd.uids.base, launcherPid: sd.launcherPid };
      await this.store.put(sd.domid, STORE_ENTRY, [sd.channelFd, sd.logs.ours, ...streamFds, fds[0]!], meta);
    } catch (e) {
      this.log.warn(`stub domain of domain ${sd.domid}: cannot leave its descriptors with the hypervisor, so it will not outlive dom0: ${(e as Error).message}`);
    } finally {
      for (const fd of fds) native().close(fd);
    }
  }

  /**
   * A dom0 started after its predecessor died takes over a guest's stub domain: the channel,
   * log readers and uid claim the dead one left with the hypervisor; the stub domain never
   * noticed. Answers left for the dead dom0's calls are dropped (their ids are not ours);
   * upcalls it did not read (a dm.exit: the device model ended meanwhile) are acted on now.
   * A stub domain that died meanwhile shows as a channel already hung up: its guest crashes.
   * Throws when there is nothing to take over (the guest is then crashed by the caller).
   */
  async adopt(domid: number, consoleLog: string): Promise<void> {
    if (!this.store) throw new Error('this dom0 keeps no stub domains across restarts');
    const got = await this.store.get(domid, STORE_ENTRY);
    if (!got) throw new Error('the dead dom0 left no stub domain for it with the hypervisor');
    const m = got.meta as Partial<StoredStubdom> | null;
    if (got.fds.length !== 5 || !Number.isInteger(m?.uidBase) || !Number.isInteger(m?.launcherPid)) {
      for (const fd of got.fds) native().close(fd);
      throw new Error('its stub domain entry in the fd store is not one this dom0 understands');
    }
    const [channel, consoleReader, out, err, claim] = got.fds as [number, number, number, number, number];
    const logs = new StubdomLogs(consoleLog, consoleReader);
    for (const fd of [out, err]) logs.attachFd(fd, (l) => process.stderr.write(`${l}\n`));
    const sd = this.serve(domid, channel, {
      launcher: null,
      launcherPid: m!.launcherPid!,
      uids: adoptUidRange(m!.uidBase!, claim),
      cgroup: new StubdomCgroup(domid),
      root: join(stubdomRootsDir(), String(domid)),
      logs,
    });
    // Not our child: its end shows as the channel hanging up.
    sd.client.onClose(() => {
      if (!sd.stopping) this.ended(sd, 'its channel hung up');
    });
    this.log.info(`took over the stub domain of domain ${domid} (pid ${this.pidOf(domid) ?? '?'}, uid ${m!.uidBase}) from the dom0 that died`);
  }

  /** A stub domain ended: by dom0's stop, or by itself (its guest crashes). */
  private ended(sd: StubDomain, why: string): void {
    if (this.domains.get(sd.domid) !== sd) return;
    sd.client.close();
    this.domains.delete(sd.domid);
    if (!sd.stopping) {
      this.log.error(`stub domain of domain ${sd.domid} died: ${why}`);
      this.onDmExit({ domid: sd.domid, reason: 'crash', message: `its stub domain died (${why})` });
    }
    void this.cleanUp(sd).then(sd.done);
  }

  private async cleanUp(sd: StubDomain): Promise<void> {
    // A sandbox that is not our child ends after its channel does: give it time, then kill.
    if (!sd.launcher && !(await sd.cgroup.waitEmpty(STOP_TIMEOUT_MS))) {
      sd.cgroup.killAll();
      await sd.cgroup.waitEmpty(1000);
    }
    await this.store?.remove(sd.domid, STORE_ENTRY).catch(() => {});
    sd.logs.close();
    sd.uids.release();
    await sd.cgroup.remove();
    removeRootDir(sd.root);
  }

  /** Stop a guest's device model and its stub domain. */
  async stop(domid: number): Promise<void> {
    const sd = this.domains.get(domid);
    if (!sd) return;
    sd.stopping = true;
    const timer = setTimeout(() => (sd.launcher ? sd.launcher.kill('SIGKILL') : sd.cgroup.killAll()), STOP_TIMEOUT_MS);
    await sd.client.call('stop', { domid }).catch(() => {});
    // Its channel closing is the stub domain's cue to exit: the hypervisor's copy goes first.
    await this.store?.remove(domid, STORE_ENTRY).catch(() => {});
    sd.client.close();
    if (!sd.launcher) this.ended(sd, 'stopped');
    await sd.exited;
    clearTimeout(timer);
  }

  /** The host pid of a guest's stub domain (the Node process inside the sandbox). */
  pidOf(domid: number): number | null {
    const sd = this.domains.get(domid);
    if (!sd?.launcherPid) return null;
    if (sd.pid === null) {
      try {
        const kids = readFileSync(`/proc/${sd.launcherPid}/task/${sd.launcherPid}/children`, 'utf8').trim().split(/\s+/);
        sd.pid = kids[0] ? Number(kids[0]) : null;
      } catch {
        /* exiting */
      }
    }
    return sd.pid;
  }

  async metrics(domid: number): Promise<unknown> {
    const sd = this.domains.get(domid);
    if (!sd) return null;
    return (await sd.client.call('metrics', { domid })).result;
  }

  // ---- save, restore, migration (stubdom/dm-save.ts) ----

  private clientOf(domid: number): HypercallClient {
    const sd = this.domains.get(domid);
    if (!sd) throw new Error(`domain ${domid} has no stub domain`);
    return sd.client;
  }

  /** Freezes the guest's device models and returns their state (the fd is the caller's). */
  async save(domid: number): Promise<{ fd: number; bytes: number }> {
    const c = this.clientOf(domid);
    const bytes = (await c.call<{ bytes: number }>('save', { domid })).result.bytes;
    // The confined stub domain cannot make memfds: it writes into ours.
    const fd = native().memfdCreate('xenode-dm-state', Math.max(4096, bytes));
    try {
      await c.call('fetch-state', { domid }, [fd]);
    } catch (e) {
      native().close(fd);
      throw e;
    }
    return { fd, bytes };
  }

  /** A restore's device state, for a model started with awaitState. */
  async loadState(domid: number, fd: number, bytes: number): Promise<void> {
    await this.clientOf(domid).call('load-state', { domid, bytes }, [fd]);
  }

  /** After a checkpoint: the models take input again. */
  async thaw(domid: number): Promise<void> {
    await this.domains.get(domid)?.client.call('thaw', { domid });
  }

  /** Resolves when a restored model has loaded its state; rejects with why it refused it. */
  async restored(domid: number): Promise<void> {
    await this.clientOf(domid).call('restored', { domid });
  }

  /** Pages the model writes by DMA during a migration: start, collect (a bitmap in a memfd
   * the caller closes), stop. */
  async dmaDirty(domid: number, action: 'start' | 'collect' | 'stop', memoryBytes = 0): Promise<{ fd: number; bytes: number } | null> {
    const c = this.clientOf(domid);
    if (action !== 'collect') {
      await c.call('dma-dirty', { domid, action });
      return null;
    }
    const bytes = dirtyBitmapBytes(memoryBytes);
    const fd = native().memfdCreate('xenode-dma-dirty', Math.max(4096, bytes));
    try {
      await c.call('dma-dirty', { domid, action }, [fd]);
    } catch (e) {
      native().close(fd);
      throw e;
    }
    return { fd, bytes };
  }

  /** xl trigger / cd-insert / cd-eject: a control for a guest's running device model (`fd`:
   * the new disc's image, sent as SCM_RIGHTS: the stub domain opens no files itself). */
  async control(domid: number, control: DmControl, fd?: number): Promise<DmControlResult> {
    const sd = this.domains.get(domid);
    if (!sd) throw Object.assign(new Error(`domain ${domid} has no stub domain`), { code: 'ESRCH' });
    return (await sd.client.call('control', { domid, control }, fd === undefined ? [] : [fd])).result as DmControlResult;
  }

  /** Fault injection for tests: make a device model end as a crash would (`exit`), or try
   * what a subverted one would (`escape`, answered with what each attempt got; `setuid`, a
   * call the seccomp filter answers by killing the stub domain). */
  async injectFault(domid: number, fault: unknown): Promise<unknown> {
    const sd = this.domains.get(domid);
    if (!sd) throw new Error(`domain ${domid} has no stub domain`);
    return (await sd.client.call('fault', { domid, fault })).result;
  }

  /** dom0 is going: every stub domain goes with it. */
  shutdown(): void {
    for (const sd of this.domains.values()) {
      sd.stopping = true;
      if (sd.launcher) sd.launcher.kill('SIGTERM');
      else sd.cgroup.killAll('SIGTERM');
    }
  }
}
