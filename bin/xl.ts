#!/usr/bin/env node
// The `xl` command (see dom0/toolstack/xl/xl.ts).
import { xl, UsageError } from '../dom0/toolstack/xl/xl.js';
import { ConfigError } from '../dom0/toolstack/config/config-error.js';

xl(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || e instanceof ConfigError) process.stderr.write(`${(e as Error).message}\n`);
    else process.stderr.write(`xl: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
