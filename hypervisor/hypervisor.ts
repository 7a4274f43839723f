// The hypervisor core: the domain table and what hypercalls do to it (the table of hypercalls
// is in hypercalls/, one file per family). It runs in its own process; domains reach it only
// through their hypercall channel (drivers/hypercall/channel.ts), which also tells us who is
// calling: the channel is the domain's identity.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { hostname, release, version, machine, totalmem, freemem, uptime, cpus as osCpus } from 'node:os';
import { dirname, join } from 'node:path';
import { native } from '../native/index.js';
import { MessageSocket, type Received } from '../drivers/hypercall/channel.js';
import { VIRQ, type CreateDomainArgs, type DomainInfo, type HostInfo, type ShutdownReason } from '../drivers/hypercall/ops.js';
import { bootDir, cgroupName, domainRootDir } from '../common/paths.js';
import { DomainCgroup, DEFAULT_WEIGHT, hostCpus, removeParentGroups } from './cgroups.js';
import { ConsoleLog } from './console-log.js';
import { Domain } from './domain.js';
import { launchDomainKernel, UID_RANGE } from './domain-launcher.js';
import { claimUidRange, uidPoolFromEnv } from '../common/uid-ranges.js';
import { HVM_IOREQ_PAGES } from '../drivers/hypercall/hvm-platform-page.js';
import { kvmAvailable } from './kvm/kvm.js';
import { KvmDomain } from './kvm/kvm-domain.js';
import { createGuestRam } from './guest-ram.js';
import { ownEntry } from '../common/own-entry.js';
import { placeVcpus } from './cpu-placement.js';
import { abortDomainFuse } from './fuse-connections.js';
import { ramChargedBytes } from './ram-charge.js';
import type { KvmVmEvent } from './kvm/vm.js';
import { KERNEL_OVERHEAD_BYTES, MAX_DOMID, MIN_MEMORY_MIB, cpuLimit } from './domain-limits.js';
import { HypercallFault, fault, type HypercallContext, type HypercallTable } from './hypercalls/context.js';
import { hypercallTable } from './hypercalls/table.js';
import { collectSoon } from '../common/collect-soon.js';

export class Hypervisor {
  readonly log = new ConsoleLog();
  private readonly domains = new Map<number, Domain>();
  private nextDomid = 1;
  private readonly uidPool = uidPoolFromEnv();
  private readonly cpuList = hostCpus();
  private readonly handlers: HypercallTable;
  private onDom0Exit: (() => void) | null = null;

  constructor() {
    const dom0 = new Domain(0, '00000000-0000-0000-0000-000000000000', 'Domain-0', Math.round(totalmem() / 1048576), Math.round(totalmem() / 1048576), this.cpuList.length, this.cpuList.length, this.cpuList);
    dom0.started = true;
    dom0.paused = false;
    this.domains.set(0, dom0);
    this.handlers = this.buildHandlers();
    this.log.write(`xenode hypervisor starting on ${hostname()} with ${this.cpuList.length} CPUs, ${Math.round(totalmem() / 1048576)} MiB`);
  }

  /** Connect dom0's hypercall channel (an fd the launcher gave us). */
  attachDom0(fd: number, onExit: () => void): void {
    const dom0 = this.domains.get(0)!;
    this.onDom0Exit = onExit;
    if (dom0.channel) {
      // A new dom0 after one died (main.ts): the guests' channels to dom0 stay for it to
      // reopen, its VIRQ bindings were the dead process's own.
      const old = dom0.channel;
      dom0.channel = null;
      old.close();
      for (const p of dom0.evtchn.all()) if (p.state === 'virq') this.closePort(dom0, p.port);
    }
    const ch: MessageSocket = new MessageSocket(fd, (m) => this.onMessage(dom0, m), () => {
      this.log.write('dom0 hypercall channel closed');
      if (dom0.channel === ch) this.onDom0Exit?.();
    });
    dom0.channel = ch;
  }

  /** A created, never started domain talks to us over `fd` as its kernel would, without a
   * kernel process: for harnesses that play a guest kernel in-process (the hostile PV
   * frontends of test/net/hostile). Its first unpause will then not start a kernel. */
  attachGuestChannel(domid: number, fd: number): void {
    const d = this.domain(domid);
    if (d.domid === 0 || d.started || d.channel) throw fault('EINVAL', `domain ${domid} already has a kernel`);
    d.channel = new MessageSocket(fd, (m) => this.onMessage(d, m), () => {});
    d.started = true;
    d.paused = false;
    d.startTimeMs = Date.now();
  }

  // ---------------------------------------------------------------- message dispatch

  private onMessage(caller: Domain, { message, fds }: Received): void {
    const id = message.id;
    const op = message.op;
    // The answer goes to the channel the call came on (a dom0 that died does not get its
    // successor's answers, nor the other way round).
    const channel = caller.channel;
    const reply = (body: object, out: number[] = []) => {
      try {
        if (channel !== caller.channel) throw new Error('the caller is gone');
        channel?.send({ id, ...body }, out);
      } catch (e) {
        this.logFor(caller, `cannot reply to ${String(op).slice(0, 64)}: ${(e as Error).message}`);
      }
    };
    if (typeof id !== 'number' || typeof op !== 'string') {
      for (const fd of fds) native().close(fd);
      return reply({ error: { errno: 'EINVAL', message: 'malformed hypercall (needs numeric id and string op)' } });
    }
    // Only the table's own names: `constructor` or `__proto__` are unknown hypercalls too.
    const h = ownEntry(this.handlers, op);
    if (!h) {
      for (const fd of fds) native().close(fd);
      return reply({ error: { errno: 'ENOSYS', message: `unknown hypercall ${op}` } });
    }
    if (h.privileged && caller.domid !== 0) {
      for (const fd of fds) native().close(fd);
      return reply({ error: { errno: 'EPERM', message: `${op} is for the control domain only` } });
    }
    const args = typeof message.args === 'object' && message.args !== null ? message.args : {};
    Promise.resolve()
      .then(() => h.fn(caller, args, fds))
      .then(
        (r) => reply({ result: r.result ?? null }, r.fds ?? []),
        (e: unknown) => {
          const errno = e instanceof HypercallFault ? e.errno : 'EINVAL';
          if (!(e instanceof HypercallFault)) this.logFor(caller, `${op} failed: ${(e as Error).stack ?? e}`);
          reply({ error: { errno, message: (e as Error).message } });
        },
      );
  }

  // ---------------------------------------------------------------- helpers

  /** A line about something `d` made happen: a guest's are rate-limited (console-log.ts). */
  private logFor(d: Domain, msg: string): void {
    if (d.domid === 0) this.log.write(`d0: ${msg}`);
    else this.log.guest(d.domid, msg);
  }

  private domain(domid: unknown): Domain {
    const d = typeof domid === 'number' ? this.domains.get(domid) : undefined;
    if (!d) throw fault('ESRCH', `no domain ${String(domid)}`);
    return d;
  }

  /** A guest may only name itself; dom0 may name anyone. "self" means the caller. */
  private target(caller: Domain, dom: unknown): Domain {
    if (dom === undefined || dom === 'self' || dom === caller.domid) return caller;
    if (caller.domid !== 0) throw fault('EPERM', `domain ${caller.domid} may not act on domain ${String(dom)}`);
    return this.domain(dom);
  }

  private int(v: unknown, name: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw fault('EINVAL', `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  private sendVirqDomExc(): void {
    const dom0 = this.domains.get(0)!;
    const p = dom0.evtchn.findVirq(VIRQ.DOM_EXC);
    if (p) dom0.evtchn.raise(p.port);
  }

  info(d: Domain): DomainInfo {
    let running = false;
    let blocked = false;
    // A KVM domain's vCPUs are threads whose state we read directly; others are processes.
    const vcpus = d.kvm?.vcpuInfo();
    if (d.started && !d.paused && !d.isShutdown && !d.dying) {
      running = d.domid === 0 || (vcpus ? vcpus.some((v) => v.state === 'r') : this.anyRunnable(d));
      blocked = !running;
    }
    const memKiB = d.domid === 0 ? d.targetKiB : Math.max(d.targetKiB, 0);
    return {
      domid: d.domid,
      uuid: d.uuid,
      label: d.label,
      running,
      blocked,
      // A domain made with `xl create -p` is paused before its kernel ever ran, as in Xen.
      paused: d.domid !== 0 && d.paused && !d.isShutdown && !d.dying,
      shutdown: d.isShutdown && !d.crashed,
      crashed: d.crashed,
      dying: d.dying,
      shutdownReason: d.shutdownReason,
      memKiB,
      maxMemKiB: d.maxMemKiB,
      targetKiB: d.targetKiB,
      vcpus: d.maxVcpus,
      onlineVcpus: d.onlineVcpus,
      cpuTimeNs:
        d.domid === 0
          ? Math.round(process.cpuUsage().user * 1000 + process.cpuUsage().system * 1000)
          : vcpus
            ? Math.round(vcpus.reduce((t, v) => t + v.cpuTimeSec, 0) * 1e9)
            : (d.cgroup?.cpuTimeNs() ?? 0),
      startTimeMs: d.startTimeMs,
      pid: d.process?.pid ?? (d.domid === 0 ? process.pid : 0),
      weight: d.weight,
      cap: d.cap,
      vcpuAffinity: d.vcpuAffinity,
      vcpuInfo: vcpus?.map((v) => ({ state: v.state, cpu: v.cpu, timeSec: v.cpuTimeSec })),
    };
  }

  /** How much of the domain's RAM its memory cgroup pays for (ram-charge.ts). It cannot be more
   * than `atMost` (the cgroup's mapped shmem); the page walk costs about a millisecond per
   * 128 MiB, so an answer serves for 2 s: the kernel touches new RAM pages rarely. */
  private ramCharged(d: Domain, atMost: number): number {
    if (atMost === 0) return 0;
    const now = Date.now();
    if (!d.ramCharge || now - d.ramCharge.atMs > 2000) {
      const pid = this.kernelPid(d);
      d.ramCharge = { atMs: now, bytes: pid > 0 && d.cgroup ? ramChargedBytes(pid, `xenode-d${d.domid}-ram`, d.cgroup.memoryDir) : 0 };
    }
    return Math.min(atMost, d.ramCharge.bytes);
  }

  /** The guest kernel's host pid: the jailer's one child (0 before it runs or after). */
  private kernelPid(d: Domain): number {
    const jailer = d.process?.pid;
    if (!jailer) return 0;
    try {
      return Number(readFileSync(`/proc/${jailer}/task/${jailer}/children`, 'latin1').trim().split(/\s+/)[0]) || 0;
    } catch {
      return 0;
    }
  }

  /** 'r' if any of the domain's tasks is on a CPU or runnable right now, else 'b'. */
  private anyRunnable(d: Domain): boolean {
    for (const pid of d.cgroup?.pids() ?? []) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        if (state === 'R') return true;
      } catch {
        /* exited */
      }
    }
    return false;
  }

  /** The domain's cpuset is the union of its vCPUs' affinities (all host CPUs until a config
   * or `xl vcpu-pin` narrows them); its CPU time is capped at its vCPUs' worth (cpuLimit).
   * Its vCPUs' own CPUs, which the guest kernel confines its userland to (so nproc counts
   * the vCPUs), are those affinities once given, else one least-used host CPU per online
   * vCPU. The kernel itself keeps the whole cpuset: confined to one CPU with its programs,
   * a 1-vCPU guest's 4 KiB disk reads at queue depth 1 fell to half (docs/architecture.md). */
  private applyCpuset(d: Domain): void {
    d.cgroup?.setCpus(union(d.vcpuAffinity));
    if (d.affinityGiven) d.vcpuCpus = union(d.vcpuAffinity);
    else {
      const others = [...this.domains.values()].filter((o) => o !== d && o.domid !== 0 && !o.dying).map((o) => ({ cpus: o.vcpuCpus, vcpus: o.onlineVcpus }));
      d.vcpuCpus = placeVcpus(d.onlineVcpus, this.cpuList, others, d.vcpuCpus);
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async createDomain(args: CreateDomainArgs): Promise<Domain> {
    const memoryMiB = this.int(args.memoryMiB, 'memory', MIN_MEMORY_MIB, 1 << 20);
    const maxMemMiB = Math.max(memoryMiB, this.int(args.maxMemMiB ?? memoryMiB, 'maxmem', MIN_MEMORY_MIB, 1 << 20));
    const maxVcpus = this.int(args.maxVcpus ?? args.vcpus, 'maxvcpus', 1, 128);
    const vcpus = this.int(args.vcpus, 'vcpus', 1, maxVcpus);
    // As Xen: a domain's memory must be there to give (guest RAM is a sparse memfd, so
    // without this a 1 TiB guest would "fit" on any host until it touched its pages).
    let freeMiB = Math.floor(freemem() / 1048576);
    // XENODE_MEMORY_MIB: the memory this host gives its guests, as a Xen host's physical memory
    // (a smaller host; tests use it for a migration target without room).
    const cap = Number(process.env.XENODE_MEMORY_MIB ?? '');
    if (cap > 0) freeMiB = Math.min(freeMiB, cap - [...this.domains.values()].filter((o) => o.domid !== 0).reduce((n, o) => n + o.memoryMiB, 0));
    if (memoryMiB + KERNEL_OVERHEAD_BYTES / 1048576 > freeMiB) {
      throw fault('ENOMEM', `not enough free memory for a ${memoryMiB} MiB domain (+${KERNEL_OVERHEAD_BYTES / 1048576} MiB kernel overhead): the host has ${freeMiB} MiB free`);
    }
    if (this.domains.size >= MAX_DOMID) throw fault('ENOSPC', 'no free domain id');
    let domid = this.nextDomid;
    while (this.domains.has(domid)) domid = domid + 1 >= MAX_DOMID ? 1 : domid + 1;
    this.nextDomid = domid + 1 >= MAX_DOMID ? 1 : domid + 1;
    const uuid = typeof args.uuid === 'string' && /^[0-9a-f-]{36}$/i.test(args.uuid) ? args.uuid : randomUUID();
    const label = String(args.label ?? `domain${domid}`).slice(0, 64);
    const d = new Domain(domid, uuid, label, memoryMiB, maxMemMiB, maxVcpus, vcpus, this.cpuList);
    if (args.cpus?.length) {
      const allowed = args.cpus.filter((c) => this.cpuList.includes(c));
      if (allowed.length === 0) throw fault('EINVAL', `cpus ${args.cpus.join(',')} are not on this host (${this.cpuList.join(',')})`);
      d.vcpuAffinity = d.vcpuAffinity.map(() => [...allowed]);
      d.affinityGiven = true;
    }
    const kernel = args.kernel as CreateDomainArgs['kernel'] | undefined;
    const linux = kernel?.kind === 'hvm' ? kernel.linux : undefined;
    if (linux) {
      // HVM on KVM: say plainly when this host cannot, before anything is allocated.
      const kvm = kvmAvailable();
      if (!kvm.ok) throw fault('ENODEV', `HVM on KVM is not possible here: ${kvm.reason}`);
      if (vcpus > this.cpuList.length) throw fault('EINVAL', `vcpus=${vcpus}: an HVM guest on KVM may have at most the host's ${this.cpuList.length} CPUs`);
      if (typeof linux.kernel !== 'string' || !linux.kernel) throw fault('EINVAL', 'kernel: a path to a Linux bzImage is needed');
    }
    if (kernel?.kind === 'hvm') {
      d.kind = 'hvm';
      d.cmdline = String(kernel.cmdline ?? '').slice(0, 1023);
    } else {
      d.startInfoPfn = this.int(kernel?.startInfoPfn, 'kernel.startInfoPfn', 0, d.nrPages - 1);
    }
    const n = native();
    try {
      d.memFd = createGuestRam(`xenode-d${domid}-ram`, memoryMiB * 1024 * 1024, (m) => this.log.write(m));
      d.grantFrames = args.grantFrames ?? d.grantFrames;
      d.grantFd = n.memfdCreate(`xenode-d${domid}-gnttab`, d.grantFrames * 4096);
      if (d.kind === 'hvm') d.ioreqFd = n.memfdCreate(`xenode-d${domid}-ioreq`, HVM_IOREQ_PAGES * 4096);
      d.cgroup = new DomainCgroup(cgroupName(), domid);
      d.cgroup.create();
      d.cgroup.setMemoryLimit(memoryMiB * 1024 * 1024 + KERNEL_OVERHEAD_BYTES, memoryMiB * 1024 * 1024);
      d.cgroup.setWeight(DEFAULT_WEIGHT);
      d.cgroup.setCap(cpuLimit(d, this.cpuList.length));
      this.applyCpuset(d);
      if (linux) d.kvm = this.createKvm(d, linux);
      // Its host uids, from a pool shared by every xenode on this host (no two share one).
      d.uidRange = await claimUidRange(this.uidPool);
    } catch (e) {
      await this.release(d);
      throw e;
    }
    this.domains.set(domid, d);
    this.log.write(`d${domid}: created "${label}" (${memoryMiB} MiB, ${vcpus} vCPUs, uuid ${uuid})`);
    return d;
  }

  /** The VM an HVM domain with a Linux `kernel` runs on; its fate is the domain's. */
  private createKvm(d: Domain, linux: NonNullable<Extract<CreateDomainArgs['kernel'], { kind: 'hvm' }>['linux']>): KvmDomain {
    const pciIrqs = Array.isArray(linux.pciIrqs) ? linux.pciIrqs : [];
    try {
      return KvmDomain.create({
        domid: d.domid,
        name: d.label,
        memfd: d.memFd,
        memoryBytes: d.memoryMiB * 1048576,
        vcpus: d.maxVcpus,
        ioreqFd: d.ioreqFd,
        linux: { kernel: linux.kernel, ramdisk: linux.ramdisk || undefined, cmdline: String(linux.cmdline ?? ''), pciIrqs },
        onEvent: (e) => this.onKvmEvent(d, e),
        restore: linux.restore === true,
      });
    } catch (e) {
      throw fault('EINVAL', `HVM guest kernel ${linux.kernel}: ${(e as Error).message}`);
    }
  }

  private onKvmEvent(d: Domain, e: KvmVmEvent): void {
    if (e.type === 'debug') return this.log.guest(d.domid, `[0xe9] ${e.text}`);
    if (d.dying || d.shutdownReason !== null) return;
    if (e.type === 'crash') {
      d.shutdownReason = 'crash';
      d.crashed = true;
      this.log.write(`d${d.domid}: crashed (vCPU ${e.vcpu}: ${e.detail})`);
      this.sendVirqDomExc();
    } else this.shutdown(d, e.type === 'reboot' ? 'reboot' : 'poweroff');
  }

  /** First unpause starts the kernel (or a KVM domain's vCPUs); later ones thaw the freezer. */
  async unpause(d: Domain): Promise<void> {
    if (d.domid === 0) throw fault('EINVAL', 'dom0 cannot be paused or unpaused');
    if (d.isShutdown || d.dying) throw fault('EINVAL', `domain ${d.domid} is shut down`);
    if (d.kvm) {
      if (!d.started) {
        d.started = true;
        d.startTimeMs = Date.now();
        this.log.write(`d${d.domid}: vCPUs started on KVM (${d.maxVcpus})`);
      }
      await d.kvm.unpause((tid) => {
        try {
          d.cgroup?.addThread(tid);
        } catch (e) {
          this.log.write(`d${d.domid}: vCPU thread ${tid} stays outside the domain's cgroups: ${(e as Error).message}`);
        }
      });
    } else if (!d.started) {
      if (d.kind === 'hvm' && !existsSync(join(bootDir(), 'hvm-kernel.mjs'))) {
        throw fault('ENOSYS', 'no HVM guest kernel is built (dist/boot/hvm-kernel.mjs): run "npm run build"');
      }
      const [ours, theirs] = native().seqpacketPair();
      try {
        d.process = launchDomainKernel({
          domid: d.domid,
          hostname: d.label,
          hypercallFd: theirs,
          startInfoPfn: d.startInfoPfn,
          kind: d.kind,
          cgroup: d.cgroup!,
          uidBase: d.uidRange!.base,
        });
      } finally {
        native().close(theirs);
      }
      d.channel = new MessageSocket(ours, (m) => this.onMessage(d, m), () => {});
      d.process.on('exit', (code, signal) => this.onKernelExit(d, code, signal));
      d.started = true;
      d.startTimeMs = Date.now();
      this.log.write(`d${d.domid}: kernel started (pid ${d.process.pid})`);
    } else {
      d.cgroup!.thaw();
    }
    d.paused = false;
  }

  async pause(d: Domain): Promise<void> {
    if (d.domid === 0) throw fault('EINVAL', 'dom0 cannot be paused or unpaused');
    if (!d.started) return;
    if (d.kvm) await d.kvm.pause();
    else d.cgroup!.freeze();
    d.paused = true;
  }

  /** The kernel process ended. Without a SCHEDOP_shutdown first, that is a crash. */
  private onKernelExit(d: Domain, code: number | null, signal: NodeJS.Signals | null): void {
    d.channel?.close();
    d.channel = null;
    if (d.dying) return;
    if (d.shutdownReason === null) {
      d.shutdownReason = 'crash';
      d.crashed = true;
      this.log.write(`d${d.domid}: crashed (kernel ${signal ? `killed by ${signal}` : `exited with ${code}`})`);
    } else {
      this.log.write(`d${d.domid}: shut down (${d.shutdownReason})`);
    }
    // Whatever the guest left behind in its sandbox stops with its kernel.
    d.cgroup?.killAll();
    if (d.timer) clearTimeout(d.timer);
    this.sendVirqDomExc();
  }

  shutdown(d: Domain, reason: ShutdownReason): void {
    if (d.shutdownReason !== null) return;
    d.shutdownReason = reason;
    d.crashed = reason === 'crash';
    this.log.write(`d${d.domid}: requested shutdown (${reason})`);
    this.sendVirqDomExc();
  }

  async destroy(d: Domain): Promise<void> {
    if (d.domid === 0) throw fault('EINVAL', 'cannot destroy dom0');
    if (d.dying) return;
    d.dying = true;
    this.log.write(`d${d.domid}: destroying`);
    await this.release(d);
    this.domains.delete(d.domid);
    this.log.forget(d.domid);
    this.sendVirqDomExc();
    collectSoon();
  }

  /** Give back everything a domain holds: processes, ports (peers see them unbound), memory. */
  private async release(d: Domain): Promise<void> {
    if (d.timer) clearTimeout(d.timer);
    if (d.kvm) {
      await d.kvm.destroy().catch((e) => this.log.write(`d${d.domid}: destroying its VM: ${(e as Error).message}`));
      d.kvm = null;
    }
    if (d.process && d.process.exitCode === null && d.process.signalCode === null) {
      const exited = new Promise<boolean>((r) => d.process!.once('exit', () => r(true)));
      const timeout = (ms: number) => new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref());
      // Kill the sandbox but not the jailer: it reaps the kernel and exits, so no guest
      // process is left a zombie for the host's init to collect after destroy returns.
      d.cgroup?.killAll(d.process.pid);
      if (!(await Promise.race([exited, timeout(1000)]))) {
        // Still there: a process of the domain waiting on a FUSE request that a killed one
        // should have answered (fuse-connections.ts). Abort the domain's connections.
        const aborted = d.uidRange ? abortDomainFuse(d.uidRange.base, UID_RANGE) : 0;
        if (aborted) this.log.write(`d${d.domid}: aborted ${aborted} FUSE connection(s) its processes were stuck on`);
        d.process.kill('SIGKILL');
        await Promise.race([exited, timeout(2000)]);
      }
    }
    d.channel?.close();
    d.channel = null;
    // dom0's deposits for it: the stub domain's channel closing ends the stub domain.
    d.fdStore.closeAll();
    for (const p of d.evtchn.all()) this.closePort(d, p.port);
    if (d.memFd >= 0) native().close(d.memFd);
    if (d.grantFd >= 0) native().close(d.grantFd);
    if (d.ioreqFd >= 0) native().close(d.ioreqFd);
    d.memFd = d.grantFd = d.ioreqFd = -1;
    try {
      await d.cgroup?.destroy();
    } catch (e) {
      this.log.write(`d${d.domid}: ${(e as Error).message}`);
    }
    try {
      rmSync(dirname(domainRootDir(d.domid)), { recursive: true, force: true });
    } catch {
      /* the mount point may still be busy for a moment; it is empty on the host side */
    }
    d.uidRange?.release();
    d.uidRange = null;
    if ([...this.domains.values()].every((x) => x.domid === 0 || x === d)) removeParentGroups(cgroupName());
  }

  /** Stop everything (the hypervisor is going down). */
  async destroyAll(): Promise<void> {
    for (const d of [...this.domains.values()]) if (d.domid !== 0) await this.destroy(d);
  }

  // ---------------------------------------------------------------- event channels

  private closePort(d: Domain, port: number): void {
    const p = d.evtchn.get(port);
    if (!p) return;
    if (p.state === 'interdomain') {
      const remote = this.domains.get(p.remoteDom);
      const rp = remote?.evtchn.get(p.remotePort);
      if (remote && rp && rp.state === 'interdomain' && rp.remoteDom === d.domid && rp.remotePort === port) {
        // Xen: closing one end returns the other to unbound, waiting for the same peer.
        rp.state = 'unbound';
        rp.remotePort = 0;
        try {
          remote.channel?.send({ upcall: 'evtchn.unbound', args: { port: rp.port } });
        } catch {
          /* peer gone */
        }
      }
    }
    d.evtchn.remove(port);
  }

  // ---------------------------------------------------------------- the hypercall table

  /** The hypercall table (hypercalls/, one file per family), given what its handlers may reach. */
  private buildHandlers(): HypercallTable {
    const hv: HypercallContext = {
      log: this.log,
      domains: this.domains,
      cpuList: this.cpuList,
      logFor: (d, msg) => this.logFor(d, msg),
      domain: (domid) => this.domain(domid),
      target: (caller, dom) => this.target(caller, dom),
      int: (v, name, min, max) => this.int(v, name, min, max),
      info: (d) => this.info(d),
      hostInfo: () => this.hostInfo(),
      createDomain: (args) => this.createDomain(args),
      pause: (d) => this.pause(d),
      unpause: (d) => this.unpause(d),
      destroy: (d) => this.destroy(d),
      shutdown: (d, reason) => this.shutdown(d, reason),
      applyCpuset: (d) => this.applyCpuset(d),
      closePort: (d, port) => this.closePort(d, port),
      ramCharged: (d, atMost) => this.ramCharged(d, atMost),
    };
    return hypercallTable(hv);
  }

  hostInfo(): HostInfo {
    return {
      hostname: hostname(),
      release: release(),
      version: version(),
      machine: machine(),
      nrCpus: this.cpuList.length || osCpus().length,
      totalMemoryMiB: Math.round(totalmem() / 1048576),
      freeMemoryMiB: Math.round(freemem() / 1048576),
      xenMajor: 4,
      xenMinor: 17,
      xenExtra: '-xenode',
      xenCaps: 'xen-3.0-x86_64 hvm-3.0-x86_64',
      scheduler: 'credit',
      commandLine: process.argv.slice(2).join(' '),
      uptimeSec: uptime(),
    };
  }
}

function union(sets: number[][]): number[] {
  return [...new Set(sets.flat())].sort((a, b) => a - b);
}
