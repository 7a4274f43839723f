// The web service's connection to xenstored, kept up across a xenode restart: when the socket
// closes, it is reopened every second until xenstored is back, and each `onConnect` hook (the
// sampler's watches) runs again on the new connection. Reads meanwhile fail and say so.
import { XsClient } from '../../drivers/xenstore/client.js';
import { socketTransport } from '../../drivers/xenstore/socket-transport.js';

const RETRY_MS = 1000;

export class XenstoreLink {
  private client: XsClient | null = null;
  private readonly hooks: ((xs: XsClient) => Promise<void>)[] = [];
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  /** Connect now (throws if xenstored is not there: the service needs it to start). */
  async open(): Promise<void> {
    await this.connect();
  }

  /** Run `hook` on this connection (if up) and on every later one. */
  async onConnect(hook: (xs: XsClient) => Promise<void>): Promise<void> {
    this.hooks.push(hook);
    if (this.client) await hook(this.client);
  }

  read(path: string): Promise<string> {
    if (!this.client) return Promise.reject(new Error('xenstored is not connected'));
    return this.client.read(path);
  }

  private async connect(): Promise<void> {
    const transport = await socketTransport();
    const xs = new XsClient(transport);
    transport.onClose?.(() => {
      if (this.client === xs) this.client = null;
      this.schedule();
    });
    this.client = xs;
    for (const h of this.hooks) await h(xs);
  }

  private schedule(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().catch(() => this.schedule());
    }, RETRY_MS);
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.client?.close();
  }
}
