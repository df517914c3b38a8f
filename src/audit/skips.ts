import type { AuditRecord } from '../watermark/types.ts';

/** A range a forced `watermark set` moved past: its rows were left out of Iceberg on purpose. */
export type AuditedSkip = { from: string; to: string; actor: string; at: string; reason: string };

/**
 * The ranges the audit trail moved the watermark past leaving rows out (a forced set, which records how
 * many), oldest first. Other forward moves skipped nothing: rows missing there later are a mismatch. A
 * later move back (`watermark reset` or `rewind`) to X offloads everything from X again, so it cuts the
 * earlier skips at X.
 */
export function auditedSkips(trail: readonly AuditRecord[]): AuditedSkip[] {
  const oldestFirst = [...trail].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  let skips: AuditedSkip[] = [];
  for (const r of oldestFirst) {
    if (r.action === 'release') continue;
    const from = Date.parse(r.oldCursor);
    const to = Date.parse(r.newCursor);
    if (to < from) {
      skips = skips
        .filter((s) => Date.parse(s.from) < to)
        .map((s) => (Date.parse(s.to) > to ? { ...s, to: r.newCursor } : s));
    } else if (to > from && (r.skippedRows ?? 0) > 0) {
      skips.push({ from: r.oldCursor, to: r.newCursor, actor: r.actor, at: r.at, reason: r.reason });
    }
  }
  return skips;
}

/** The skips sharing some of [from, to): those the audit of that range lists and counts keys in. */
export function skipsWithin<S extends AuditedSkip>(skips: readonly S[], from: number, to: number): S[] {
  return skips.filter((s) => Date.parse(s.from) < to && Date.parse(s.to) > from);
}

export type Segment<S extends AuditedSkip = AuditedSkip> = { since: string; until: string; skip: S | null };

/** [from, to) cut where audited skips begin and end, in order; each part says the skip it lies in. */
export function splitBySkips<S extends AuditedSkip>(
  from: number,
  to: number,
  skips: readonly S[],
): Segment<S>[] {
  const cuts = new Set([from, to]);
  for (const s of skips)
    for (const at of [Date.parse(s.from), Date.parse(s.to)]) if (at > from && at < to) cuts.add(at);
  const points = [...cuts].sort((a, b) => a - b);
  return points.slice(1).map((until, i) => {
    const since = points[i] as number;
    const skip = skips.find((s) => Date.parse(s.from) <= since && Date.parse(s.to) >= until) ?? null;
    return { since: new Date(since).toISOString(), until: new Date(until).toISOString(), skip };
  });
}
