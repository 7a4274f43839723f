// xenconsoled: the backend of every guest's console ring. For each guest it owns a pty (its
// name goes to console/tty, where `xl console` finds it), appends all output to
// guest-<name>.log, and rate-limits a guest that floods its console (Xen's default: 30
// events per 200 ms, then the port is masked until the window passes).
//
// It also holds every HVM guest's serial line (`serial = 'pty'`): a pty whose master the
// device model's 16550 drives in the stub domain (as qemu-dm's pty chardev does in Xen) and
// whose slave `xl console` opens. So one place answers "which tty is console N of type T of
// domain D", for PV and HVM guests alike.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { native, type FdWatcher, type PtyPair } from '../../native/index.js';
import { ConsoleBackendEnd } from '../../drivers/wire/console-ring.js';
import type { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { logDir } from '../../common/paths.js';
import type { Logger } from '../../common/log.js';
import { CappedLogFile } from '../../common/capped-log-file.js';

const RATE_EVENTS = 30;
const RATE_WINDOW_MS = 200;

interface ConsoleXs {
  write(path: string, value: string): Promise<void>;
}

class GuestConsole {
  private readonly ring: ConsoleBackendEnd;
  private readonly buf = new Uint8Array(2048);
  private readonly inBuf = new Uint8Array(1024);
  private readonly ptyWatcher: FdWatcher;
  /** Capped at 1 MiB, then rotated to .1: a flooding guest cannot fill the host's disk. */
  private readonly logFile: CappedLogFile;
  private events = 0;
  private windowStart = Date.now();
  private masked = false;
  private unmaskTimer: NodeJS.Timeout | null = null;
  /** Input typed before the guest made room in its `in` ring. */
  private pendingInput: Uint8Array | null = null;

  constructor(
    readonly domid: number,
    page: Uint8Array,
    private readonly port: number,
    readonly pty: PtyPair,
    logPath: string,
    private readonly evtchn: EventChannels,
  ) {
    this.ring = new ConsoleBackendEnd(page.buffer as SharedArrayBuffer, page.byteOffset);
    this.ring.connect();
    this.logFile = new CappedLogFile(logPath);
    this.ptyWatcher = native().watchFd(pty.master, () => this.onPtyInput());
    this.ptyWatcher.start(native().READABLE);
    evtchn.on(port, () => this.onEvent());
    // Output the guest wrote while no console daemon ran (dom0 restarting) is read now.
    queueMicrotask(() => this.drain());
  }

  private onEvent(): void {
    const now = Date.now();
    if (now - this.windowStart > RATE_WINDOW_MS) {
      this.windowStart = now;
      this.events = 0;
    }
    if (++this.events > RATE_EVENTS && !this.masked) {
      // Flooding: stop listening for the rest of the window; the ring simply fills meanwhile.
      this.masked = true;
      this.evtchn.mask(this.port);
      this.unmaskTimer = setTimeout(() => {
        this.masked = false;
        this.events = 0;
        this.windowStart = Date.now();
        this.evtchn.unmask(this.port);
        this.drain();
      }, RATE_WINDOW_MS);
    }
    this.drain();
  }

  private drain(): void {
    let moved = false;
    for (let i = 0; i < 8; i++) {
      const n = this.ring.readOutput(this.buf);
      if (n <= 0) break;
      moved = true;
      const bytes = this.buf.subarray(0, n);
      this.logFile.write(bytes);
      try {
        // Nobody attached and the pty is full: drop, as xenconsoled does, rather than stall.
        native().write(this.pty.master, bytes, 0, n);
      } catch {
        /* pty closed */
      }
    }
    if (this.pendingInput) this.pushInput(this.pendingInput);
    if (moved) this.evtchn.notify(this.port);
  }

  private onPtyInput(): void {
    if (this.pendingInput) return; // wait for the guest to consume what we have
    let n: number | null;
    try {
      n = native().read(this.pty.master, this.inBuf, 0, this.inBuf.length);
    } catch {
      return;
    }
    if (n === null || n <= 0) return;
    this.pushInput(this.inBuf.slice(0, n));
  }

  private pushInput(bytes: Uint8Array): void {
    const n = this.ring.writeInput(bytes);
    this.pendingInput = n >= 0 && n < bytes.length ? bytes.subarray(n) : null;
    if (this.pendingInput) this.ptyWatcher.stop();
    else this.ptyWatcher.start(native().READABLE);
    if (n > 0) this.evtchn.notify(this.port);
  }

  close(): void {
    if (this.unmaskTimer) clearTimeout(this.unmaskTimer);
    this.ptyWatcher.close();
    native().close(this.pty.master);
    native().close(this.pty.slave);
    this.logFile.close();
  }
}

/** `xl console -t`: the guest's PV console ring, or its (emulated) serial line. */
export type ConsoleType = 'pv' | 'serial';

export class ConsoleDaemon {
  private readonly consoles = new Map<number, GuestConsole>();
  private readonly serials = new Map<number, PtyPair>();

  constructor(
    private readonly evtchn: EventChannels,
    private readonly xs: ConsoleXs,
    private readonly log: Logger,
  ) {}

  static logPath(name: string): string {
    return join(logDir(), 'console', `guest-${name}.log`);
  }

  /** Start serving a guest's console; returns the pty path written to console/tty. */
  async attach(c: { domid: number; name: string; page: Uint8Array; port: number }): Promise<string> {
    mkdirSync(join(logDir(), 'console'), { recursive: true });
    // The slave stays open here too (raw), so the guest's output never hits a hung-up pty.
    const pty = native().openpty(true);
    const gc = new GuestConsole(c.domid, c.page, c.port, pty, ConsoleDaemon.logPath(c.name), this.evtchn);
    this.consoles.set(c.domid, gc);
    await this.xs.write(`/local/domain/${c.domid}/console/tty`, pty.path);
    this.log.info(`console for domain ${c.domid} on ${pty.path}`);
    return pty.path;
  }

  /** An HVM guest's serial line: a new pty, named in serial/0/tty (Xen's key) and in
   * console/tty (the guest has no PV console ring of its own). The caller hands the master to
   * the device model; both ends stay open here until the domain goes, so the UART never writes
   * into a hung-up pty between two `xl console` sessions. */
  async openSerial(domid: number): Promise<PtyPair> {
    if (this.serials.has(domid)) throw new Error(`domain ${domid} already has a serial line`);
    const pty = native().openpty(true);
    this.serials.set(domid, pty);
    await this.xs.write(`/local/domain/${domid}/serial/0/tty`, pty.path);
    await this.xs.write(`/local/domain/${domid}/console/tty`, pty.path);
    this.log.info(`serial line of domain ${domid} on ${pty.path}`);
    return pty;
  }

  /** The serial line a dead dom0 opened for a guest (its master and slave it left with the
   * hypervisor, the device model writing on): served again, named again in console/tty. */
  async adoptSerial(domid: number, pty: PtyPair): Promise<void> {
    if (this.serials.has(domid)) throw new Error(`domain ${domid} already has a serial line`);
    this.serials.set(domid, pty);
    await this.xs.write(`/local/domain/${domid}/serial/0/tty`, pty.path);
    await this.xs.write(`/local/domain/${domid}/console/tty`, pty.path);
    this.log.info(`serial line of domain ${domid} on ${pty.path} (kept across the dom0 restart)`);
  }

  /** The tty of a domain's console of that type (num 0 is the only one of each), if it has one. */
  tty(domid: number, type: ConsoleType = 'pv'): string | undefined {
    return type === 'serial' ? this.serials.get(domid)?.path : this.consoles.get(domid)?.pty.path;
  }

  /** Which console types the domain has, primary first (xl's default is the first). */
  types(domid: number): ConsoleType[] {
    const t: ConsoleType[] = [];
    if (this.serials.has(domid)) t.push('serial');
    if (this.consoles.has(domid)) t.push('pv');
    return t;
  }

  detach(domid: number): void {
    this.consoles.get(domid)?.close();
    this.consoles.delete(domid);
    const serial = this.serials.get(domid);
    if (serial) {
      native().close(serial.master);
      native().close(serial.slave);
      this.serials.delete(domid);
    }
  }
}
