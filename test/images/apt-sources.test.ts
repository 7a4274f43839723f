// Reading the host's Debian mirror from apt's configuration, in both of apt's formats.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianMirror, hostAptSources, hostSuite, parseDeb822Sources, parseOneLineSources } from '../../common/images/apt-sources.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-images-apt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the host mirror from apt sources', () => {
  it('parses one-line sources with options and comments', () => {
    const s = parseOneLineSources(
      '# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.test/debian/ bookworm main contrib # tail\ndeb-src http://mirror.test/debian bookworm main\n\n',
      'x.list',
    );
    expect(s).toHaveLength(2);
    expect(s[0]).toMatchObject({ types: ['deb'], uris: ['http://mirror.test/debian/'], suites: ['bookworm'], components: ['main', 'contrib'] });
    expect(s[1]!.types).toEqual(['deb-src']);
  });

  it('parses deb822 stanzas, continuation lines and Enabled: no', () => {
    const s = parseDeb822Sources(
      'Types: deb deb-src\n# http://snapshot.test/x\nURIs: http://a.test/debian\nSuites: bookworm\n bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://b.test/debian\nSuites: trixie\nComponents: main\nEnabled: no\n',
      'x.sources',
    );
    expect(s).toHaveLength(2);
    expect(s[0]).toMatchObject({ types: ['deb', 'deb-src'], uris: ['http://a.test/debian'], suites: ['bookworm', 'bookworm-updates'], enabled: true });
    expect(s[1]!.enabled).toBe(false);
  });

  it('picks the archive for the release suite, not security or updates, not third-party suites', () => {
    const root = join(dir, 'host');
    mkdirSync(join(root, 'etc/apt/sources.list.d'), { recursive: true });
    writeFileSync(join(root, 'etc/os-release'), 'NAME="Debian"\nVERSION_CODENAME=bookworm\n');
    writeFileSync(join(root, 'etc/apt/sources.list'), 'deb http://security.test/debian-security bookworm-security main\n');
    writeFileSync(join(root, 'etc/apt/sources.list.d/vendor.sources'), 'Types: deb\nURIs: https://vendor.test/apt\nSuites: nodistro\nComponents: main\n');
    writeFileSync(join(root, 'etc/apt/sources.list.d/debian.sources'), 'Types: deb\nURIs: http://archive.test/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n');
    writeFileSync(join(root, 'etc/apt/sources.list.d/old.list.disabled'), 'deb http://wrong.test/debian bookworm main\n');
    const sources = hostAptSources(root);
    expect(sources.map((s) => s.uris[0])).toEqual(['http://security.test/debian-security', 'http://archive.test/debian/', 'https://vendor.test/apt']);
    expect(hostSuite(root)).toBe('bookworm');
    expect(debianMirror(sources, 'bookworm')).toEqual({ uri: 'http://archive.test/debian', file: join(root, 'etc/apt/sources.list.d/debian.sources') });
    expect(debianMirror(sources.filter((s) => !s.uris[0]!.includes('archive')), 'bookworm')).toBeUndefined();
  });
});
