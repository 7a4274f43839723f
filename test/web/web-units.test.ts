// The web service's pure parts: its arguments and the warning for a non-loopback address,
// the asset table's path checks, and the token/Origin checks, without a server.
import { describe, it, expect } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { parseWebArgs, exposureWarning } from '../../dom0/web/web-command.js';
import { resolveAsset, PathError, ROOT } from '../../dom0/web/static-assets.js';
import { Access } from '../../dom0/web/access.js';

const req = (url: string, headers: Record<string, string> = {}) => ({ url, headers }) as unknown as IncomingMessage;

describe('xenode web: arguments, paths, access', () => {
  it('parses its options and names a bad one', () => {
    expect(parseWebArgs([])).toEqual({ port: 8090, host: '127.0.0.1' });
    expect(parseWebArgs(['--port', '0', '--listen=::1', '--bench', '/x.json'])).toEqual({ port: 0, host: '::1', benchFile: '/x.json' });
    expect(() => parseWebArgs(['--port', '70000'])).toThrow(/--port must be 0..65535/);
    expect(() => parseWebArgs(['--listen'])).toThrow(/--listen needs a value/);
    expect(() => parseWebArgs(['--bind', 'x'])).toThrow(/unknown option "--bind"/);
  });

  it('warns for any address that is not loopback', () => {
    for (const h of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) expect(exposureWarning(h)).toBeNull();
    for (const h of ['0.0.0.0', '::', '192.0.2.7']) expect(exposureWarning(h)).toMatch(/WARNING: listening on .*not loopback/);
  });

  it('maps only the page and the four libraries; refuses leaving paths with the reason', () => {
    expect(resolveAsset('/')).toBe(`${ROOT}/dom0/web/page/index.html`);
    expect(resolveAsset('/vendor/xterm/lib/xterm.js')).toContain('/node_modules/@xterm/xterm/lib/xterm.js');
    expect(resolveAsset('/vendor/novnc/core/rfb.js')).toContain('/node_modules/@novnc/novnc/core/rfb.js');
    const status = (p: string) => {
      try {
        resolveAsset(p);
        return 200;
      } catch (e) {
        return (e as PathError).status;
      }
    };
    expect(status('/vendor/../../package.json')).toBe(400);
    expect(status('/vendor/novnc/%2e%2e/package.json')).toBe(400);
    expect(status('/a%00.js')).toBe(400);
    expect(status('/%zz')).toBe(400);
    expect(status('/vendor/xterm/package.json')).toBe(404); // not a served type
    expect(status('/vendor/novnc/docs/API.md')).toBe(404);
    expect(status('/web-server.js')).toBe(404);
  });

  it('accepts the token from the query, a header or its cookie; an Origin only if it is ours', () => {
    const a = new Access('t0ken');
    a.allowOrigins(['127.0.0.1', 'localhost', '::1'], 8090);
    expect(a.check(req('/?token=t0ken'), 8090)).toBe('query');
    expect(a.check(req('/', { authorization: 'token t0ken' }), 8090)).toBe('header');
    expect(a.check(req('/', { cookie: 'a=b; xenode_token_8090=t0ken' }), 8090)).toBe('cookie');
    expect(a.check(req('/', { cookie: 'xenode_token_8091=t0ken' }), 8090)).toBeNull(); // another instance's
    expect(a.check(req('/?token=t0ke'), 8090)).toBeNull();
    expect(a.check(req('/'), 8090)).toBeNull();
    expect(a.originAllowed(req('/', { origin: 'http://127.0.0.1:8090' }))).toBe(true);
    expect(a.originAllowed(req('/', { origin: 'http://[::1]:8090' }))).toBe(true);
    expect(a.originAllowed(req('/', { origin: 'http://127.0.0.1:8091' }))).toBe(false);
    expect(a.originAllowed(req('/', { origin: 'null' }))).toBe(false);
    expect(a.originAllowed(req('/'))).toBe(true); // not a browser
    expect(new Access().token).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });
});
