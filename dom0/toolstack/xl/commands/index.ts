// Loads every xl subcommand module so it registers itself in registry.ts. One import each.
export { extraCommands } from './registry.js';
