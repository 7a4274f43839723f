// `xenode web` for a test: started against a private Instance (its env), its printed URL
// parsed, stopped (by its pid) afterwards. A plain client for its console WebSocket too.
import { spawn, type ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import { XENODE, type Instance } from '../helpers/instance.js';

export class WebProcess {
  private child: ChildProcess | null = null;
  url = '';
  base = '';
  token = '';
  port = 0;
  stderr = '';

  constructor(private readonly xn: Instance) {}

  async start(args: string[] = ['--port', '0']): Promise<void> {
    const child = spawn(process.execPath, [XENODE, 'web', ...args], { env: this.xn.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`xenode web printed no URL: ${out}${this.stderr}`)), 10_000);
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /(http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', (code) => reject(new Error(`xenode web exited (${code}): ${out}${this.stderr}`)));
    });
    const u = new URL(this.url);
    this.base = `${u.protocol}//${u.host}`;
    this.token = u.searchParams.get('token')!;
    this.port = Number(u.port);
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number {
    return this.child!.pid!;
  }

  auth(): Record<string, string> {
    return { authorization: `token ${this.token}` };
  }

  ws(path: string, headers: Record<string, string> = {}, withToken = true): WebSocket {
    const sep = path.includes('?') ? '&' : '?';
    return new WebSocket(`${this.base.replace('http', 'ws')}${path}${withToken ? `${sep}token=${this.token}` : ''}`, { headers });
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || !this.alive) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    if (this.alive) c.kill('SIGKILL');
  }
}

/** A console client that acknowledges what it takes in, as the page does, and collects it. */
export class ConsoleReader {
  text = '';
  bytes = 0;
  private acked = 0;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;

  constructor(web: WebProcess, domid: number) {
    this.ws = web.ws(`/ws/console/${domid}`);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('message', (d: Buffer, binary: boolean) => {
      if (!binary) return;
      this.bytes += d.length;
      this.text = (this.text + d.toString('utf8')).slice(-64 * 1024);
      if (this.bytes - this.acked >= 32 * 1024) this.ws.send(JSON.stringify({ type: 'ack', bytes: (this.acked = this.bytes) }));
    });
  }

  type(line: string): void {
    this.ws.send(Buffer.from(line.endsWith('\n') ? line : `${line}\n`));
  }
}

/** What the service says about its clients (/api/service). */
export async function serviceStats(web: WebProcess): Promise<{ consoles: { domid: number; sentBytes: number; ackedBytes: number; droppedBytes: number }[] }> {
  const r = await fetch(`${web.base}/api/service`, { headers: web.auth() });
  return r.json() as Promise<{ consoles: { domid: number; sentBytes: number; ackedBytes: number; droppedBytes: number }[] }>;
}
