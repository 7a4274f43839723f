// Loads every xl subcommand module so it registers itself in registry.ts. One import each.
import './block.js';
import './network.js';
import './lifecycle.js';
import './query.js';
import './tuning.js';
import './refused.js';
import './saverestore.js';
import './hvm-controls.js';
import './top.js';
import './vncviewer.js';
export { extraCommands } from './registry.js';
