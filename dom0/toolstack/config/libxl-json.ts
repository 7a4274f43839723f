// libxl's JSON text, byte for byte: libxl__object_to_json() drives a yajl generator with
// yajl_gen_beautify on and yajl's default four-space indent. Its quirks are part of what users see
// in `xl -N ...` and `xl create -n`:
//   - `"key": value` (colon and one space), one member per line;
//   - an empty map or array prints as `{`, an empty line, then the closing brace (yajl writes the
//     newline after `{` and another before `}`);
//   - the finished document ends with a newline;
//   - strings escape `"` `\` and control characters (\b \f \n \r \t, others as \u00XX upper-case);
//     `/` and non-ASCII are left alone.
// Objects keep insertion order because libxl prints fields in IDL order.

export type LibxlJson = string | number | bigint | boolean | null | LibxlJson[] | LibxlMap;

/** An ordered JSON object (libxl prints fields in libxl_types.idl order, not sorted). */
export class LibxlMap {
  readonly entries: Array<[string, LibxlJson]> = [];

  /** Adds a member; `undefined` means "at its default", which libxl leaves out. */
  set(key: string, value: LibxlJson | undefined): this {
    if (value !== undefined) this.entries.push([key, value]);
    return this;
  }
}

function encodeString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20) out += `\\u00${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

const INDENT = '    ';

function emit(v: LibxlJson, depth: number): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return encodeString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`libxl JSON holds integers only, got ${v}`);
    return String(v);
  }
  if (typeof v === 'bigint') return v.toString();
  const inner = INDENT.repeat(depth + 1);
  const close = INDENT.repeat(depth);
  if (Array.isArray(v)) {
    const items = v.map((x) => inner + emit(x, depth + 1));
    return `[\n${items.join(',\n')}\n${close}]`;
  }
  const members = v.entries.map(([k, x]) => `${inner}${encodeString(k)}: ${emit(x, depth + 1)}`);
  return `{\n${members.join(',\n')}\n${close}}`;
}

/** The text libxl's <type>_to_json() returns, final newline included. */
export function libxlJsonText(v: LibxlJson): string {
  return emit(v, 0) + '\n';
}

/** libxl_defbool in JSON: the strings "True" / "False" (unset defbools are left out). */
export function defbool(b: boolean | undefined): string | undefined {
  return b === undefined ? undefined : b ? 'True' : 'False';
}
