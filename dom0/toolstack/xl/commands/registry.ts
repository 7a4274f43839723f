// xl subcommands that live in their own files (network-*, block-* ...), by name.
export interface XlCommandContext {
  /** Ask dom0's toolstack. */
  call<T>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  out(s: string): void;
  /** xl -N: print what would be done, do nothing. */
  dryRun: boolean;
}

export type XlCommand = (argv: string[], ctx: XlCommandContext) => Promise<number>;

export const extraCommands: Record<string, XlCommand> = {};
