// Who may use the web console: a random token made at start (printed with the URL, as Jupyter
// does) on every HTTP request and WebSocket upgrade, and for upgrades an Origin that is this
// server's own (a page on another site cannot drive a guest's console with a browser's
// credentials). The token comes as ?token=, an `Authorization: token ...` header, or the
// cookie the first tokened request sets (SameSite=Strict, so other sites never send it).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export class Access {
  readonly token: string;
  /** Origins a browser page served by us has: http://HOST:PORT for each name we answer to. */
  private readonly origins = new Set<string>();

  constructor(token = randomBytes(24).toString('base64url')) {
    this.token = token;
  }

  /** Cookies are not per-port: the name carries the port so two instances do not collide. */
  cookieName(port: number): string {
    return `xenode_token_${port}`;
  }

  allowOrigins(hosts: string[], port: number): void {
    for (const h of hosts) this.origins.add(`http://${h.includes(':') ? `[${h}]` : h}:${port}`);
  }

  private matches(candidate: string | undefined): boolean {
    if (!candidate) return false;
    const a = Buffer.from(candidate);
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The token this request carries, if it is the right one ('query' when it came in the URL). */
  check(req: IncomingMessage, port: number): 'query' | 'header' | 'cookie' | null {
    const q = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('token') ?? undefined;
    if (this.matches(q)) return 'query';
    const auth = /^token\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (this.matches(auth?.[1])) return 'header';
    const name = this.cookieName(port);
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === name && this.matches(v.join('='))) return 'cookie';
    }
    return null;
  }

  /** A WebSocket upgrade's Origin: absent (a non-browser client, which has the token) or ours. */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    return origin === undefined || this.origins.has(origin);
  }

  setCookie(port: number): string {
    return `${this.cookieName(port)}=${this.token}; Path=/; HttpOnly; SameSite=Strict`;
  }
}
