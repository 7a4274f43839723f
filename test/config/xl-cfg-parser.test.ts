import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../dom0/toolstack/config/config-error.js';
import { parseXlCfg, type RawValue } from '../../dom0/toolstack/config/xl-cfg-parser.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

/** The plain value of a setting: strings as text, lists as arrays. */
function plain(v: RawValue | undefined): unknown {
  if (!v) return undefined;
  return v.kind === 'string' ? v.value : v.items.map(plain);
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('xl.cfg syntax', () => {
  it('reads assignments, quotes, numbers and comments with positions', () => {
    const cfg = parseXlCfg([
      '# a comment',
      'name = "web"   # trailing comment',
      "kernel='/boot/vmlinuz'",
      'memory = 0x100',
      'vcpus=2; maxvcpus = 4',
    ].join('\n'), 'web.cfg');
    expect(cfg.keys()).toEqual(['name', 'kernel', 'memory', 'vcpus', 'maxvcpus']);
    expect(plain(cfg.get('name')?.value)).toBe('web');
    expect(plain(cfg.get('memory')?.value)).toBe('0x100');
    expect(cfg.get('memory')?.value).toMatchObject({ quoted: false });
    expect(cfg.get('kernel')).toMatchObject({ line: 3, column: 1 });
    expect(cfg.get('maxvcpus')).toMatchObject({ line: 5, column: 10 });
  });

  it('reads lists over several lines with comments, trailing commas and nesting', () => {
    const cfg = parseXlCfg([
      'disk = [',
      "   'phy:/dev/vg/a,xvda,w',   # first",
      '',
      "   'file:/b.img,xvdb,r',",
      ']',
      'empty = [ ]',
      "vnuma = [ [ 'pnode=0', 'size=512' ], [ 'pnode=1' ] ]",
    ].join('\n'), 't.cfg');
    expect(plain(cfg.get('disk')?.value)).toEqual(['phy:/dev/vg/a,xvda,w', 'file:/b.img,xvdb,r']);
    expect(plain(cfg.get('empty')?.value)).toEqual([]);
    expect(plain(cfg.get('vnuma')?.value)).toEqual([['pnode=0', 'size=512'], ['pnode=1']]);
    const disk = cfg.get('disk')!.value;
    expect(disk.kind === 'list' && disk.items[1]).toMatchObject({ line: 4, column: 4 });
  });

  it('dequotes libxlu escapes', () => {
    const cfg = parseXlCfg(String.raw`a = "x\"y\\z\tq"` + '\n' + String.raw`b = 'it\'s'` + '\n', 't.cfg');
    expect(plain(cfg.get('a')?.value)).toBe('x"y\\z\tq');
    expect(plain(cfg.get('b')?.value)).toBe("it's");
  });

  it('keeps the last of repeated keys, and += concatenates like libxlu', () => {
    const cfg = parseXlCfg([
      'name = "a"', 'name = "b"',
      'extra = "console=hvc0"', 'extra += " quiet"',
      "disk = [ 'a,xvda' ]", "disk += [ 'b,xvdb' ]",
      'fresh += "x"',
    ].join('\n'), 't.cfg');
    expect(plain(cfg.get('name')?.value)).toBe('b');
    expect(plain(cfg.get('extra')?.value)).toBe('console=hvc0 quiet');
    expect(plain(cfg.get('disk')?.value)).toEqual(['a,xvda', 'b,xvdb']);
    expect(cfg.get('fresh')).toMatchObject({ op: '+=' });
  });

  it('accepts a last line without a newline, CRLF, and a final comment', () => {
    expect(plain(parseXlCfg('name = "x"', 't').get('name')?.value)).toBe('x');
    expect(plain(parseXlCfg('name = "x"\r\nvcpus = 2\r\n', 't').get('vcpus')?.value)).toBe('2');
    expect(parseXlCfg('name = "x"\n# end', 't').keys()).toEqual(['name']);
  });

  it('reports errors as FILE:LINE: KEY: message with column', () => {
    const e = errorOf(() => parseXlCfg('name = "x"\nmemory = \n', 'bad.cfg'));
    expect(e.message).toBe('bad.cfg:2: memory: syntax error: expected a value (a quoted string, a number or a [list]), found end of line');
    expect(e).toMatchObject({ file: 'bad.cfg', line: 2, column: 10, key: 'memory' });
  });

  it('collects several errors and names each line', () => {
    const e = errorOf(() => parseXlCfg('a = "ok"\nb = "unterminated\nc = [ "x" "y" ]\nName = "n"\n', 'm.cfg'));
    expect(e.errors.map((x) => [x.line, x.key])).toEqual([[2, 'b'], [3, 'c'], [4, undefined]]);
    expect(e.errors[0]!.message).toBe('m.cfg:2: b: unterminated string near `"unterminated\'');
    expect(e.errors[2]!.message).toContain('keys are lower case');
    expect(e.message.split('\n')).toHaveLength(3);
  });

  it('explains bare words and negative numbers', () => {
    expect(errorOf(() => parseXlCfg('type = hvm\n', 't.cfg')).message)
      .toBe('t.cfg:1: type: syntax error: found the bare word `hvm\': strings must be quoted ("hvm")');
    expect(errorOf(() => parseXlCfg('cap = -1\n', 't.cfg')).message)
      .toBe("t.cfg:1: cap: lexical error (a negative number must be quoted, e.g. '-1') near `-1'");
  });

  it('rejects mixing a list and a string with +=', () => {
    const e = errorOf(() => parseXlCfg('a = "s"\na += [ "l" ]\n', 't.cfg'));
    expect(e.message).toBe('t.cfg:2: a: can\'t add [list] to "string" or vice versa');
  });

  it('rejects the numeric escapes libxlu mangles', () => {
    const e = errorOf(() => parseXlCfg(String.raw`a = "\x41"`, 't.cfg'));
    expect(e.message).toMatch(/^t\.cfg:1: a: numeric escape `\\x'/);
  });

  it('rejects the Python preamble of an xm config naming file, line and Python', () => {
    const e = errorOf(() => parseXlCfg(fixture('florizel-xm-python.cfg'), 'florizel'));
    const first = e.errors[0]!;
    expect(first.message).toMatch(/^florizel:1: `import' is Python: Python is not supported by xl config files/);
    expect(first.message).toContain('PythonInXlConfig');
    // Every Python line is reported, and so is the run-together `kernel = ... builder=...` line.
    expect(e.errors.map((x) => x.line)).toEqual([1, 2, 3, 5, 8, 10]);
    expect(e.errors[1]!.message).toBe('florizel:2: arch: syntax error: expected a value (a quoted string, a number or a [list]), found `os\'');
    expect(e.errors[4]!.message).toBe('florizel:8: device_model: lexical error near `+\'');
    expect(e.errors[5]!.message).toBe('florizel:10: kernel: syntax error: expected end of line or `;\' after the value, found `builder\'');
  });
});
