/**
 * How a window becomes files: cut into consecutive cursor slices of at most `maxRows` rows (from a
 * histogram of the window), each slice written by one statement into one file per partition it holds.
 * A slice reads only its own cursor range, so a big window is read once, not once per file; and a
 * statement holds at most one slice of rows, so memory does not grow with the window. A single bucket
 * with more than `maxRows` rows (a burst inside a few milliseconds) is split further by a hash of the key.
 * The same histogram says how many rows each slice's files must hold, so checking the written files
 * needs their footers only, not another read of the window.
 */
export type BucketCount = { bucket: number; key: string[]; rows: number };

export type StageStatement = {
  /** Cursor range of the slice, ISO instants, half-open. */
  start: string;
  end: string;
  /** This statement's share of the slice's rows (hash of the key modulo `of`). */
  share: { part: number; of: number };
  /** Partitions present in the slice, in order; file `firstFile + i` holds `keys[i]`. */
  keys: string[][];
  /** Rows of `keys[i]` in the whole slice, all shares together: what the slice's files must hold. */
  rows: number[];
  firstFile: number;
};

/** Buckets of about 1/2048 of the window, whole milliseconds: fine enough to cut slices near `maxRows`. */
export function bucketMillis(windowStartMs: number, windowEndMs: number): number {
  return Math.max(1, Math.ceil((windowEndMs - windowStartMs) / 2048));
}

export function planStatements(
  counts: readonly BucketCount[],
  window: { startMs: number; endMs: number; bucketMs: number },
  maxRows: number,
): StageStatement[] {
  type Slice = { from: number; rows: number; keys: Map<string, { key: string[]; rows: number }> };
  const slices: Slice[] = [];
  const byBucket = new Map<number, BucketCount[]>();
  for (const c of counts) byBucket.set(c.bucket, [...(byBucket.get(c.bucket) ?? []), c]);
  for (const bucket of [...byBucket.keys()].sort((a, b) => a - b)) {
    const entries = byBucket.get(bucket) as BucketCount[];
    const rows = entries.reduce((sum, e) => sum + e.rows, 0);
    let slice = slices.at(-1);
    if (!slice || (slice.rows > 0 && slice.rows + rows > maxRows)) {
      slice = { from: slices.length === 0 ? 0 : bucket, rows: 0, keys: new Map() };
      slices.push(slice);
    }
    slice.rows += rows;
    for (const e of entries) {
      const id = JSON.stringify(e.key);
      const seen = slice.keys.get(id);
      if (seen) seen.rows += e.rows;
      else slice.keys.set(id, { key: e.key, rows: e.rows });
    }
  }
  const instant = (ms: number) => new Date(Math.min(ms, window.endMs)).toISOString();
  const statements: StageStatement[] = [];
  let firstFile = 0;
  slices.forEach((slice, i) => {
    const next = slices[i + 1];
    const start = instant(window.startMs + slice.from * window.bucketMs);
    const end = next ? instant(window.startMs + next.from * window.bucketMs) : instant(window.endMs);
    const sorted = [...slice.keys.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, k]) => k);
    const keys = sorted.map((k) => k.key);
    const rows = sorted.map((k) => k.rows);
    const of = Math.max(1, Math.ceil(slice.rows / maxRows));
    for (let part = 0; part < of; part++) {
      statements.push({ start, end, share: { part, of }, keys, rows, firstFile });
      firstFile += keys.length;
    }
  });
  return statements;
}
