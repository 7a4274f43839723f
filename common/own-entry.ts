// Lookups in tables keyed by names a peer sends (hypercall names, toolstack commands, shutdown
// reasons, image formats). A plain object literal also "has" every name it inherits -
// `constructor`, `__proto__`, `toString`, `hasOwnProperty` - so `table[name]` would hand a
// peer Object.prototype's functions. These helpers see only the table's own entries.

/** The entry `key` names in `table`, or undefined when `key` is not one of its own names. */
export function ownEntry<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === 'string' && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

/** Is `key` one of `table`'s own names (narrows it to the table's key type)? */
export function isOwnKey<K extends string>(table: Readonly<Record<K, unknown>>, key: unknown): key is K {
  return typeof key === 'string' && Object.prototype.hasOwnProperty.call(table, key);
}
