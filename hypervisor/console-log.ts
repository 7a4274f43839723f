// The hypervisor's own message buffer, what `xl dmesg` reads (Xen's console ring). Lines a
// guest causes (its console.write hypercalls, its debug port, failures of its hypercalls) are
// rate-limited per domain, as Xen limits guest console output, and kept in a ring of their
// own: however much a guest writes, the hypervisor's own lines (the boot lines among them)
// stay in `xl dmesg`.
import { LogRateLimits } from '../common/log-ratelimit.js';

const OWN_BYTES = 64 * 1024;
const GUEST_BYTES = 16 * 1024;

/** Lines in arrival order, oldest dropped beyond `maxBytes`. */
class LineRing {
  readonly lines: { seq: number; text: string }[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(seq: number, text: string): void {
    this.lines.push({ seq, text });
    this.bytes += text.length + 1;
    while (this.bytes > this.maxBytes && this.lines.length > 1) this.bytes -= this.lines.shift()!.text.length + 1;
  }

  clear(): void {
    this.lines.length = 0;
    this.bytes = 0;
  }
}

export class ConsoleLog {
  private seq = 0;
  private readonly own = new LineRing(OWN_BYTES);
  private readonly guests = new LineRing(GUEST_BYTES);
  private readonly limits = new LogRateLimits<number>();

  /** A line of the hypervisor's own. */
  write(msg: string): void {
    this.emit(this.own, `(XEN) ${msg}`);
  }

  /** A line domain `domid` caused: at most 10 per 5 s per domain reach the log. */
  guest(domid: number, msg: string): void {
    this.limits.for(domid).log((l) => this.emit(this.guests, `(XEN) d${domid}: ${l}`), msg, `d${domid} lines`);
  }

  /** The domain is gone: its rate-limit state goes too. */
  forget(domid: number): void {
    this.limits.forget(domid);
  }

  read(clear: boolean): string {
    const all = [...this.own.lines, ...this.guests.lines].sort((a, b) => a.seq - b.seq);
    if (clear) {
      this.own.clear();
      this.guests.clear();
    }
    return all.map((l) => `${l.text}\n`).join('');
  }

  private emit(ring: LineRing, line: string): void {
    ring.push(this.seq++, line);
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  }
}
