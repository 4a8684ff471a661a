/** Parsing of the duration and size strings annotations and Canary fields carry. */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** parseDurationMs reads Go-style durations ("500ms", "5s", "1m30s"); null when malformed. */
export function parseDurationMs(text: string): number | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 32) return null;
  let rest = text;
  let total = 0;
  while (rest.length > 0) {
    const m = DURATION.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

const SIZE = /^(\d+)([kmg]?)$/i;
const SIZE_FACTOR: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** parseSizeBytes reads nginx-style sizes ("0", "512k", "10m", "1g"); null when malformed. */
export function parseSizeBytes(text: string): number | null {
  const m = typeof text === 'string' ? SIZE.exec(text) : null;
  if (!m) return null;
  return Number(m[1]) * SIZE_FACTOR[m[2]!.toLowerCase()]!;
}
