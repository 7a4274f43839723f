// The toolstack's answers to `xl` (one handler per xl command that needs dom0). Arguments
// come from an untrusted local client and are validated here; formatting is xl's job.
import type { BuildSpec } from './build-spec.js';
import type { Toolstack } from './toolstack.js';
import type { ConsoleDaemon, ConsoleType } from '../console/console-daemon.js';
import { ToolstackError } from './rpc.js';
import type { HvmBuilder, HvmTrigger } from './hvm-builder.js';
import { echoPingPong, PINGPONG_MAX_ITERATIONS } from '../backends/evtchn-echo.js';
import { ownEntry } from '../../common/own-entry.js';
import { migrateReceive, migrateSend, restoreFromFile, saveToFile } from './save/domain-transfer.js';
import { checkSaveable } from './save/image-writer.js';

interface ServiceDeps {
  toolstack: Toolstack;
  consoles: ConsoleDaemon;
  hc: { invoke<T = unknown>(op: string, args?: object): Promise<T> };
  xs: { write(path: string, value: string): Promise<void>; read(path: string): Promise<string> };
  stop: () => void;
  /** Per-device backend counters (netback, blkback). */
  deviceStats?: () => Promise<Record<string, Record<string, number>>>;
  /** An HVM guest's device-model counters from the stub domain, and the stub domain's pid. */
  dmMetrics?: (domid: number) => Promise<{ pid: number | null; metrics: unknown }>;
  /** An HVM guest's buttons and CD-ROM media (dom0/toolstack/hvm-builder.ts). */
  hvm?: Pick<HvmBuilder, 'trigger' | 'changeMedia'>;
  /** Fault injection (tests): end an HVM guest's device model as a crash would, or make it try
   * what a subverted one would (stubdom/protocol.ts DmFault); answers what the attempts got. */
  dmFault?: (domid: number, fault: unknown) => Promise<unknown>;
}

function int(v: unknown, what: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ToolstackError('EINVAL', `${what} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function validateSpec(v: unknown): BuildSpec {
  const s = v as BuildSpec;
  if (!s || typeof s !== 'object') throw new ToolstackError('EINVAL', 'create needs a parsed domain config');
  if (typeof s.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(s.name)) {
    throw new ToolstackError('EINVAL', `domain name ${JSON.stringify(s.name)} is not valid (letters, digits, . _ + -; at most 64)`);
  }
  int(s.memoryMiB, 'memory', 16, 1 << 20);
  int(s.vcpus, 'vcpus', 1, 128);
  if (typeof s.cmdline !== 'string' || s.cmdline.length > 1023) throw new ToolstackError('EINVAL', 'cmdline must be a string of at most 1023 bytes');
  return s;
}

export function xlService(d: ServiceDeps) {
  const ts = d.toolstack;
  const handlers: Record<string, (a: Record<string, any>) => Promise<unknown>> = {
    ping: async () => ({ pid: process.pid }),
    create: async (a) => ({ domid: await ts.create(validateSpec(a.spec), { paused: a.paused === true, monitor: a.monitor !== false }) }),
    'config-update': async (a) => (ts.configUpdate(ts.resolve(a.dom), validateSpec(a.spec)), null),
    'dump-core': async (a) => {
      if (typeof a.path !== 'string' || !a.path.startsWith('/')) throw new ToolstackError('EINVAL', 'dump-core needs an absolute path');
      ts.coreDumpTo(ts.resolve(a.dom), a.path);
      return null;
    },
    rename: async (a) => (await ts.rename(ts.resolve(a.dom), String(a.name ?? '')), null),
    sysrq: async (a) => {
      if (typeof a.key !== 'string' || a.key.length !== 1) throw new ToolstackError('EINVAL', 'a sysrq is one character');
      await ts.sendSysrq(ts.resolve(a.dom), a.key);
      return null;
    },
    // xl trigger / button-press: refused for a PV guest as Xen's domctl refuses it (EINVAL).
    trigger: async (a) => {
      const domid = ts.resolve(a.dom);
      const name = String(a.trigger) as HvmTrigger;
      if (!['power', 'sleep', 'nmi', 'init', 'reset', 's3resume'].includes(name)) throw new ToolstackError('EINVAL', `Invalid trigger "${name.slice(0, 32)}"`);
      // Xen's domctl: a vCPU the domain does not have is ESRCH.
      const vcpus = (await ts.domainInfos()).find((i) => i.domid === domid)?.vcpus ?? 1;
      const vcpu = a.vcpu ?? 0;
      if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= vcpus) throw new ToolstackError('ESRCH', `Send trigger '${name}' failed: No such process`);
      if (!d.hvm) throw new ToolstackError('ENOSYS', 'no stub domain');
      await d.hvm.trigger(domid, name, vcpu);
      return null;
    },
    // xl cd-insert / cd-eject (path null: eject).
    'cd-media': async (a) => {
      const domid = ts.resolve(a.dom);
      if (typeof a.vdev !== 'string' || a.vdev.length > 32) throw new ToolstackError('EINVAL', 'cd-insert needs a virtual device');
      if (a.path !== null && (typeof a.path !== 'string' || !a.path.startsWith('/'))) throw new ToolstackError('EINVAL', 'cd-insert needs an absolute path');
      if (!d.hvm) throw new ToolstackError('ENOSYS', 'no stub domain');
      await d.hvm.changeMedia(domid, a.vdev, a.path);
      return null;
    },
    list: async () => ts.domainInfos(),
    'list-long': async () => ts.specs().map(({ domid, spec }) => ({ domid, config: spec.libxlJson ?? spec.config })),
    destroy: async (a) => {
      const domid = ts.resolve(a.dom);
      if (domid === 0) throw new ToolstackError('EINVAL', 'cannot destroy Domain-0');
      await ts.destroy(domid);
      return null;
    },
    shutdown: async (a) => {
      const domid = ts.resolve(a.dom);
      const reason = a.reboot ? 'reboot' : 'poweroff';
      await ts.requestShutdown(domid, reason);
      if (a.wait) {
        const ok = await ts.waitForShutdown(domid, int(a.timeoutMs ?? 60000, 'timeout', 0, 3_600_000));
        if (!ok) throw new ToolstackError('ETIMEDOUT', `domain ${domid} did not shut down in time`);
      }
      return null;
    },
    pause: async (a) => (await d.hc.invoke('domctl.pausedomain', { domid: ts.resolve(a.dom) }), null),
    unpause: async (a) => (await d.hc.invoke('domctl.unpausedomain', { domid: ts.resolve(a.dom) }), null),
    info: async () => ts.hostInfo(),
    dmesg: async (a) => d.hc.invoke('sysctl.readconsole', { clear: a.clear === true }),
    domid: async (a) => ({ domid: ts.resolve(a.name) }),
    domname: async (a) => {
      const domid = int(a.domid, 'domid', 0, 0x7fef);
      ts.resolve(String(domid));
      return { name: ts.nameOf(domid) };
    },
    'mem-set': async (a) => (await ts.setMemoryTarget(ts.resolve(a.dom), int(a.kib, 'memory (KiB)', 16 * 1024, 1 << 30)), null),
    'mem-max': async (a) => (await ts.setMaxMemory(ts.resolve(a.dom), int(a.kib, 'memory (KiB)', 16 * 1024, 1 << 30)), null),
    'vcpu-set': async (a) => (await ts.setOnlineVcpus(ts.resolve(a.dom), int(a.count, 'vcpus', 1, 128)), null),
    'vcpu-pin': async (a) => {
      const domid = ts.resolve(a.dom);
      const info = (await ts.domainInfos()).find((i) => i.domid === domid)!;
      const vcpus = a.vcpu === 'all' ? [...Array(info.vcpus).keys()] : [int(a.vcpu, 'vcpu', 0, info.vcpus - 1)];
      for (const vcpu of vcpus) await d.hc.invoke('domctl.setvcpuaffinity', { domid, vcpu, cpus: a.cpus });
      return null;
    },
    'sched-credit': async (a) => {
      const domid = ts.resolve(a.dom);
      return d.hc.invoke('domctl.scheduler_op', {
        domid,
        weight: a.weight === undefined ? undefined : int(a.weight, 'weight', 1, 65535),
        cap: a.cap === undefined ? undefined : int(a.cap, 'cap', 0, 12800),
      });
    },
    'cgroup-info': async (a) => d.hc.invoke('domctl.cgroup_info', { domid: ts.resolve(a.dom) }),
    // xl console [-t pv|serial] [-n num]: without -t, the guest's primary console (an HVM
    // guest's serial line, a PV guest's console ring), as libxl_primary_console_get_tty.
    console: async (a) => {
      const domid = ts.resolve(a.dom);
      const name = ts.nameOf(domid);
      if (a.type !== undefined && a.type !== 'pv' && a.type !== 'serial') {
        throw new ToolstackError('EINVAL', `console type must be "pv" or "serial", got ${JSON.stringify(a.type)}`);
      }
      const num = a.num === undefined ? 0 : int(a.num, 'console number', 0, 0x7fff);
      // An HVM guest's primary console is its serial line (libxl_primary_console_get_tty), even
      // when it has none; its PV console is there only while its PV drivers run (hvc_xen), which
      // announce themselves in control/feature-poweroff: without them nobody reads the ring.
      const hvm = ts.specs().find((r) => r.domid === domid)?.spec.type === 'hvm';
      const type = (a.type as ConsoleType | undefined) ?? (hvm ? 'serial' : d.consoles.types(domid)[0]);
      if (type === 'pv' && hvm) {
        if ((await d.xs.read(`/local/domain/${domid}/control/feature-poweroff`).catch(() => '')) !== '1') {
          throw new ToolstackError('ENODEV', `domain ${domid} (${name}) has no PV drivers running: nothing is on its PV console (its console is the serial line: xl console -t serial)`);
        }
      }
      const tty = type !== undefined && num === 0 ? d.consoles.tty(domid, type) : undefined;
      if (!tty) {
        const what = a.type === undefined ? 'console' : `${type} console${num ? ` ${num}` : ''}`;
        throw new ToolstackError('ENODEV', `domain ${domid} (${name}) has no ${what}`);
      }
      return { domid, tty, type };
    },
    'console-resize': async (a) => {
      const domid = ts.resolve(a.dom);
      await d.xs.write(`/local/domain/${domid}/console/rows`, String(int(a.rows, 'rows', 1, 9999)));
      await d.xs.write(`/local/domain/${domid}/console/cols`, String(int(a.cols, 'cols', 1, 9999)));
      return null;
    },
    'device-attach': async (a) => {
      const domid = ts.resolve(a.dom);
      const d = a.device as { type?: unknown; devid?: unknown; backend?: unknown; frontend?: unknown };
      if (!d || typeof d.type !== 'string' || !/^[a-z0-9]{1,16}$/.test(d.type)) throw new ToolstackError('EINVAL', 'device needs a type');
      const devid = int(d.devid, 'devid', 0, 0x7fffffff);
      const strMap = (m: unknown, what: string): Record<string, string> => {
        if (!m || typeof m !== 'object') throw new ToolstackError('EINVAL', `device needs ${what} keys`);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(m)) {
          if (!/^[A-Za-z0-9_.-]{1,64}$/.test(k) || typeof v !== 'string') throw new ToolstackError('EINVAL', `bad ${what} key ${JSON.stringify(k)}`);
          out[k] = v;
        }
        return out;
      };
      await ts.attachDevice(domid, { type: d.type, devid, backend: strMap(d.backend, 'backend'), frontend: strMap(d.frontend, 'frontend') });
      return { domid, devid };
    },
    'device-detach': async (a) => {
      const domid = ts.resolve(a.dom);
      if (typeof a.type !== 'string') throw new ToolstackError('EINVAL', 'device-detach needs a type');
      await ts.detachDevice(domid, a.type, int(a.devid, 'devid', 0, 0x7fffffff), a.force === true);
      return null;
    },
    'device-list': async (a) => {
      const domid = ts.resolve(a.dom);
      return { domid, devices: await ts.devicesOf(domid) };
    },
    'device-stats': async () => (d.deviceStats ? d.deviceStats() : {}),
    // Device-model counters of an HVM guest (ioreq exits per device, interrupts, NIC frames,
    // IDE commands), as the stub domain last reported them (every ~0.5 s), and its pid.
    'dm-metrics': async (a) => {
      const domid = ts.resolve(a.dom);
      // An HVM guest on KVM also has the engine's exit counters (docs/kvm.md): what left the
      // guest, what the engine answered itself, what became an ioreq.
      const kvm = await d.hc.invoke<unknown>('domctl.kvm_exit_stats', { domid }).catch(() => null);
      const dm = d.dmMetrics ? await d.dmMetrics(domid) : { pid: null, metrics: null };
      return { domid, ...dm, kvm };
    },
    'dm-fault': async (a) => {
      const domid = ts.resolve(a.dom);
      if (!d.dmFault) throw new ToolstackError('ENOSYS', 'no stub domain');
      return (await d.dmFault(domid, a.fault ?? null)) ?? null;
    },
    // Diagnostic: event-channel round trips between dom0 and a guest's echo device (bench/).
    'evtchn-pingpong': async (a) =>
      echoPingPong(
        ts.resolve(a.dom),
        int(a.devid ?? 0, 'devid', 0, 0x7fffffff),
        int(a.iterations ?? 1000, 'iterations', 1, PINGPONG_MAX_ITERATIONS),
        int(a.warmup ?? 100, 'warmup', 0, PINGPONG_MAX_ITERATIONS),
        int(a.timeoutMs ?? 30_000, 'timeoutMs', 1, 120_000),
      ),
    // Save, restore, migration of KVM-engine HVM guests (dom0/toolstack/save/).
    'can-save': async (a) => {
      const domid = ts.resolve(a.dom);
      if (domid === 0) throw new ToolstackError('EINVAL', `xenode cannot ${String(a.what)} Domain-0: it is xenode itself`);
      checkSaveable(ts.specOf(domid), a.what === 'migrate' ? 'migrate' : 'save');
      return null;
    },
    save: async (a) => {
      if (typeof a.path !== 'string' || !a.path.startsWith('/')) throw new ToolstackError('EINVAL', 'save needs an absolute path');
      const domid = ts.resolve(a.dom);
      if (domid === 0) throw new ToolstackError('EINVAL', 'Domain-0 cannot be saved: it is xenode itself');
      return saveToFile(ts, domid, a.path, { checkpoint: a.checkpoint === true, leavePaused: a.leavePaused === true, override: a.spec ? validateSpec(a.spec) : null });
    },
    restore: async (a) => {
      if (typeof a.path !== 'string' || !a.path.startsWith('/')) throw new ToolstackError('EINVAL', 'restore needs an absolute path');
      return restoreFromFile(ts, a.path, { paused: a.paused === true, monitor: a.monitor !== false, override: a.spec ? validateSpec(a.spec) : null, validate: validateSpec });
    },
    'migrate-send': async (a) => {
      if (typeof a.relay !== 'string' || !a.relay.startsWith('/')) throw new ToolstackError('EINVAL', 'migrate-send needs the relay socket path');
      const domid = ts.resolve(a.dom);
      if (domid === 0) throw new ToolstackError('EINVAL', 'Domain-0 cannot be migrated: it is xenode itself');
      const lines: string[] = [];
      const stats = await migrateSend(ts, domid, a.relay, { override: a.spec ? validateSpec(a.spec) : null, debug: a.debug === true ? (l) => lines.push(l) : undefined });
      return { ...stats, debug: lines };
    },
    'migrate-receive': async (a) => {
      if (typeof a.relay !== 'string' || !a.relay.startsWith('/')) throw new ToolstackError('EINVAL', 'migrate-receive needs the relay socket path');
      return migrateReceive(ts, a.relay, { monitor: a.monitor !== false, paused: a.paused === true, validate: validateSpec });
    },
    'stop-host': async () => {
      setImmediate(d.stop);
      return null;
    },
  };
  return async (cmd: string, args: Record<string, unknown>) => {
    const h = ownEntry(handlers, cmd);
    if (!h) throw new ToolstackError('ENOSYS', `unknown toolstack command ${JSON.stringify(cmd.slice(0, 64))}`);
    return h(args as Record<string, any>);
  };
}
