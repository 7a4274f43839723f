// The one error type of the configuration parsers: every problem names where it was found,
// printed as `FILE:LINE: KEY: message` (libxlu prints `FILE:LINE: ...` too; the key is ours,
// because "which setting?" is the first question a user asks).

/** Where a piece of configuration came from. line/column are 1-based; 0 means unknown. */
export interface SourcePos {
  file: string;
  line: number;
  column: number;
  /** The setting (xl.cfg key) the problem belongs to, when known. */
  key?: string;
}

/** Specs given on a command line (`xl block-attach`) have no file: libxlu says "command line". */
export const COMMAND_LINE: SourcePos = { file: 'command line', line: 0, column: 0 };

export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly key: string | undefined;
  /** The message without the position prefix. */
  readonly detail: string;
  /** When several problems were collected: all of them (this error is the first). */
  readonly errors: readonly ConfigError[];

  constructor(pos: SourcePos, detail: string, errors?: readonly ConfigError[]) {
    const self = formatConfigMessage(pos, detail);
    const all = errors && errors.length > 1 ? errors : undefined;
    super(all ? all.map((e) => e.message).join('\n') : self);
    this.name = 'ConfigError';
    this.file = pos.file;
    this.line = pos.line;
    this.column = pos.column;
    this.key = pos.key;
    this.detail = detail;
    this.errors = all ?? [this];
  }

  /** Throws nothing when the list is empty; one error as itself; several as one carrying all. */
  static throwIfAny(errors: readonly ConfigError[]): void {
    if (errors.length === 0) return;
    if (errors.length === 1) throw errors[0];
    const first = errors[0]!;
    throw new ConfigError(first, first.detail, errors);
  }
}

/** `FILE:LINE: KEY: message`, leaving out the parts that are unknown. */
export function formatConfigMessage(pos: SourcePos, detail: string): string {
  const where = pos.line > 0 ? `${pos.file}:${pos.line}` : pos.file;
  return pos.key ? `${where}: ${pos.key}: ${detail}` : `${where}: ${detail}`;
}

/** A non-fatal finding (xl prints these as warnings and goes on). */
export interface ConfigWarning {
  file: string;
  line: number;
  key?: string;
  message: string;
}

export function formatWarning(w: ConfigWarning): string {
  return `warning: ${formatConfigMessage({ file: w.file, line: w.line, column: 0, key: w.key }, w.message)}`;
}
