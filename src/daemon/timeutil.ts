// moby api/types/time GetTimestamp: the `since`/`until` forms dockerd accepts —
// Unix seconds ("1700000000", "1700000000.5"), Go durations relative to now
// ("10m", "1h30m"), and RFC 3339 / date-only times ("2024-01-02", "2024-01-02T15:04:05Z").
import { invalidArgument } from '../errors/index.js';

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

function parseGoDuration(s: string): number | undefined {
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let i = 0;
  let total = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    i = 1;
  }
  if (i >= s.length) return undefined;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
    i = re.lastIndex;
  }
  return neg ? -total : total;
}

/** Seconds since the epoch (fractional) for a since/until value; `now` in ms. */
export function parseTimestamp(value: string, now = Date.now()): number {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = parseGoDuration(v);
  if (d !== undefined) return (now - d * 1000) / 1000;
  let t = Number.NaN;
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) t = Date.parse(`${v}T00:00:00`);
  else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(v)) t = Date.parse(v);
  else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/.test(v)) t = Date.parse(v);
  if (Number.isNaN(t)) {
    throw invalidArgument(`failed to parse value as time or duration: "${value}"`);
  }
  // sub-millisecond digits are lost by Date.parse; keep them for ordering
  const frac = /\.(\d+)/.exec(v.slice(19))?.[1];
  return frac && frac.length > 3 ? Math.floor(t / 1000) + Number(`0.${frac}`) : t / 1000;
}
