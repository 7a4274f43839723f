// C's strtol/strtoul number reading, because xl reads every number with them and their quirks are
// visible to users: base 0 means "0x10" is 16 and "010" is 8 (octal), leading blanks and a sign are
// allowed, and whatever follows the digits is left for the caller to judge.

export interface CNumber {
  /** The value read (0 when no digits were found). */
  value: bigint;
  /** Index just past the last character consumed; 0 when nothing was read (C's `ep == str`). */
  end: number;
  /** True when the digits did not fit (C sets errno = ERANGE). */
  overflow: boolean;
}

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);
const ULONG_MAX = (1n << 64n) - 1n;

function digitValue(ch: string): number {
  const c = ch.toLowerCase();
  if (c >= '0' && c <= '9') return c.charCodeAt(0) - 48;
  if (c >= 'a' && c <= 'z') return c.charCodeAt(0) - 87;
  return 99;
}

/** Reads digits as C does; `unsigned` gives strtoul's wrap-around of negatives and its limits. */
export function cStrto(text: string, base: 0 | 8 | 10 | 16, unsigned: boolean): CNumber {
  let i = 0;
  while (i < text.length && ' \t\n\v\f\r'.includes(text[i]!)) i++;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') {
    negative = text[i] === '-';
    i++;
  }
  let radix = base;
  if ((radix === 0 || radix === 16) && text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X')
      && digitValue(text[i + 2] ?? '') < 16) {
    i += 2;
    radix = 16;
  } else if (radix === 0) {
    radix = text[i] === '0' ? 8 : 10;
  }
  const start = i;
  let value = 0n;
  while (i < text.length && digitValue(text[i]!) < radix) {
    value = value * BigInt(radix) + BigInt(digitValue(text[i]!));
    i++;
  }
  if (i === start) return { value: 0n, end: 0, overflow: false };
  let overflow = false;
  if (unsigned) {
    if (value > ULONG_MAX) { overflow = true; value = ULONG_MAX; }
    else if (negative) value = (ULONG_MAX + 1n - value) & ULONG_MAX;
  } else {
    const signed = negative ? -value : value;
    if (signed > LONG_MAX) { overflow = true; value = LONG_MAX; }
    else if (signed < LONG_MIN) { overflow = true; value = LONG_MIN; }
    else value = signed;
  }
  return { value, end: i, overflow };
}

/**
 * xlu_cfg_get_long's acceptance rule: the whole string must be one C long in base 0.
 * Returns the number, or a message saying why not (libxlu's wording).
 */
export function parseXlLong(text: string): { value: number } | { error: string } {
  const n = cStrto(text, 0, false);
  if (n.overflow) return { error: 'could not be parsed as a number: Numerical result out of range' };
  if (n.end === 0 || n.end !== text.length) return { error: 'is not a valid number' };
  if (n.value > BigInt(Number.MAX_SAFE_INTEGER) || n.value < BigInt(Number.MIN_SAFE_INTEGER)) {
    return { error: 'is too large for xenode (more than 2^53)' };
  }
  return { value: Number(n.value) };
}

/** xl's parse_ulong (strtoul base 10; fails when nothing is read or on ULONG_MAX). */
export function parseXlUlong(text: string): number | undefined {
  const n = cStrto(text, 10, true);
  if (n.end === 0 || n.value === ULONG_MAX) return undefined;
  if (n.value > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(n.value);
}
