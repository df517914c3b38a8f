import { countRange } from '../../audit/range.ts';
import { loadConfig, tableByName } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
import { identString } from '../../iceberg/catalog.ts';
import { loadTable, newestMarker } from '../../iceberg/table.ts';
import { targetOf } from '../../pipeline/plan-cycle.ts';
import type { Runtime } from '../../runtime/open.ts';
import { flag, instantOpt, type Parsed, requireOpt, stringOpt } from '../args.ts';
import { actorOf, type Context, withRuntime } from '../context.ts';

export type WatermarkChange = {
  table: string;
  action: 'set' | 'reset';
  previousCursor: string;
  cursor: string;
  changed: boolean;
  actor: string;
  reason: string;
  /** `set`: rows ClickHouse holds in the skipped range that Iceberg does not (never offloaded after this). */
  skippedRows: number | null;
  /** Where Iceberg's newest offload marker ends (a reset below it is refused). */
  icebergNewestEnd: string | null;
};

async function icebergEnd(rt: Runtime, table: ReturnType<typeof tableByName>): Promise<string | null> {
  const ident = targetOf(table);
  if ((await rt.catalog.currentMetadataLocation(ident)) === undefined) return null;
  return newestMarker((await loadTable(rt, ident)).metadata)?.windowEnd ?? null;
}

/**
 * `watermark set` (forward) and `watermark reset` (backwards). Both are audited with actor and reason and
 * refused while a cycle holds the lease. `set` refuses to skip rows that ClickHouse has and Iceberg does
 * not unless forced; `reset` always needs --force and --reason.
 */
export async function changeWatermark(args: Parsed, ctx: Context, action: 'set' | 'reset'): Promise<number> {
  const command = `watermark ${action}`;
  const name = requireOpt(args, command, 'table', 'the table whose watermark moves');
  const to = instantOpt(args, 'to', ctx.io.clock());
  if (!to) throw new InputError(`--to is required (the new cursor, ISO 8601 with a zone)`, {});
  const force = flag(args, 'force');
  const given = stringOpt(args, 'reason')?.trim();
  if (action === 'reset' && (!force || !given))
    throw new InputError(
      `watermark reset of ${name} to ${to} refused: moving a watermark backwards re-offloads rows, so it needs both --force and --reason "why"; nothing was changed`,
      { table: name, to },
    );
  const actor = actorOf(args, ctx.io.env);
  const table = tableByName(await loadConfig(ctx.configPath), name);
  if (table.cursor.kind === 'closed_bucket' && Date.parse(to) % (table.cursor.intervalSeconds * 1000) !== 0)
    throw new InputError(
      `watermark ${action} of ${name} to ${to} refused: ${name} holds ${table.cursor.intervalSeconds}-second candles, and a cursor inside a candle would split it; give a candle boundary (a multiple of ${table.cursor.intervalSeconds} s since 1970-01-01T00:00:00Z, UTC)`,
      { table: name, to, intervalSeconds: table.cursor.intervalSeconds },
    );

  const change = await withRuntime(ctx, async (rt) => {
    await rt.watermarks.ensureTables([{ table: table.name, initialCursor: table.initialCursor }]);
    const current = (await rt.watermarks.get(name)).cursor;
    const delta = Date.parse(to) - Date.parse(current);
    const iceEnd = await icebergEnd(rt, table);
    if (action === 'set' && delta < 0)
      throw new InputError(
        `watermark set of ${name} to ${to} refused: that is before the current cursor ${current}; moving backwards is a reset (k2-offload watermark reset --force --reason ...)`,
        { table: name, to, current },
      );
    if (action === 'reset' && delta > 0)
      throw new InputError(
        `watermark reset of ${name} to ${to} refused: that is after the current cursor ${current}; moving forward is k2-offload watermark set`,
        { table: name, to, current },
      );
    // A reset below what Iceberg holds would be reconciled forward by the next cycle: it would mean
    // nothing. Re-offloading a range Iceberg holds starts with taking it out of Iceberg.
    if (action === 'reset' && iceEnd !== null && Date.parse(iceEnd) > Date.parse(to))
      throw new InputError(
        `watermark reset of ${name} to ${to} refused: Iceberg ${identString(targetOf(table))} still holds rows up to ${iceEnd}, so the next cycle would move the watermark forward again; roll the Iceberg table back to the snapshot whose offload marker ends at or before ${to} first (k2-offload watermark show --table ${name} lists them; docs/runbooks/procedures.md, "Watermark reset"), then reset; nothing was changed`,
        { table: name, to, icebergNewestEnd: iceEnd },
      );
    let skippedRows: number | null = null;
    if (action === 'set' && delta > 0) {
      // Rows below Iceberg's newest marker are already in Iceberg: only what lies past it is skipped.
      const from = iceEnd && Date.parse(iceEnd) > Date.parse(current) ? iceEnd : current;
      skippedRows = Date.parse(to) > Date.parse(from) ? await countRange(rt.clickhouse, table, from, to) : 0;
      if (skippedRows > 0 && !(force && given))
        throw new InputError(
          `watermark set of ${name} to ${to} refused: it would skip ${skippedRows} rows that ClickHouse holds in [${from}, ${to}) and Iceberg does not; offload them instead (k2-offload catch-up --table ${name} --until ${to}), or pass --force with --reason "why" to skip them for good`,
          { table: name, to, skippedRows },
        );
    }
    const reason = given || `watermark ${action} from the CLI`;
    const result = await rt.watermarks.setCursor({
      table: name,
      cursor: to,
      actor,
      reason,
      allowBackwards: action === 'reset',
      ...(skippedRows ? { skippedRows } : {}),
    });
    return {
      table: name,
      action,
      previousCursor: result.previousCursor,
      cursor: to,
      changed: result.changed,
      actor,
      reason,
      skippedRows,
      icebergNewestEnd: iceEnd,
    } satisfies WatermarkChange;
  });
  ctx.emit(change);
  ctx.say(
    [
      change.changed
        ? `${change.table}: watermark ${change.previousCursor} -> ${change.cursor} (${action} by ${actor}: ${change.reason})`
        : `${change.table}: watermark already at ${change.cursor}; nothing changed`,
      ...(change.skippedRows
        ? [`${change.skippedRows} rows in the skipped range will never be offloaded`]
        : []),
    ].join('\n'),
  );
  return 0;
}
