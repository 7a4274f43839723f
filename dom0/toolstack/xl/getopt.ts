// xl's option parsing, as SWITCH_FOREACH_OPT / def_getopt (tools/xl/xl_utils.c) on glibc's
// getopt_long: options may come before, between or after the arguments (GNU permutes them)
// unless `--` ends them; -h and --help print the command's help on stdout and exit 0; an
// option the command does not take is "option `x' not supported." with exit 2; too few
// arguments is "'xl CMD' requires at least N argument(s)." and the help, exit 2.
import { cmdHelp } from './help.js';
import { XlExit } from './exit.js';

export interface LongOpt {
  name: string;
  /** 0: no argument, 1: required, 2: optional (only as --name=value). */
  hasArg: 0 | 1 | 2;
  /** The short option it stands for. */
  val: string;
}

export interface Parsed {
  /** Options in the order given: [letter, value]. */
  opts: [string, string | undefined][];
  /** The non-option words, in order. */
  args: string[];
  /** The last value of each option letter given (true for one without a value). */
  has(c: string): boolean;
  val(c: string): string | undefined;
}

/** `optstring` is getopt's ("f:hq" ...: a letter followed by ':' takes a value, '::' optionally). */
export function switchForeachOpt(argv: readonly string[], optstring: string, longopts: readonly LongOpt[] | null, cmd: string, reqargs: number): Parsed {
  const takes = (c: string): 0 | 1 | 2 => {
    const i = optstring.indexOf(c);
    if (i < 0 || c === ':') return 0;
    if (optstring[i + 1] !== ':') return 0;
    return optstring[i + 2] === ':' ? 2 : 1;
  };
  const known = (c: string) => c !== ':' && optstring.includes(c);
  const longs: readonly LongOpt[] = longopts ?? [];
  const opts: [string, string | undefined][] = [];
  const args: string[] = [];
  const unsupported = (what: string) => new XlExit(2, `option \`${what}' not supported.`);
  const help = () => new XlExit(0, '', cmdHelp(cmd));

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (name === 'help') throw help();
      // getopt_long takes an unambiguous abbreviation of a long option too.
      const exact = longs.find((l) => l.name === name);
      const prefixed = longs.filter((l) => l.name.startsWith(name));
      const lo = exact ?? (prefixed.length === 1 ? prefixed[0] : undefined);
      if (!lo || name === '') throw unsupported(a);
      let v: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
      if (lo.hasArg === 0 && v !== undefined) throw unsupported(a);
      if (lo.hasArg === 1 && v === undefined) {
        v = argv[++i];
        if (v === undefined) throw unsupported(a);
      }
      opts.push([lo.val, v]);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        if (c === 'h' && !known('h')) throw help();
        if (!known(c)) throw unsupported(c);
        const t = takes(c);
        if (t === 0) {
          opts.push([c, undefined]);
          continue;
        }
        let v: string | undefined = a.slice(j + 1) || undefined;
        if (v === undefined && t === 1) {
          v = argv[++i];
          if (v === undefined) throw unsupported(c);
        }
        opts.push([c, v]);
        break;
      }
      continue;
    }
    args.push(a);
  }
  if (opts.some(([c]) => c === 'h')) throw help();
  if (args.length < reqargs) {
    throw new XlExit(2, `'xl ${cmd}' requires at least ${reqargs} argument${reqargs > 1 ? 's' : ''}.\n`, cmdHelp(cmd));
  }
  const last = (c: string) => [...opts].reverse().find(([k]) => k === c);
  return {
    opts,
    args,
    has: (c) => last(c) !== undefined,
    val: (c) => last(c)?.[1],
  };
}
