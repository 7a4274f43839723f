// The page's WebSockets, after the server has checked the token and the Origin:
//   /ws/live              every sample of the domain list (and the charts' history first)
//   /ws/console/<domid>   the guest's console (console-bridge.ts)
//   /ws/vnc/<domid>       the guest's VGA display for noVNC (vnc-bridge.ts)
// Frames above MAX_FRAME close that one socket (1009); a live client that stops reading is
// skipped while its queue is over the limit, never waited for.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { XenstoreLink } from './xenstore-link.js';
import type { ToolstackCall } from '../toolstack/domain-counters.js';
import type { StatsSampler, Sample } from './stats-sampler.js';
import { ConsoleBridge, CLIENT_BUFFER_LIMIT, type ConsoleClientStats, type ConsoleTarget } from './console-bridge.js';
import { bridgeVnc, vncAddress } from './vnc-bridge.js';

export const MAX_FRAME = 64 * 1024;

export class WsEndpoints {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME,
    // noVNC asks for the 'binary' subprotocol.
    handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
  });
  private readonly live = new Set<WebSocket>();
  readonly consoles = new Set<ConsoleBridge>();
  private liveSkipped = 0;

  constructor(
    private readonly call: ToolstackCall,
    private readonly xs: XenstoreLink,
    private readonly sampler: StatsSampler,
  ) {
    sampler.on('sample', (s: Sample) => this.broadcast({ type: 'sample', sample: s }));
    sampler.on('error-state', (message: string) => this.broadcast({ type: 'error', message }));
  }

  /** Route an upgrade the server has already authorised. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, path: string): void {
    const m = /^\/ws\/(live|console|vnc)(?:\/(\d{1,5}))?$/.exec(path);
    if (!m || (m[1] === 'live') !== (m[2] === undefined)) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n\r\nno such WebSocket endpoint\n');
      return;
    }
    // The console's target is found before the upgrade completes, so that nothing the client
    // types right after 'open' arrives before the bridge listens.
    const target = m[1] === 'console' ? this.consoleTarget(Number(m[2])) : Promise.resolve(null);
    void target.then((t) =>
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => ws.terminate());
        if (m[1] === 'live') this.openLive(ws);
        else if (m[1] === 'console') this.openConsole(ws, Number(m[2]), t!);
        else void this.openVnc(ws, Number(m[2]));
      }),
    );
  }

  private async consoleTarget(domid: number): Promise<ConsoleTarget | Error> {
    try {
      const { tty } = await this.call<{ domid: number; tty: string }>('console', { dom: String(domid) });
      const { name } = await this.call<{ name: string }>('domname', { domid });
      return { domid, name, tty };
    } catch (e) {
      return e as Error;
    }
  }

  private broadcast(msg: object): void {
    const text = JSON.stringify(msg);
    for (const ws of this.live) {
      if (ws.bufferedAmount > CLIENT_BUFFER_LIMIT) this.liveSkipped++;
      else ws.send(text);
    }
  }

  private openLive(ws: WebSocket): void {
    this.live.add(ws);
    ws.on('close', () => this.live.delete(ws));
    ws.on('message', () => ws.close(1003, 'the live channel takes no messages'));
    const history: Record<number, unknown> = {};
    for (const [domid, h] of this.sampler.history) history[domid] = h;
    ws.send(JSON.stringify({ type: 'history', history }));
    if (this.sampler.last) ws.send(JSON.stringify({ type: 'sample', sample: this.sampler.last }));
    if (this.sampler.error) ws.send(JSON.stringify({ type: 'error', message: this.sampler.error }));
  }

  private openConsole(ws: WebSocket, domid: number, target: ConsoleTarget | Error): void {
    try {
      if (target instanceof Error) throw target;
      const bridge = new ConsoleBridge(ws, target, (rows, cols) => {
        void this.call('console-resize', { dom: String(domid), rows, cols }).catch(() => {});
      });
      this.consoles.add(bridge);
      ws.on('close', () => this.consoles.delete(bridge));
    } catch (e) {
      ws.close(4404, `domain ${domid}: ${(e as Error).message}`.slice(0, 120));
    }
  }

  private async openVnc(ws: WebSocket, domid: number): Promise<void> {
    const base = `/local/domain/${domid}/console`;
    const port = await this.xs.read(`${base}/vnc-port`).catch(() => null);
    const listen = await this.xs.read(`${base}/vnc-listen`).catch(() => '127.0.0.1');
    const addr = port === null ? null : vncAddress(listen, port);
    if (!addr) {
      ws.close(4404, `domain ${domid} has no VNC display (no ${base}/vnc-port)`);
      return;
    }
    bridgeVnc(ws, addr, () => {});
  }

  stats(): { liveClients: number; liveSkipped: number; consoles: ConsoleClientStats[] } {
    return { liveClients: this.live.size, liveSkipped: this.liveSkipped, consoles: [...this.consoles].map((c) => c.stats) };
  }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}
