import { hostname } from 'node:os';
import { loadConfig, tableByName } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
import { type RepairResult, repairTable } from '../../hourly/repair.ts';
import { intOpt, stringOpt } from '../args.ts';
import { actorOf, type Command, withRuntime } from '../context.ts';
import { formatTable } from '../output.ts';

export function renderRepair(r: RepairResult): string {
  const lines = [`Repair of ${r.table}: ${r.status}`, r.detail];
  if (r.before.mismatches.length > 0)
    lines.push(
      '',
      'Hours the per-hour check flagged:',
      formatTable(
        ['hour', 'clickhouse rows', 'committed rows', 'values'],
        r.before.mismatches.map((m) => [
          m.hour,
          m.clickhouseRows,
          m.committedRows,
          m.clickhouseChecksum === m.committedChecksum ? 'same' : 'differ',
        ]),
      ),
    );
  if (r.status === 'repaired' || r.status === 'already-repaired')
    lines.push(
      '',
      r.after.mismatches.length === 0
        ? `Checked again: the ${r.after.checkedHours} checked hour(s) agree.`
        : `Checked again: ${r.after.mismatches.length} hour(s) still differ (rows arrived meanwhile?); run repair again.`,
    );
  return lines.join('\n');
}

export const repairCommand: Command = {
  name: 'repair',
  summary: 'offload rows the per-hour check found missing (back-dated rows, changed candles), exactly once',
  usage: '--table NAME [--hours N] [--config PATH] [--json]',
  description: [
    'Runs the per-hour check of the table (the closed hours below its watermark, the last N hours;',
    "default the table's hourlyCheckHours, 48) and, for the hours where ClickHouse holds other rows",
    'than were committed: appends the rows whose natural key Iceberg lacks (trades), or rewrites the',
    "hours' candles with ClickHouse's final values in one overwrite (candles). One Iceberg commit with",
    "a repair marker (k2.offload.kind=repair, k2.offload.repair-id), under the table's lease; then the",
    'check runs again. Rerunning is safe: a repair Iceberg already holds is recorded, not redone, and',
    'nothing to repair is a no-op. Exit 1 when hours still differ afterwards.',
  ].join('\n'),
  options: {
    table: { type: 'string', value: 'NAME', description: 'the table to repair (required)' },
    hours: {
      type: 'string',
      value: 'N',
      description: "hours back to check (default the table's hourlyCheckHours)",
    },
  },
  async run(args, ctx) {
    const name = stringOpt(args, 'table');
    if (!name) throw new InputError('repair needs --table NAME (k2-offload status names the table)', {});
    const hours = args.values.hours === undefined ? undefined : intOpt(args, 'hours', 48, 1, 24 * 90);
    const table = tableByName(await loadConfig(ctx.configPath), name);
    const holder = `repair by ${actorOf(args, ctx.io.env)} on ${hostname()} pid ${process.pid}`;
    const result = await withRuntime(ctx, (rt) =>
      repairTable(rt, table, {
        holder,
        ...(hours === undefined ? {} : { lookbackHours: hours }),
        ...(rt.s3 ? { s3: rt.s3 } : {}),
      }),
    );
    ctx.emit(result);
    ctx.say(renderRepair(result));
    return result.status === 'nothing-to-repair' || result.after.mismatches.length === 0 ? 0 : 1;
  },
};
