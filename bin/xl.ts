#!/usr/bin/env node
// The `xl` command (see dom0/toolstack/xl/xl.ts). Whatever goes wrong, the user gets a message
// and an exit status, never a stack trace: xl's own exits (XlExit: message, help, code), config
// errors (file:line), the toolstack's refusals, and anything unforeseen ("xl: <message>").
import { xl, XlExit } from '../dom0/toolstack/xl/xl.js';
import { ConfigError } from '../dom0/toolstack/config/config-error.js';

/** 128 + SIGPIPE: what the shell reports for a C xl whose reader went away. */
const EXIT_SIGPIPE = 141;

// `xl list | grep -q x`, `xl ... | head -1`: the reader left; stop quietly, as a C program
// killed by SIGPIPE does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT_SIGPIPE);
    process.exit(1);
  });
}

function report(e: unknown): number {
  if (e instanceof XlExit) {
    if (e.message) process.stderr.write(`${e.message}\n`);
    if (e.stdout) process.stdout.write(e.stdout);
    return e.code;
  }
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
    return 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`xl: ${message}\n`);
  return 1;
}

/** Exit once stdout has taken everything written to it (a pipe may still be draining). */
function exitAfterFlush(code: number): void {
  if (process.stdout.writableLength === 0) process.exit(code);
  process.stdout.once('drain', () => process.exit(code));
}

process.on('uncaughtException', (e) => exitAfterFlush(report(e)));
process.on('unhandledRejection', (e) => exitAfterFlush(report(e)));

xl(process.argv.slice(2)).then(exitAfterFlush, (e: unknown) => exitAfterFlush(report(e)));
