// What a hypercall handler is and what it may reach of the hypervisor. The table is split by
// family (one file each in this directory, hypercalls/table.ts joins them); every handler gets
// the calling domain (its channel is its identity), the arguments as sent, and the fds that
// came with them, and answers a result (and fds to send back) or throws a HypercallFault.
import { SHUTDOWN_CODES, type HostInfo, type DomainInfo, type ShutdownReason, type CreateDomainArgs } from '../../drivers/hypercall/ops.js';
import { isOwnKey } from '../../common/own-entry.js';
import type { ConsoleLog } from '../console-log.js';
import type { Domain } from '../domain.js';

export class HypercallFault extends Error {
  constructor(readonly errno: string, message: string) {
    super(message);
  }
}
export const fault = (errno: string, message: string) => new HypercallFault(errno, message);

/** A shutdown reason a peer named: one of SHUTDOWN_CODES' own names, or EINVAL. */
export function shutdownReason(v: unknown): ShutdownReason {
  if (!isOwnKey(SHUTDOWN_CODES, v)) throw fault('EINVAL', `unknown shutdown reason ${JSON.stringify(String(v).slice(0, 64))}`);
  return v;
}

export type Reply = { result: unknown; fds?: number[] };
// `args` is whatever object the peer sent: each handler checks the fields it reads.
export type Handler = (caller: Domain, args: any, fds: number[]) => Reply | Promise<Reply>;
export type HypercallEntry = { privileged: boolean; fn: Handler };
export type HypercallTable = Record<string, HypercallEntry>;

/** Any domain may make it (on itself, or as `target` allows). */
export const guest = (fn: Handler): HypercallEntry => ({ privileged: false, fn });
/** The control domain (dom0) only. */
export const priv = (fn: Handler): HypercallEntry => ({ privileged: true, fn });

/** The parts of the hypervisor the handlers use (hypervisor.ts provides them). */
export interface HypercallContext {
  readonly log: ConsoleLog;
  readonly domains: ReadonlyMap<number, Domain>;
  /** The host CPUs domains may run on. */
  readonly cpuList: readonly number[];
  /** A line about something `d` made happen (a guest's are rate-limited). */
  logFor(d: Domain, msg: string): void;
  /** The domain `domid` names, or ESRCH. */
  domain(domid: unknown): Domain;
  /** A guest may only name itself; dom0 may name anyone. "self" means the caller. */
  target(caller: Domain, dom: unknown): Domain;
  /** `v` as an integer in min..max, or EINVAL naming `name`. */
  int(v: unknown, name: string, min: number, max: number): number;
  info(d: Domain): DomainInfo;
  hostInfo(): HostInfo;
  createDomain(args: CreateDomainArgs): Promise<Domain>;
  pause(d: Domain): Promise<void>;
  unpause(d: Domain): Promise<void>;
  /** Start a PV domain's kernel process, its calls held until the first unpause. */
  loadKernel(d: Domain): void;
  destroy(d: Domain): Promise<void>;
  shutdown(d: Domain, reason: ShutdownReason): void;
  /** Recompute a domain's cpuset and its vCPUs' CPUs after an affinity or vCPU change. */
  applyCpuset(d: Domain): void;
  closePort(d: Domain, port: number): void;
  /** How much of the domain's RAM its memory cgroup pays for, at most `atMost`. */
  ramCharged(d: Domain, atMost: number): number;
}
