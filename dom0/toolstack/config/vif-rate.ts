// The vif `rate=` syntax, computed exactly as libxlu's xlu_vif_parse_rate() (libxlu_vif.c):
//   RATE      ^[0-9]+[GMK]?[Bb]/s$   G/M/K are decimal (10^9, 10^6, 10^3) and upper case only;
//             B = bytes, b = bits (divided by 8, rounding down). The number is read by strtoull
//             base 0, so a leading 0 means octal; 0 or more than 2^32-1 is "rate overflow".
//   INTERVAL  ^[0-9]+[mu]?s?$        s or no unit = seconds, m = milliseconds, u = microseconds;
//             default 50ms; 0 or more than 2^32-1 us is "replenishment interval overflow".
//   bytes per interval = bytes_per_sec * interval_usecs / 1000000 (rounding down).
// So `10Mb/s@20ms` = 1,250,000 B/s -> 25000 bytes every 20000 us, and `1MB/s@20ms` -> 20000 bytes
// (the example in xl-network-configuration.5).

import { cStrto } from '../../../common/c-strtol.js';

export interface VifRate {
  rate_bytes_per_interval: number;
  rate_interval_usecs: number;
}

export class VifRateError extends Error {
  constructor(readonly problem: string, readonly text: string) {
    super(`${problem} in \`${text}'`);
    this.name = 'VifRateError';
  }
}

const UINT32_MAX = 0xffffffffn;
const DEFAULT_INTERVAL_USECS = 50_000n;

function bytesPerSec(text: string): bigint {
  if (!/^[0-9]+[GMK]?[Bb]\/s$/.test(text)) throw new VifRateError('invalid rate', text);
  const n = cStrto(text, 0, true);
  let v = n.value;
  if (v === 0n || v > UINT32_MAX || n.overflow) throw new VifRateError('rate overflow', text);
  const unit = text[n.end];
  if (unit === 'G') v *= 1_000_000_000n;
  else if (unit === 'M') v *= 1_000_000n;
  else if (unit === 'K') v *= 1_000n;
  if (unit === 'b' || text[n.end + 1] === 'b') v /= 8n;
  return v;
}

function intervalUsecs(text: string): bigint {
  if (!/^[0-9]+[mu]?s?$/.test(text)) throw new VifRateError('invalid replenishment interval', text);
  const n = cStrto(text, 0, true);
  let v = n.value;
  if (v === 0n || v > UINT32_MAX || n.overflow) throw new VifRateError('replenishment interval overflow', text);
  const unit = text[n.end];
  if (unit === 's' || unit === undefined) v *= 1_000_000n;
  else if (unit === 'm') v *= 1_000n;
  if (v > UINT32_MAX) throw new VifRateError('replenishment interval overflow', text);
  return v;
}

/** Parses `<RATE>/s[@<INTERVAL>]`; throws VifRateError with libxlu's wording. */
export function parseVifRate(rate: string): VifRate {
  const at = rate.indexOf('@');
  const ratePart = at < 0 ? rate : rate.slice(0, at);
  if (ratePart === '') throw new VifRateError('no rate specified', rate);
  const perSec = bytesPerSec(ratePart);
  const usecs = at < 0 ? DEFAULT_INTERVAL_USECS : intervalUsecs(rate.slice(at + 1));
  const perInterval = (perSec * usecs) / 1_000_000n;
  // libxl keeps a uint64; past 2^53 a JS number would be wrong, and no link runs at exabytes/s.
  if (perInterval > BigInt(Number.MAX_SAFE_INTEGER)) throw new VifRateError('rate too large for xenode', rate);
  return { rate_bytes_per_interval: Number(perInterval), rate_interval_usecs: Number(usecs) };
}
