// Loads every device kind so it registers itself (see device-kinds.ts). One import per kind.
import './vbd.js';
import './vif.js';
export {};
