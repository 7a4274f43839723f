// Typed reads of xl.cfg settings, with libxlu's rules for what a value may be:
// every atom is text, so `memory = 1024` and `memory = '1024'` are the same; a number is read by
// strtol base 0 (0x10 = 16, 010 = 8); a `+=` setting can't be read as a number; a list where a
// single value is wanted (or the reverse) is wrong. libxlu only warns and ignores the setting in
// those cases, leaving a silent default; we make them errors naming file, line and key.

import { ConfigError } from './config-error.js';
import { parseXlLong } from '../../../common/c-strtol.js';
import type { RawSetting, RawString, XlCfg } from './xl-cfg-parser.js';

export class CfgReader {
  /** Keys some reader has looked at; the rest are unknown to us. */
  readonly consumed = new Set<string>();

  constructor(readonly cfg: XlCfg) {}

  setting(key: string): RawSetting | undefined {
    this.consumed.add(key);
    return this.cfg.get(key);
  }

  error(s: RawSetting | RawString, key: string, detail: string): ConfigError {
    return new ConfigError(this.cfg.pos(s, key), detail);
  }

  string(key: string): string | undefined {
    const s = this.setting(key);
    if (!s) return undefined;
    if (s.value.kind !== 'string') throw this.error(s, key, 'is a list but should be a single value');
    return s.value.value;
  }

  long(key: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const s = this.setting(key);
    if (!s) return undefined;
    if (s.value.kind !== 'string') throw this.error(s, key, 'is a list but should be a single value');
    if (s.op === '+=') throw this.error(s, key, 'can\'t use += with numbers');
    const r = parseXlLong(s.value.value);
    if ('error' in r) throw this.error(s, key, `\`${s.value.value}' ${r.error}`);
    if (r.value < min) throw this.error(s, key, `value \`${r.value}' is smaller than the minimum ${min}`);
    if (r.value > max) throw this.error(s, key, `value \`${r.value}' is greater than the maximum ${max}`);
    return r.value;
  }

  /** libxl_defbool from a number: 0 is false, anything else true (xlu_cfg_get_defbool). */
  bool(key: string): boolean | undefined {
    const v = this.long(key);
    return v === undefined ? undefined : v !== 0;
  }

  /** A list of single values; returns the items with their positions. */
  list(key: string): RawString[] | undefined {
    const s = this.setting(key);
    if (!s) return undefined;
    if (s.value.kind !== 'list') throw this.error(s, key, 'is a single value but should be a list');
    return s.value.items.map((item) => {
      if (item.kind !== 'string') throw new ConfigError(this.cfg.pos(item, key), 'a list inside this list is not allowed here');
      return item;
    });
  }

  /** Either form (xl tries a list first, then a string, e.g. for `cpus` and `serial`). */
  stringOrList(key: string): string | RawString[] | undefined {
    const s = this.setting(key);
    if (!s) return undefined;
    return s.value.kind === 'string' ? s.value.value : this.list(key);
  }
}
