// xl subcommands that live in their own files (network-*, block-* ...), by name. A command
// Xen's xl has gets Xen's help and -N rule from cmdtable.ts; one of xenode's own registers its
// help text with registerSpec (help.ts).
export interface XlCommandContext {
  /** Ask dom0's toolstack. */
  call<T>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  out(s: string): void;
  /** xl -N: print what would be done, do nothing. */
  dryRun: boolean;
  /** xl -f (force_execution). */
  force?: boolean;
}

export type XlCommand = (argv: string[], ctx: XlCommandContext) => Promise<number>;

export const extraCommands: Record<string, XlCommand> = {};
