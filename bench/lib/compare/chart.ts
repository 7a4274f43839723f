// A small SVG chart generator for the driver comparison: panels of grouped bars (one group
// per workload, one bar per configuration), log scale where values span decades, the value
// written on each bar. Bars may be split into segments (CPU time of dom0 / stub domain /
// guest). No dependencies; the output renders in browsers and with rsvg-convert.

export interface Segment {
  name: string;
  value: number;
}

export interface Bar {
  series: string;
  /** The bar's height (on a log panel: values <= 0 are drawn as a "0" mark). NaN: "n/a". */
  value: number;
  /** Text on top of the bar (default: the value, shortened). */
  text?: string;
  /** Parts of the bar (e.g. CPU of guest, dom0, stub domain): drawn as a cluster of thin bars
   * on the panel's scale, the bar's value (their total) as a dashed frame around them. */
  segments?: Segment[];
}

export interface Group {
  label: string;
  sub?: string;
  bars: Bar[];
}

export interface Panel {
  title: string;
  subtitle?: string;
  groups: Group[];
  log: boolean;
  /** Axis label. */
  unit: string;
  /** A horizontal reference line (e.g. 1 = native). */
  ref?: { value: number; label: string };
  height?: number;
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  series: { name: string; color: string; short: string }[];
  segments?: { name: string; color: string }[];
  panels: Panel[];
  footer?: string;
  width?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

/** 1234 -> "1.2k", 0.0123 -> "0.012". */
export function short(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(2)}M`;
  if (a >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(2)}k`;
  if (a >= 10) return `${Math.round(v)}`;
  if (a >= 1) return `${+v.toPrecision(2)}`;
  if (a === 0) return '0';
  return `${+v.toPrecision(2)}`;
}

function decadeLabel(e: number): string {
  const v = 10 ** e;
  if (e >= 3) return short(v);
  if (e >= 0) return String(v);
  return v.toFixed(-e);
}

function panelSvg(p: Panel, x0: number, y0: number, width: number, spec: ChartSpec): { svg: string; height: number } {
  const out: string[] = [];
  const height = p.height ?? 300;
  const top = y0 + (p.subtitle ? 46 : 30);
  const left = x0 + 62;
  const plotW = width - 62 - 10;
  const plotH = height - (top - y0) - 48;
  const bottom = top + plotH;
  out.push(`<text x="${x0}" y="${y0 + 16}" ${FONT} font-size="15" font-weight="bold" fill="#222">${esc(p.title)}</text>`);
  if (p.subtitle) out.push(`<text x="${x0}" y="${y0 + 34}" ${FONT} font-size="11.5" fill="#555">${esc(p.subtitle)}</text>`);

  const vals = p.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => Number.isFinite(v) && v > 0);
  let lo: number;
  let hi: number;
  if (p.log) {
    lo = Math.floor(Math.log10(Math.min(...vals, p.ref?.value ?? Infinity)));
    hi = Math.ceil(Math.log10(Math.max(...vals, p.ref?.value ?? 0)) + 0.15);
    if (hi <= lo) hi = lo + 1;
  } else {
    lo = 0;
    hi = Math.max(...vals, p.ref?.value ?? 0) * 1.15 || 1;
  }
  const y = (v: number) => (p.log ? bottom - ((Math.log10(v) - lo) / (hi - lo)) * plotH : bottom - (v / hi) * plotH);

  // Grid and axis.
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="#fafafa" stroke="#ccc"/>`);
  if (p.log) {
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e);
      out.push(`<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#ddd"/>`);
      out.push(`<text x="${left - 6}" y="${yy + 4}" ${FONT} font-size="11" text-anchor="end" fill="#444">${decadeLabel(e)}</text>`);
      if (e < hi) for (const k of [2, 5]) {
        const yk = y(k * 10 ** e);
        out.push(`<line x1="${left}" y1="${yk}" x2="${left + plotW}" y2="${yk}" stroke="#eee"/>`);
      }
    }
  } else {
    const step = 10 ** Math.floor(Math.log10(hi / 4));
    const s = hi / step > 20 ? step * 5 : hi / step > 8 ? step * 2 : step;
    for (let v = 0; v <= hi; v += s) {
      out.push(`<line x1="${left}" y1="${y(v)}" x2="${left + plotW}" y2="${y(v)}" stroke="#ddd"/>`);
      out.push(`<text x="${left - 6}" y="${y(v) + 4}" ${FONT} font-size="11" text-anchor="end" fill="#444">${short(v)}</text>`);
    }
  }
  out.push(`<text transform="translate(${x0 + 14},${top + plotH / 2}) rotate(-90)" ${FONT} font-size="11.5" text-anchor="middle" fill="#444">${esc(p.unit)}</text>`);

  const gw = plotW / p.groups.length;
  for (const [gi, g] of p.groups.entries()) {
    const gx = left + gi * gw;
    if (gi > 0) out.push(`<line x1="${gx}" y1="${top}" x2="${gx}" y2="${bottom}" stroke="#e4e4e4"/>`);
    const n = g.bars.length;
    const clustered = g.bars.some((b) => b.segments?.length);
    const bw = Math.min(clustered ? 66 : 34, (gw - 16) / n);
    const bx0 = gx + (gw - bw * n) / 2;
    for (const [bi, b] of g.bars.entries()) {
      const s = spec.series.find((x) => x.name === b.series);
      const color = s?.color ?? '#888';
      const bx = bx0 + bi * bw + 1.5;
      const w = bw - 3;
      const cx = bx + w / 2;
      if (!Number.isFinite(b.value)) {
        out.push(`<text x="${cx}" y="${bottom - 4}" ${FONT} font-size="9.5" text-anchor="middle" fill="#999">n/a</text>`);
        continue;
      }
      if (b.value <= 0 && p.log) {
        out.push(`<line x1="${bx}" y1="${bottom - 1}" x2="${bx + w}" y2="${bottom - 1}" stroke="${color}" stroke-width="3"/>`);
        out.push(`<text x="${cx}" y="${bottom - 6}" ${FONT} font-size="10" text-anchor="middle" fill="${color}" font-weight="bold">0</text>`);
        continue;
      }
      const yt = Math.max(top, y(b.value));
      const h = bottom - yt;
      const segs = b.segments ?? [];
      if (segs.length) {
        // A cluster of thin bars, one per part, on the same scale (a stack cannot be read on a
        // log axis); the config's colour frames the cluster, its total goes on top.
        const sw = (w - 2) / segs.length;
        for (const [si, sg] of segs.entries()) {
          const sc = spec.segments?.find((x) => x.name === sg.name)?.color ?? '#aaa';
          const sx = bx + 1 + si * sw;
          if (!(sg.value > 0) || (p.log && y(sg.value) >= bottom)) {
            out.push(`<line x1="${sx + 1}" y1="${bottom - 1}" x2="${sx + sw - 1}" y2="${bottom - 1}" stroke="${sc}" stroke-width="3"/>`);
            continue;
          }
          const sy = Math.max(top, y(sg.value));
          out.push(`<rect x="${sx + 0.5}" y="${sy}" width="${sw - 1}" height="${bottom - sy}" fill="${sc}"><title>${esc(`${b.series}: ${sg.name} ${short(sg.value)}`)}</title></rect>`);
        }
        out.push(`<rect x="${bx}" y="${yt}" width="${w}" height="${h}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="3,2"/>`);
      } else {
        out.push(`<rect x="${bx}" y="${yt}" width="${w}" height="${h}" fill="${color}"><title>${esc(`${b.series}: ${b.text ?? short(b.value)}`)}</title></rect>`);
      }
      const label = b.text ?? short(b.value);
      out.push(`<text x="${cx}" y="${yt - 4}" ${FONT} font-size="${label.length > 5 ? 8.5 : 10}" text-anchor="middle" fill="#222">${esc(label)}</text>`);
      if (segs.length) out.push(`<text x="${cx}" y="${bottom + 11}" ${FONT} font-size="9" text-anchor="middle" fill="${color}" font-weight="bold">${esc(s?.short ?? '')}</text>`);
    }
    const ly = bottom + (g.bars.some((b) => b.segments?.length) ? 25 : 16);
    out.push(`<text x="${gx + gw / 2}" y="${ly}" ${FONT} font-size="11.5" text-anchor="middle" fill="#222">${esc(g.label)}</text>`);
    if (g.sub) out.push(`<text x="${gx + gw / 2}" y="${ly + 13}" ${FONT} font-size="10" text-anchor="middle" fill="#666">${esc(g.sub)}</text>`);
  }
  if (p.ref && (!p.log || p.ref.value > 0)) {
    const yr = y(p.ref.value);
    out.push(`<line x1="${left}" y1="${yr}" x2="${left + plotW}" y2="${yr}" stroke="#555" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${left + plotW - 4}" y="${yr - 4}" ${FONT} font-size="10.5" text-anchor="end" fill="#555">${esc(p.ref.label)}</text>`);
  }
  return { svg: out.join('\n'), height };
}

export function renderChart(spec: ChartSpec): string {
  const width = spec.width ?? 1200;
  const parts: string[] = [];
  let y = 10;
  parts.push(`<text x="20" y="${y + 20}" ${FONT} font-size="20" font-weight="bold" fill="#111">${esc(spec.title)}</text>`);
  y += 28;
  if (spec.subtitle) {
    parts.push(`<text x="20" y="${y + 14}" ${FONT} font-size="12" fill="#555">${esc(spec.subtitle)}</text>`);
    y += 20;
  }
  // Legend.
  let lx = 20;
  y += 8;
  for (const s of spec.series) {
    parts.push(`<rect x="${lx}" y="${y}" width="14" height="14" fill="${s.color}"/>`);
    parts.push(`<text x="${lx + 19}" y="${y + 12}" ${FONT} font-size="12.5" fill="#222">${esc(s.name)}</text>`);
    lx += 30 + s.name.length * 7.5;
  }
  if (spec.segments?.length) {
    lx += 20;
    parts.push(`<text x="${lx}" y="${y + 12}" ${FONT} font-size="12" fill="#555">CPU:</text>`);
    lx += 36;
    for (const s of spec.segments) {
      parts.push(`<rect x="${lx}" y="${y}" width="14" height="14" fill="${s.color}"/>`);
      parts.push(`<text x="${lx + 19}" y="${y + 12}" ${FONT} font-size="12.5" fill="#222">${esc(s.name)}</text>`);
      lx += 30 + s.name.length * 7.5;
    }
  }
  y += 30;
  for (const p of spec.panels) {
    const r = panelSvg(p, 20, y, width - 40, spec);
    parts.push(r.svg);
    y += r.height + 14;
  }
  if (spec.footer) {
    parts.push(`<text x="20" y="${y + 6}" ${FONT} font-size="10.5" fill="#777">${esc(spec.footer)}</text>`);
    y += 18;
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}
