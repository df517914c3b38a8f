import { countRange } from '../../audit/range.ts';
import { loadConfig, tableByName } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
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
  /** Where Iceberg's newest offload marker ends: a reset below it is undone by the next cycle's reconcile. */
  icebergNewestEnd: string | null;
  warning: string | null;
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
    });
    const undone = action === 'reset' && iceEnd !== null && Date.parse(iceEnd) > Date.parse(to);
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
      warning: undone
        ? `Iceberg still holds rows up to ${iceEnd}: the next cycle reconciles this watermark forward to it (Iceberg is the truth). To re-offload, roll the Iceberg table back to a snapshot whose marker ends at ${to} first (docs/runbooks/procedures.md)`
        : null,
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
      ...(change.warning ? [`warning: ${change.warning}`] : []),
    ].join('\n'),
  );
  return 0;
}
