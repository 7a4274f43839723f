// The xl.cfg file syntax, as libxlu reads it (tools/libs/util/libxlu_cfg_l.l, libxlu_cfg_y.y,
// libxlu_cfg.c): `key = value` or `key += value` statements ended by a newline or `;`, where a
// value is an atom (a quoted string or a number, both kept as text) or a `[ ... ]` list of values
// that may span lines, nest, hold comments and end with a trailing comma. Keys are lower case.
//
// Decisions where we differ from xl, on purpose:
// - xm's Python (`import os`, `arch = os.uname()[4]`, `if ...:`) is rejected, as in xl, where it is a
//   syntax error; our message names the line and says Python is not supported.
// - All errors are collected (recovery skips to the end of the statement) instead of xl's single
//   "Failed to parse config", and each carries line, column and key.
// - `\r` before a newline is accepted (xl calls CRLF a lexical error); a comment on the last line
//   without a newline is accepted (xl's lexer needs the newline).
// - libxlu's numeric string escapes (\x41, \101) are broken there (the value is dropped, `\x` always
//   fails), so we reject them with a clear message rather than guess what the author meant.

import { ConfigError, type SourcePos } from './config-error.js';

export interface RawString {
  kind: 'string';
  /** The text after dequoting (a NUMBER atom keeps its digits as text, as libxlu does). */
  value: string;
  /** True for '...' or "..." atoms, false for bare numbers. */
  quoted: boolean;
  line: number;
  column: number;
}

export interface RawList {
  kind: 'list';
  items: RawValue[];
  line: number;
  column: number;
}

export type RawValue = RawString | RawList;

export interface RawSetting {
  key: string;
  /** `+=` appends to an earlier setting of the same key (strings concatenate, lists join). */
  op: '=' | '+=';
  value: RawValue;
  line: number;
  column: number;
}

/** A parsed xl.cfg: every statement in file order; for a repeated key, the last one counts. */
export class XlCfg {
  constructor(readonly fileName: string, readonly settings: readonly RawSetting[]) {}

  get(key: string): RawSetting | undefined {
    for (let i = this.settings.length - 1; i >= 0; i--) {
      if (this.settings[i]!.key === key) return this.settings[i];
    }
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Distinct keys in order of first appearance. */
  keys(): string[] {
    return [...new Set(this.settings.map((s) => s.key))];
  }

  pos(setting: RawSetting | RawValue, key?: string): SourcePos {
    return { file: this.fileName, line: setting.line, column: setting.column, key };
  }
}

type TokKind = 'ident' | 'number' | 'string' | '=' | '+=' | ';' | ',' | '[' | ']' | 'nl' | 'error' | 'eof';

interface Token {
  kind: TokKind;
  text: string;
  /** Dequoted text for strings. */
  value?: string;
  line: number;
  column: number;
  /** For lexical errors: the characters that made us think of Python. */
  likelyPython?: boolean;
  /** For lexical errors: what was wrong. */
  problem?: string;
}

const PYTHON_HINT =
  'Python is not supported by xl config files (xm ran them as Python, xl does not; '
  + 'see https://wiki.xen.org/wiki/PythonInXlConfig): remove the Python and write plain `key = value` lines';

function dequote(raw: string): { value: string } | { problem: string } {
  let out = '';
  for (let i = 1; i < raw.length - 1; i++) {
    const c = raw[i]!;
    if (c !== '\\') { out += c; continue; }
    const n = raw[++i]!;
    switch (n) {
      case '"': case '\'': case '\\': out += n; break;
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      default:
        if (n === 'x' || (n >= '0' && n <= '7')) {
          return { problem: `numeric escape \`\\${n}' in a quoted string is not supported (libxlu drops its value)` };
        }
        return { problem: `invalid character \`${n}' after backslash in quoted string` };
    }
  }
  return { value: out };
}

function lex(text: string): Token[] {
  const toks: Token[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const col = (at: number) => at - lineStart + 1;
  while (i < text.length) {
    const c = text[i]!;
    const start = i;
    if (c === ' ' || c === '\t' || (c === '\r' && text[i + 1] === '\n')) { i++; continue; }
    if (c === '\n' || c === '#') {
      // A comment runs to the end of the line and ends the statement like a newline does.
      if (c === '#') while (i < text.length && text[i] !== '\n') i++;
      toks.push({ kind: 'nl', text: '\n', line, column: col(start) });
      if (i < text.length) { i++; line++; lineStart = i; }
      continue;
    }
    if (c >= 'a' && c <= 'z') {
      while (i < text.length && /[_0-9a-z]/.test(text[i]!)) i++;
      toks.push({ kind: 'ident', text: text.slice(start, i), line, column: col(start) });
      continue;
    }
    if (c >= '0' && c <= '9') {
      while (i < text.length && /[0-9a-fx]/.test(text[i]!)) i++;
      toks.push({ kind: 'number', text: text.slice(start, i), line, column: col(start) });
      continue;
    }
    if (c === '\'' || c === '"') {
      i++;
      while (i < text.length && text[i] !== c && text[i] !== '\n') i += text[i] === '\\' && text[i + 1] !== '\n' ? 2 : 1;
      if (text[i] !== c) {
        toks.push({ kind: 'error', text: text.slice(start, i), line, column: col(start), problem: 'unterminated string' });
        continue;
      }
      i++;
      const raw = text.slice(start, i);
      const dq = dequote(raw);
      if ('problem' in dq) toks.push({ kind: 'error', text: raw, line, column: col(start), problem: dq.problem });
      else toks.push({ kind: 'string', text: raw, value: dq.value, line, column: col(start) });
      continue;
    }
    if (c === '+' && text[i + 1] === '=') {
      i += 2;
      toks.push({ kind: '+=', text: '+=', line, column: col(start) });
      continue;
    }
    if ('=;,[]'.includes(c)) {
      i++;
      toks.push({ kind: c as TokKind, text: c, line, column: col(start) });
      continue;
    }
    // libxlu: any other character starts a lexical error that swallows the rest of the word;
    // libxlu takes `+ - . ( ) :` as a sign of Python. We leave `-` out: it is far more often a
    // negative number, which xl reads only when quoted.
    while (i < text.length && !' \t\n'.includes(text[i]!)) i++;
    toks.push({
      kind: 'error', text: text.slice(start, i), line, column: col(start),
      problem: c === '-' ? 'lexical error (a negative number must be quoted, e.g. \'-1\')' : 'lexical error',
      likelyPython: '+.():'.includes(c),
    });
  }
  toks.push({ kind: 'eof', text: '', line, column: col(i) });
  return toks;
}

const PYTHON_KEYWORDS = new Set(['import', 'from', 'if', 'elif', 'else', 'for', 'while', 'def', 'try', 'except', 'with', 'print']);

class Parser {
  private p = 0;
  readonly settings: RawSetting[] = [];
  readonly errors: ConfigError[] = [];
  private looksPython = false;

  constructor(private readonly toks: Token[], private readonly file: string) {}

  private peek(): Token { return this.toks[this.p]!; }
  /** The end-of-file token is never stepped past, so a list left open at the end of the file
   * is reported (with its line) instead of reading beyond the tokens. */
  private next(): Token {
    const tok = this.toks[this.p]!;
    if (tok.kind !== 'eof') this.p++;
    return tok;
  }

  private fail(tok: Token, key: string | undefined, detail: string): never {
    throw new ConfigError({ file: this.file, line: tok.line, column: tok.column, key }, detail);
  }

  private describe(tok: Token): string {
    if (tok.kind === 'eof') return 'end of file';
    if (tok.kind === 'nl') return 'end of line';
    return `\`${tok.text}'`;
  }

  private unexpected(tok: Token, key: string | undefined, wanted: string): never {
    if (tok.kind === 'error') {
      if (tok.likelyPython) this.looksPython = true;
      this.fail(tok, key, `${tok.problem} near \`${tok.text}'`);
    }
    this.fail(tok, key, `syntax error: expected ${wanted}, found ${this.describe(tok)}`);
  }

  private skipNewlines(): void {
    while (this.peek().kind === 'nl') this.p++;
  }

  parseFile(): void {
    for (;;) {
      const tok = this.peek();
      if (tok.kind === 'eof') return;
      if (tok.kind === 'nl' || tok.kind === ';') { this.p++; continue; }
      try {
        this.statement();
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        this.errors.push(e);
        this.recover();
      }
    }
  }

  /** After an error: skip to the end of the statement, over whole bracketed lists. */
  private recover(): void {
    let depth = 0;
    for (;;) {
      const tok = this.peek();
      if (tok.kind === 'eof') return;
      if (tok.kind === 'error' && tok.likelyPython) this.looksPython = true;
      if (tok.kind === '[') depth++;
      if (tok.kind === ']' && depth > 0) depth--;
      this.p++;
      if ((tok.kind === 'nl' || tok.kind === ';') && depth === 0) return;
    }
  }

  private statement(): void {
    const keyTok = this.next();
    if (keyTok.kind !== 'ident') {
      if (keyTok.kind === 'error' && /^[A-Z]/.test(keyTok.text)) {
        this.fail(keyTok, undefined, `lexical error near \`${keyTok.text}': keys are lower case in xl config files`);
      }
      this.unexpected(keyTok, undefined, 'a setting name');
    }
    const key = keyTok.text;
    const opTok = this.next();
    if (opTok.kind !== '=' && opTok.kind !== '+=') {
      if (PYTHON_KEYWORDS.has(key)) {
        // The full explanation once; later Python lines just say what they are.
        const hint = this.looksPython ? 'which xl config files do not support' : PYTHON_HINT;
        this.looksPython = true;
        this.fail(keyTok, undefined, `\`${key}' is Python: ${hint}`);
      }
      this.unexpected(opTok, key, '`=\' or `+=\' after the setting name');
    }
    const value = this.value(key);
    const end = this.peek();
    if (end.kind !== 'nl' && end.kind !== ';' && end.kind !== 'eof') {
      this.unexpected(end, key, 'end of line or `;\' after the value');
    }
    this.store({ key, op: opTok.kind, value, line: keyTok.line, column: keyTok.column });
  }

  private value(key: string): RawValue {
    const tok = this.next();
    if (tok.kind === 'string' || tok.kind === 'number') {
      return {
        kind: 'string', value: tok.kind === 'string' ? tok.value! : tok.text,
        quoted: tok.kind === 'string', line: tok.line, column: tok.column,
      };
    }
    if (tok.kind === 'ident' && ['nl', ';', 'eof', ',', ']'].includes(this.peek().kind)) {
      this.fail(tok, key, `syntax error: found the bare word \`${tok.text}': strings must be quoted ("${tok.text}")`);
    }
    if (tok.kind !== '[') this.unexpected(tok, key, 'a value (a quoted string, a number or a [list])');
    const list: RawList = { kind: 'list', items: [], line: tok.line, column: tok.column };
    this.skipNewlines();
    for (;;) {
      if (this.peek().kind === ']') { this.p++; return list; }
      list.items.push(this.value(key));
      this.skipNewlines();
      const sep = this.next();
      if (sep.kind === ']') return list;
      if (sep.kind !== ',') this.unexpected(sep, key, '`,\' or `]\' in the list');
      this.skipNewlines();
    }
  }

  /** libxlu's xlu__cfg_set_store: `+=` joins with the latest earlier value of the key. */
  private store(s: RawSetting): void {
    if (s.op === '+=') {
      const prev = [...this.settings].reverse().find((x) => x.key === s.key);
      if (prev) {
        if (prev.value.kind !== s.value.kind) {
          throw new ConfigError({ file: this.file, line: s.value.line, column: s.value.column, key: s.key },
            'can\'t add [list] to "string" or vice versa');
        }
        if (prev.value.kind === 'string' && s.value.kind === 'string') {
          s = { ...s, value: { ...s.value, value: prev.value.value + s.value.value } };
        } else if (prev.value.kind === 'list' && s.value.kind === 'list') {
          s = { ...s, value: { ...s.value, items: [...prev.value.items, ...s.value.items] } };
        }
      }
    }
    this.settings.push(s);
  }

  finish(): void {
    if (this.looksPython && this.errors.length > 0 && !this.errors[0]!.detail.includes('PythonInXlConfig')) {
      // Say it once, on the first error, where the reader starts.
      const first = this.errors[0]!;
      this.errors[0] = new ConfigError(first, `${first.detail}; ${PYTHON_HINT}`);
    }
  }
}

/** Parses xl.cfg text. Throws ConfigError (carrying every error found) when the syntax is wrong. */
export function parseXlCfg(text: string, fileName: string): XlCfg {
  const parser = new Parser(lex(text), fileName);
  parser.parseFile();
  parser.finish();
  ConfigError.throwIfAny(parser.errors);
  return new XlCfg(fileName, parser.settings);
}
