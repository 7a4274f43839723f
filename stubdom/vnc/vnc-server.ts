// The VNC server of one HVM guest's display, as qemu-dm has one per guest: it listens on
// `vnclisten` at port 5900 + display (with `vncunused`, the first free display from the asked
// one, trying 100 as libxl's `to=99` does), serves any number of viewers at once (all share the
// display), and hands their keys and pointer to the guest's i8042.
//
// It runs in the stub domain's main thread, beside the guest's device-model thread, and reads
// the display adapter's memory from shared memory: the device model's loop blocks in the ioreq
// wait, so it cannot also run sockets, and a viewer must never slow the guest's exits down.
// It sleeps on the adapter's generation word (Atomics.waitAsync: the device model notifies it
// on every visible change) and sends at most every UPDATE_MS, so an unchanged screen costs no
// CPU however many viewers wait.
//
// Bad viewers are cut off alone: a handshake not finished in HANDSHAKE_MS, more than
// MAX_VIEWERS connections, more than MAX_HANDSHAKES at once still handshaking, a wrong password
// (answered after FAILURE_DELAY_MS times the address's recent failures, at most 5 s).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RfbSession, type ViewerInput } from './rfb-session.js';
import type { DisplaySurface } from '../display/display-surface.js';

export const VNC_BASE_PORT = 5900;
const FIND_UNUSED_TRIES = 100;
const UPDATE_MS = 30;
const IDLE_RECHECK_MS = 5000;
const HANDSHAKE_MS = 10_000;
const MAX_VIEWERS = 32;
const MAX_HANDSHAKES = 16;
const FAILURE_DELAY_MS = 250;
const FAILURE_DELAY_MAX_MS = 5000;
const FAILURE_MEMORY_MS = 60_000;

export interface VncOptions {
  listen: string;
  display: number;
  findUnused: boolean;
  password: string | null;
  name: string;
}

/** Binds a display's listening socket: port 5900 + display, or with findUnused the first free
 * display of the next 100 (libxl's `to=99`). */
export async function bindVncDisplay(opts: Pick<VncOptions, 'listen' | 'display' | 'findUnused'>): Promise<{ server: Server; port: number }> {
  const tries = opts.findUnused ? FIND_UNUSED_TRIES : 1;
  for (let d = opts.display; d < opts.display + tries && VNC_BASE_PORT + d <= 65535; d++) {
    const server = createServer({ noDelay: true });
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      server.once('error', resolve);
      server.listen({ host: opts.listen, port: VNC_BASE_PORT + d, exclusive: true }, () => resolve(null));
    });
    if (!err) {
      server.removeAllListeners('error');
      return { server, port: VNC_BASE_PORT + d };
    }
    server.close();
    if (err.code !== 'EADDRINUSE' || !opts.findUnused) {
      throw new Error(`cannot listen on ${opts.listen}:${VNC_BASE_PORT + d} (display :${d}): ${err.code ?? err.message}`);
    }
  }
  throw new Error(`no free VNC display on ${opts.listen} from :${opts.display} to :${opts.display + tries - 1}`);
}

export class VncServer {
  private readonly sessions = new Set<RfbSession>();
  private readonly failures = new Map<string, { count: number; last: number }>();
  private waiting = false;
  private closed = false;
  private lastTick = 0;
  private handshaking = 0;
  private refused = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly listen: string,
    private readonly opts: VncOptions,
    private readonly surface: DisplaySurface,
    private readonly input: ViewerInput,
    private readonly log: (msg: string) => void,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  static async open(opts: VncOptions, surface: DisplaySurface, input: ViewerInput, log: (msg: string) => void): Promise<VncServer> {
    const { server, port } = await bindVncDisplay(opts);
    server.on('error', (e) => log(`vnc: ${e.message}`));
    return new VncServer(server, port, opts.listen, opts, surface, input, log);
  }

  /** Serves on a listening socket bound by someone else: dom0 binds it for a confined stub
   * domain, whose own network namespace has no interface to listen on. */
  static async adopt(fd: number, opts: VncOptions, surface: DisplaySurface, input: ViewerInput, log: (msg: string) => void): Promise<VncServer> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => resolve());
    });
    server.removeAllListeners('error');
    server.on('error', (e) => log(`vnc: ${e.message}`));
    return new VncServer(server, (server.address() as AddressInfo).port, opts.listen, opts, surface, input, log);
  }

  get display(): number {
    return this.port - VNC_BASE_PORT;
  }

  get viewers(): number {
    return [...this.sessions].filter((s) => s.active).length;
  }

  private accept(sock: Socket): void {
    if (this.sessions.size >= MAX_VIEWERS || this.handshaking >= MAX_HANDSHAKES) {
      if (this.refused++ % 50 === 0) this.log(`vnc :${this.display}: refusing ${sock.remoteAddress}: ${this.sessions.size} viewers, ${this.handshaking} handshaking`);
      sock.destroy();
      return;
    }
    const addr = sock.remoteAddress ?? '?';
    this.handshaking++;
    let handshakeDone = false;
    const endHandshake = () => {
      if (!handshakeDone) {
        handshakeDone = true;
        this.handshaking--;
      }
    };
    const timer = setTimeout(() => session.close(`closing viewer ${addr}: no complete handshake in ${HANDSHAKE_MS} ms`), HANDSHAKE_MS);
    const session: RfbSession = new RfbSession(sock, {
      name: this.opts.name,
      password: this.opts.password,
      surface: this.surface,
      input: this.input,
      failureDelay: () => {
        const now = Date.now();
        const f = this.failures.get(addr);
        const count = f && now - f.last < FAILURE_MEMORY_MS ? f.count + 1 : 1;
        this.failures.set(addr, { count, last: now });
        if (this.failures.size > 1024) this.failures.delete(this.failures.keys().next().value!);
        return Math.min(FAILURE_DELAY_MAX_MS, FAILURE_DELAY_MS * count);
      },
      authOk: () => this.failures.delete(addr),
      log: (m) => this.log(`vnc :${this.display}: ${m}`),
      onClose: () => {
        clearTimeout(timer);
        endHandshake();
        this.sessions.delete(session);
      },
    });
    sock.setTimeout(0);
    this.sessions.add(session);
    void session.ready.then(() => {
      clearTimeout(timer);
      endHandshake();
      this.kick();
    });
    this.kick();
  }

  /** While viewers are connected: sleep until the adapter changes (Atomics.waitAsync on its
   * generation word), then render and send, at most every UPDATE_MS. An unchanged screen costs
   * nothing but one wake-up every IDLE_RECHECK_MS. */
  private kick(): void {
    if (this.waiting || this.closed) return;
    this.waiting = true;
    const run = () => {
      this.waiting = false;
      if (this.closed || this.sessions.size === 0) return;
      this.lastTick = Date.now();
      this.surface.refresh();
      for (const s of this.sessions) s.pump();
      this.kick();
    };
    void this.surface.changed(IDLE_RECHECK_MS).then(() => {
      const wait = this.lastTick + UPDATE_MS - Date.now();
      if (wait > 0) setTimeout(run, wait);
      else run();
    });
  }

  /** Per-viewer counters (bytes sent, updates, rectangles). */
  stats(): RfbSession['stats'][] {
    return [...this.sessions].map((s) => s.stats);
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions) s.close();
    this.server.close();
  }
}
