import { cursorRange } from '../clickhouse/inspect.ts';
import type { TableConfig } from '../config/schema.ts';
import { LeaseError } from '../errors.ts';
import type { Watermark } from '../watermark/types.ts';
import type { PipelineDeps } from './deps.ts';

/**
 * A watermark no batch and no one has moved (every move counts a version). Whether another cycle's
 * lease is live is the store's to judge, by its own clock: it refuses the move then (LeaseError).
 */
const untouched = (w: Watermark) => w.version === 0;

/**
 * Where a table's first offload starts, when that is after its stored cursor: at its oldest row in
 * ClickHouse rather than at the configured initial cursor (1970 by default), since nothing can arrive
 * below the oldest ingestion time and a 50-year empty backlog would otherwise be walked an hour at a
 * time; an empty table at its current bound (now minus lateness), below which no row can still arrive.
 * Only for a watermark that never moved; undefined otherwise.
 */
export async function firstOffloadStart(
  deps: PipelineDeps,
  table: TableConfig,
  w: Watermark | undefined,
  now: number,
): Promise<{ cursor: string; reason: string } | undefined> {
  const cursor = w?.cursor ?? new Date(table.initialCursor).toISOString();
  if (w && !untouched(w)) return undefined;
  const range = await cursorRange(deps.clickhouse, table);
  const step = (table.cursor.kind === 'closed_bucket' ? table.cursor.intervalSeconds : 1) * 1000;
  const start =
    Math.floor((range ? Date.parse(range.min) : now - table.latenessSeconds * 1000) / step) * step;
  if (start <= Date.parse(cursor)) return undefined;
  const at = new Date(start).toISOString();
  return {
    cursor: at,
    reason: range
      ? `first offload: the oldest row in ClickHouse has ${table.cursor.column} ${range.min}`
      : `first offload: the table is empty, rows can only arrive after ${at}`,
  };
}

/**
 * Moves each never-offloaded table's watermark to where its first offload starts, audited. This runs
 * before the leases are taken, so another cycle can get in between the read and the move: lease the
 * table (refused here: leased), or, while this process stalled, make the move and offload past it
 * (refused: backwards). That cycle made the move itself, so this one leaves the table to it instead
 * of failing the whole cycle; a refusal of a watermark still untouched is passed on.
 */
export async function startAtOldestRow(deps: PipelineDeps, tables: TableConfig[], now: number) {
  for (const table of tables) {
    const start = await firstOffloadStart(deps, table, await deps.watermarks.get(table.name), now);
    if (!start) continue;
    try {
      await deps.watermarks.setCursor({
        table: table.name,
        ...start,
        actor: 'k2-offload',
        allowBackwards: false,
      });
    } catch (error) {
      // Leased by another holder, whatever the clocks say: not this cycle's to move.
      if (error instanceof LeaseError) continue;
      if (untouched(await deps.watermarks.get(table.name))) throw error;
    }
  }
}
