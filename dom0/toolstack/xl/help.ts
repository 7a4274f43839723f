// xl's help texts, as help() in tools/xl/xl.c prints them on stdout: the list of subcommands,
// or one command's usage line, description and options.
import { CMD_TABLE, cmdtableLookup, type CmdSpec } from './cmdtable.js';

/** `xl help`: Xen's layout, listing the subcommands this xl runs (`runs`), in Xen's order. */
export function fullHelp(runs: (name: string) => boolean, extra: readonly CmdSpec[] = []): string {
  let s = 'Usage xl [-vfNtT] <subcommand> [args]\n\nxl full list of subcommands:\n\n';
  for (const c of [...CMD_TABLE.filter((c) => runs(c.name)), ...extra]) {
    s += ` ${c.name.padEnd(19)} `;
    if (c.name.length > 19) s += `\n ${''.padEnd(19)} `;
    s += `${c.desc}\n`;
  }
  return s;
}

/** `xl help CMD`, `xl CMD -h`: "Usage: xl [-vtT<f><N>] CMD USAGE\n\nDESC.\n\nOptions:..." */
export function specHelp(c: CmdSpec): string {
  let s = `Usage: xl [-vtT${c.modifies ? 'f' : ''}${c.canDryrun ? 'N' : ''}] ${c.name} ${c.usage}\n\n${c.desc}.\n\n`;
  if (c.options !== undefined) s += `Options:\n\n${c.options}\n`;
  return s;
}

const extraSpecs = new Map<string, CmdSpec>();

/** Commands xenode adds to Xen's set (network-stats ...) get help the same way. */
export function registerSpec(c: CmdSpec): void {
  extraSpecs.set(c.name, c);
}

export function findSpec(name: string): CmdSpec | undefined {
  return extraSpecs.get(name) ?? cmdtableLookup(name);
}

export function extraSpecList(): CmdSpec[] {
  return [...extraSpecs.values()];
}

export function cmdHelp(command: string): string {
  const c = findSpec(command);
  return c ? specHelp(c) : `command "${command}" not implemented\n`;
}
