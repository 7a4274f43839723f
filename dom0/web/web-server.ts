// The web console's HTTP server: every request and WebSocket upgrade must carry the token
// (access.ts), upgrades must come from our own Origin; the page and its libraries come from
// the fixed asset table (static-assets.ts); /api/ has the driver comparison's results, the
// buttons' actions and the service's own counters. Errors are answered with a status and a
// sentence naming what was wrong; a bad request never reaches anything but itself.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Access } from './access.js';
import { PathError, resolveAsset, sendFile, ROOT } from './static-assets.js';
import { runAction, ActionError } from './domain-actions.js';
import type { WsEndpoints } from './ws-endpoints.js';
import type { ToolstackCall } from '../toolstack/domain-counters.js';
import type { StatsSampler } from './stats-sampler.js';

export interface WebServerOptions {
  host: string;
  port: number;
  /** The driver comparison's JSON (`npm run bench` writes bench/results/compare-latest.json). */
  benchFile?: string;
}

/** Hard cap on a request body (only actions have one, and it is ignored). */
const MAX_BODY = 4096;

export class WebServer {
  readonly access = new Access();
  private readonly http: Server;
  port = 0;

  constructor(
    private readonly opts: WebServerOptions,
    private readonly call: ToolstackCall,
    private readonly sampler: StatsSampler,
    private readonly ws: WsEndpoints,
  ) {
    this.http = createServer((req, res) => this.onRequest(req, res).catch((e) => this.fail(res, 500, (e as Error).message)));
    this.http.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      const path = (req.url ?? '/').split('?')[0]!;
      const refuse = (status: string, why: string) => socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
      if (!this.access.check(req, this.port)) return refuse('401 Unauthorized', 'a valid token is required');
      if (!this.access.originAllowed(req)) return refuse('403 Forbidden', `Origin ${req.headers.origin} is not this server`);
      this.ws.upgrade(req, socket, head, path);
    });
    this.http.on('clientError', (_e, socket) => socket.destroy());
    // A client that opens connections and never finishes a request does not hold them open.
    this.http.headersTimeout = 10_000;
    this.http.requestTimeout = 30_000;
  }

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => {
        this.http.off('error', reject);
        this.port = (this.http.address() as { port: number }).port;
        const names = new Set([this.opts.host, '127.0.0.1', 'localhost', '::1']);
        this.access.allowOrigins([...names], this.port);
        const shown = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
        resolve(`http://${shown}:${this.port}/?token=${this.access.token}`);
      });
    });
  }

  close(): void {
    this.http.closeAllConnections();
    this.http.close();
  }

  private fail(res: ServerResponse, status: number, message: string): void {
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
    res.end(message + '\n');
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const how = this.access.check(req, this.port);
    if (!how) return this.fail(res, 401, 'xenode web: a valid token is required (open the URL `xenode web` printed)');
    const path = (req.url ?? '/').split('?')[0]!;
    if (how === 'query') res.setHeader('set-cookie', this.access.setCookie(this.port));

    if (path.startsWith('/api/')) {
      const action = /^\/api\/domains\/([^/]+)\/([^/]+)$/.exec(path);
      if (action) {
        // A cookie alone is not enough to act: a page must present the token itself.
        if (req.method !== 'POST') return this.fail(res, 405, 'actions are POST requests');
        if (how !== 'header') return this.fail(res, 403, 'actions need the token in an Authorization header');
        await drain(req);
        try {
          await runAction(this.call, decodeURIComponent(action[1]!), action[2]!);
        } catch (e) {
          return this.fail(res, e instanceof ActionError ? e.status : 500, (e as Error).message);
        }
        this.sampler.soon(0);
        return this.json(res, 200, { ok: true });
      }
      if (req.method !== 'GET') return this.fail(res, 405, `${req.method} is not allowed on ${path}`);
      if (path === '/api/bench') return this.bench(res);
      if (path === '/api/service') return this.json(res, 200, { ...this.ws.stats(), sampleError: this.sampler.error });
      return this.fail(res, 404, `no such API: ${path}`);
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') return this.fail(res, 405, `${req.method} is not allowed on ${path}`);
    let file: string;
    try {
      file = resolveAsset(path);
    } catch (e) {
      return this.fail(res, e instanceof PathError ? e.status : 400, (e as Error).message);
    }
    if (file.endsWith('index.html')) {
      // The page's script needs the token for its actions' Authorization header.
      const html = readFileSync(file, 'utf8').replace('%XENODE_TOKEN%', this.access.token);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
      return void res.end(html);
    }
    sendFile(res, file);
  }

  private bench(res: ServerResponse): void {
    const file = this.opts.benchFile ?? join(ROOT, 'bench', 'results', 'compare-latest.json');
    if (!existsSync(file)) return this.fail(res, 404, `no driver comparison yet (${file}): run "npm run bench"`);
    try {
      this.json(res, 200, JSON.parse(readFileSync(file, 'utf8')));
    } catch (e) {
      this.fail(res, 500, `${file}: ${(e as Error).message}`);
    }
  }
}

function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) req.destroy();
    });
    req.on('end', resolve);
    req.on('close', resolve);
  });
}
