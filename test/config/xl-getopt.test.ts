// xl's argument handling as pure functions: SWITCH_FOREACH_OPT's getopt (permuting, -h, missing
// arguments), cmdtable_lookup's unique prefixes, parse_mem_size_kb, and the block script's
// sharing modes.
import { describe, expect, it } from 'vitest';
import { switchForeachOpt } from '../../dom0/toolstack/xl/getopt.js';
import { cmdtableLookup } from '../../dom0/toolstack/xl/cmdtable.js';
import { XlExit } from '../../dom0/toolstack/xl/exit.js';
import { parseMemSizeKb } from '../../dom0/toolstack/xl/commands/tuning.js';
import { canonicaliseMode } from '../../dom0/toolstack/devices/vbd-sharing.js';

const exitOf = (fn: () => unknown): XlExit => {
  try {
    fn();
  } catch (e) {
    if (e instanceof XlExit) return e;
    throw e;
  }
  throw new Error('did not exit');
};

describe('switchForeachOpt (def_getopt)', () => {
  it('takes options before, between and after arguments, values attached or not, and stops at --', () => {
    const p = switchForeachOpt(['g1', '-w', '-d', 'dom', '-c5', '--weight=7', '--', '-x'], 'd:w:c:', [{ name: 'weight', hasArg: 1, val: 'w' }], 'sched-credit', 0);
    // As GNU getopt: a required value is the next word even when it starts with '-'.
    expect(p.opts).toEqual([['w', '-d'], ['c', '5'], ['w', '7']]);
    expect(p.args).toEqual(['g1', 'dom', '-x']);
    expect(p.val('w')).toBe('7');
  });

  it('reads clustered flags and long options by unambiguous prefix', () => {
    const p = switchForeachOpt(['-aw', '--wa', 'dom'], 'awF', [{ name: 'all', hasArg: 0, val: 'a' }, { name: 'wait', hasArg: 0, val: 'w' }], 'shutdown', 0);
    expect(p.opts.map(([c]) => c)).toEqual(['a', 'w', 'w']);
    expect(p.args).toEqual(['dom']);
  });

  it('-h and --help are help (exit 0, text on stdout); unknown options exit 2; too few arguments exit 2 with the help', () => {
    const h = exitOf(() => switchForeachOpt(['x', '-h'], '', null, 'pause', 1));
    expect([h.code, h.message]).toEqual([0, '']);
    expect(h.stdout).toBe('Usage: xl [-vtTf] pause <Domain>\n\nPause execution of a domain.\n\n');
    expect(exitOf(() => switchForeachOpt(['--help'], '', null, 'pause', 1)).code).toBe(0);
    const u = exitOf(() => switchForeachOpt(['-q'], 'lv', null, 'list', 0));
    expect([u.code, u.message]).toEqual([2, "option `q' not supported."]);
    const m = exitOf(() => switchForeachOpt(['-d'], 'd:', null, 'sched-credit', 0));
    expect([m.code, m.message]).toEqual([2, "option `d' not supported."]);
    const r = exitOf(() => switchForeachOpt(['one'], '', null, 'rename', 2));
    expect([r.code, r.message]).toEqual([2, "'xl rename' requires at least 2 arguments.\n"]);
    expect(r.stdout).toMatch(/^Usage: xl \[-vtTf\] rename <Domain> <NewDomainName>\n/);
  });
});

describe('cmdtableLookup', () => {
  it('takes an exact name or a unique prefix, against Xen\'s whole table', () => {
    expect(cmdtableLookup('cr')?.name).toBe('create');
    expect(cmdtableLookup('list')?.name).toBe('list');
    expect(cmdtableLookup('sh')).toBeUndefined(); // shutdown, sharing
    expect(cmdtableLookup('block-l')?.name).toBe('block-list');
    expect(cmdtableLookup('nosuch')).toBeUndefined();
  });
});

describe('parseMemSizeKb', () => {
  it('reads MiB by default and b/k/m/g/t suffixes', () => {
    expect(parseMemSizeKb('256')).toBe(256 * 1024);
    expect(parseMemSizeKb('96m')).toBe(96 * 1024);
    expect(parseMemSizeKb('1g')).toBe(1024 * 1024);
    expect(parseMemSizeKb('2048k')).toBe(2048);
    expect(parseMemSizeKb('1048576b')).toBe(1024);
    expect(parseMemSizeKb('12q')).toBe(-1);
    expect(parseMemSizeKb('')).toBe(-1);
  });
});

describe('canonicaliseMode (the block script)', () => {
  it('maps r/ro to r, w/rw to w, and w!/rw! to ! (no checks)', () => {
    expect(['r', 'ro', 'w', 'rw', 'w!', 'rw!'].map(canonicaliseMode)).toEqual(['r', 'r', 'w', 'w', '!', '!']);
  });
});
