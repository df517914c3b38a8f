import { InputError } from '../errors.ts';

/**
 * Instants at the edges are ISO 8601 with an explicit offset. A bare `2026-11-22T03:00:00` is refused:
 * JavaScript would read it in the machine's local zone, and a window shifted by hours loses or
 * duplicates rows.
 */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** Epoch milliseconds of an ISO instant; `field` names the input in the error. */
export function parseInstant(value: unknown, field: string): number {
  const ms = typeof value === 'string' && ISO_INSTANT.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms))
    throw new InputError(
      `${field}: ${JSON.stringify(value)} is not an instant; use ISO 8601 with a zone, such as 2026-11-22T03:00:00Z`,
      { field, value },
    );
  return ms;
}

/** Largest multiple of `unit` at or before `ms` (epoch-aligned, also before 1970). */
export function floorTo(ms: number, unit: number): number {
  return Math.floor(ms / unit) * unit;
}

/** An instant for people: ISO 8601 UTC, without milliseconds when they are zero. */
export function formatInstant(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

/** `[start, end)` for people: `2026-11-22T03:00:00Z to 04:00:00Z` when both fall on the same UTC day. */
export function formatSpan(start: number, end: number): string {
  const a = formatInstant(start);
  const b = formatInstant(end);
  return a.slice(0, 11) === b.slice(0, 11) ? `${a} to ${b.slice(11)}` : `${a} to ${b}`;
}

/** A duration in seconds for people: `5 min`, `1 h`, `1 d`, `90 s`. */
export function formatDuration(seconds: number): string {
  for (const [size, unit] of [
    [86_400, 'd'],
    [3600, 'h'],
    [60, 'min'],
  ] as const)
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
  return `${seconds} s`;
}
