// A dependency-free SVG bar chart: one panel per figure, one horizontal bar per configuration, scaled to the
// panel's largest value; baselines grey, Pilot configurations coloured. Written to bench/results/*.svg.

export interface ChartBar {
  label: string;
  value: number | null;
  isBaseline: boolean;
}

export interface ChartPanel {
  title: string;
  unit: string;
  bars: ChartBar[];
}

const W = 960;
const LABEL_W = 230;
const VALUE_W = 120;
const BAR_H = 16;
const GAP = 4;
const PANEL_PAD = 34;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function renderChart(title: string, panels: ChartPanel[]): string {
  const parts: string[] = [];
  let y = 40;
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  for (const p of panels) {
    parts.push(`<text x="10" y="${y + 14}" font-size="13" font-weight="bold">${esc(p.title)} (${esc(p.unit)})</text>`);
    y += PANEL_PAD - 12;
    const max = Math.max(1e-9, ...p.bars.map((b) => (b.value !== null && Number.isFinite(b.value) ? b.value : 0)));
    const span = W - LABEL_W - VALUE_W - 20;
    for (const b of p.bars) {
      const v = b.value !== null && Number.isFinite(b.value) ? b.value : null;
      const w = v === null ? 0 : Math.max(1, (v / max) * span);
      parts.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 4}" text-anchor="end" font-size="11">${esc(b.label)}</text>`);
      parts.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${b.isBaseline ? '#9e9e9e' : '#1f77b4'}"/>`);
      parts.push(`<text x="${LABEL_W + w + 6}" y="${y + BAR_H - 4}" font-size="11">${v === null ? 'n/a' : fmt(v)}</text>`);
      y += BAR_H + GAP;
    }
    y += 14;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
