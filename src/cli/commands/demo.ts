import { mkdir } from 'node:fs/promises';
import { createDemoSchema } from '../../clickhouse/demo.ts';
import { generateTrades } from '../../clickhouse/demo-trades.ts';
import { loadConfig } from '../../config/load.ts';
import { identString } from '../../iceberg/catalog.ts';
import { liveDataFiles, loadTable } from '../../iceberg/table.ts';
import { runCycle } from '../../pipeline/local-runner.ts';
import { targetOf } from '../../pipeline/plan-cycle.ts';
import { previewCycle } from '../../pipeline/preview.ts';
import { lockHome } from '../../runtime/home.ts';
import type { Runtime } from '../../runtime/open.ts';
import { readSettings } from '../../runtime/settings.ts';
import { flag, intOpt, numberOpt } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';
import { formatTable, humanDuration } from '../output.ts';
import { runAudit } from './audit.ts';
import { assertNoNamedState, checkDemoTargets, resetDemoState } from './demo-state.ts';
import { wholeError } from './run.ts';

export type DemoTable = {
  table: string;
  iceberg: string;
  location: string | null;
  batches: number;
  rows: number;
  files: number;
  snapshotId: string | null;
  cursor: string | null;
  /** The independent check: rows ClickHouse holds below the watermark, rows chDB's Iceberg reader sees. */
  clickhouseRows: number;
  readerRows: number;
  missingKeys: number;
  duplicateKeys: number;
};

export type DemoReport = {
  generated: { rows: number; from: string; to: string };
  seedOnly: boolean;
  cycles: number;
  seconds: number;
  caughtUp: boolean;
  auditOk: boolean;
  warehouse: string;
  tables: DemoTable[];
};

async function icebergFacts(rt: Runtime, name: string) {
  const table = rt.config.tables.find((t) => t.name === name);
  if (!table) return { location: null, files: 0, snapshotId: null };
  const ident = targetOf(table);
  if ((await rt.catalog.currentMetadataLocation(ident)) === undefined)
    return { location: null, files: 0, snapshotId: null };
  const { metadata } = await loadTable(rt, ident);
  return {
    location: metadata.location,
    files: (await liveDataFiles(rt.store, metadata)).length,
    snapshotId: metadata['current-snapshot-id']?.toString() ?? null,
  };
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'seed demo trades into embedded ClickHouse, offload until caught up, check with a second reader',
  usage: '[--rows N] [--hours H] [--late-fraction F] [--seed N] [--keep] [--seed-only] [--force] [--json]',
  description: [
    'Runs the whole pipeline on a laptop with nothing installed: embedded ClickHouse (chDB) with the',
    'hot-tier schema (3 bronze trade tables, silver, 6 candle tables fed by materialized views), an',
    'embedded Postgres under K2_HOME, and a local warehouse folder (WAREHOUSE, default ./warehouse).',
    'It generates trades over the last H hours (some arriving late), runs cycles until no table has a',
    'batch left, prints what each table got, and checks every table with an independent reader',
    "(ClickHouse's own Iceberg reader against ClickHouse itself).",
    'By default it first removes its own earlier state (K2_HOME engines, the tables in the warehouse), so',
    'a rerun starts clean; --keep adds to it instead. Refused when CLICKHOUSE_URL, DATABASE_URL, an s3://',
    'warehouse or the Glue catalog are set, unless --force (then nothing on those servers is deleted).',
  ].join('\n'),
  options: {
    rows: {
      type: 'string',
      value: 'N',
      description: 'trades to generate over all exchanges (default 200000)',
    },
    hours: { type: 'string', value: 'H', description: 'span of the trades, ending now (default 6)' },
    'late-fraction': {
      type: 'string',
      value: 'F',
      description: 'share of trades arriving late (default 0.02)',
    },
    seed: { type: 'string', value: 'N', description: 'random seed: same seed, same trades (default 1)' },
    'max-cycles': { type: 'string', value: 'N', description: 'give up after N cycles (default 20)' },
    keep: { type: 'boolean', description: 'keep earlier demo state instead of starting clean' },
    'seed-only': {
      type: 'boolean',
      description: 'only generate the trades; offload them yourself (run, catch-up)',
    },
    force: { type: 'boolean', description: 'run even though CLICKHOUSE_URL / DATABASE_URL / ... are set' },
  },
  async run(args, ctx) {
    const rows = intOpt(args, 'rows', 200_000, 0, 100_000_000);
    const hours = numberOpt(args, 'hours', 6, 0.1, 24 * 6);
    const lateFraction = numberOpt(args, 'late-fraction', 0.02, 0, 1);
    const seed = intOpt(args, 'seed', 1, 0, 2 ** 31);
    const maxCycles = intOpt(args, 'max-cycles', 20, 1, 1000);
    const settings = readSettings(ctx.io.env);
    const config = await loadConfig(ctx.configPath);
    const named = checkDemoTargets(settings, flag(args, 'force'));
    const started = Date.now();
    // The reset deletes the embedded engines' data: never under a command that is using them.
    const embedded = !settings.clickhouseUrl || !settings.databaseUrl;
    if (embedded) await mkdir(settings.home, { recursive: true });
    const unlock = embedded ? await lockHome(settings.home, 'demo', { wait: false }) : async () => {};
    try {
      if (!flag(args, 'keep')) {
        await assertNoNamedState(settings);
        await resetDemoState(settings, config);
      }
    } catch (error) {
      await unlock();
      throw error;
    }
    if (named.length) ctx.say(`Using ${named.join(', ')} as set in the environment (--force).`);

    const report = await withRuntime(
      ctx,
      async (rt): Promise<DemoReport> => {
        await createDemoSchema(rt.clickhouse);
        const generated = await generateTrades(rt.clickhouse, {
          rows,
          spanHours: hours,
          end: rt.clock(),
          lateFraction,
          seed,
        });
        ctx.say(`Generated ${rows} trades from ${generated.from} to ${generated.to}; offloading...`);
        // A fixed bound: chasing a `now - lateness` that moves while cycles run would end in 1-second
        // batches. Tables with a longer lateness (candles) stay below it by their own cap.
        const lateness = Math.min(...rt.config.tables.map((t) => t.latenessSeconds));
        const until = new Date(rt.clock().getTime() - lateness * 1000).toISOString();
        const done = new Map<string, { batches: number; rows: number }>();
        let cycles = 0;
        let caughtUp = false;
        if (flag(args, 'seed-only')) caughtUp = false;
        while (!flag(args, 'seed-only') && cycles < maxCycles) {
          const preview = await previewCycle(rt, { until });
          if (preview.tables.every((t) => t.batches.length === 0 && !t.reconcile)) {
            caughtUp = true;
            break;
          }
          const { passes } = await runCycle(rt, { until });
          cycles++;
          for (const o of passes.flatMap((p) => p.tables)) {
            const d = done.get(o.table) ?? { batches: 0, rows: 0 };
            done.set(o.table, { batches: d.batches + o.batches, rows: d.rows + o.rows });
          }
          const failed = passes.flatMap((p) => p.tables).find((o) => o.status === 'failed');
          if (failed) {
            const last = (await rt.watermarks.get(failed.table)).lastError;
            const error = failed.error ? wholeError(failed.error, last) : 'unknown error';
            ctx.io.stderr.write(`k2-offload demo: ${failed.table} failed: ${error}\n`);
            break;
          }
        }
        // Every row so far, not only the generated span: late trades fall before it, and so do their candles.
        const audit = await runAudit(rt, { hours: Math.ceil(hours) + 1, since: new Date(0).toISOString() });
        const cursors = new Map((await rt.watermarks.list()).map((w) => [w.table, w.cursor]));
        const tables: DemoTable[] = [];
        for (const table of rt.config.tables) {
          const checked = audit.tables.find((a) => a.table === table.name);
          tables.push({
            table: table.name,
            iceberg: identString(targetOf(table)),
            ...(await icebergFacts(rt, table.name)),
            batches: done.get(table.name)?.batches ?? 0,
            rows: done.get(table.name)?.rows ?? 0,
            cursor: cursors.get(table.name) ?? null,
            clickhouseRows: checked?.totals.expectedRows ?? 0,
            readerRows: checked?.totals.icebergRows ?? 0,
            missingKeys: (checked?.totals.missingKeys ?? 0) + (checked?.totals.extraKeys ?? 0),
            duplicateKeys: checked?.totals.duplicateKeys ?? 0,
          });
        }
        return {
          generated: { rows, from: generated.from, to: generated.to },
          seedOnly: flag(args, 'seed-only'),
          cycles,
          seconds: (Date.now() - started) / 1000,
          caughtUp,
          auditOk: audit.ok,
          warehouse: rt.warehouse,
          tables,
        };
      },
      { createHome: true },
    ).finally(unlock);
    ctx.emit(report);
    ctx.say(renderDemo(report));
    return (report.caughtUp || flag(args, 'seed-only')) && report.auditOk ? 0 : 1;
  },
};

export function renderDemo(r: DemoReport): string {
  if (r.seedOnly)
    return [
      `Nothing offloaded (--seed-only). ClickHouse data is under the K2_HOME folder, Iceberg will be under ${r.warehouse}.`,
      'Try: k2-offload plan | k2-offload catch-up --table bronze_trades_binance | k2-offload run | k2-offload status',
    ].join('\n');
  return [
    '',
    formatTable(
      ['table', 'iceberg table', 'batches', 'rows', 'files', 'snapshot', 'watermark'],
      r.tables.map((t) => [t.table, t.iceberg, t.batches, t.rows, t.files, t.snapshotId, t.cursor]),
    ),
    '',
    `${r.caughtUp ? 'Every table is caught up' : 'NOT caught up'} after ${r.cycles} cycle(s); ${humanDuration(r.seconds * 1000)} in all.`,
    `Iceberg tables are under ${r.warehouse} (<namespace>/<table>/metadata and data).`,
    '',
    "Independent check, ClickHouse's own Iceberg reader (chDB icebergLocal) on each table's current metadata:",
    ...r.tables.map(
      (t) =>
        `  ${t.iceberg}: reader sees ${t.readerRows} rows, ClickHouse has ${t.clickhouseRows} below the watermark: ${
          t.readerRows === t.clickhouseRows && t.missingKeys === 0 && t.duplicateKeys === 0
            ? 'same'
            : `DIFFERENT (${t.missingKeys} keys missing or extra, ${t.duplicateKeys} duplicated)`
        }`,
    ),
    r.auditOk ? 'Audit: zero missing and zero duplicate keys.' : 'Audit: MISMATCH (see k2-offload audit).',
    'Next: k2-offload status | k2-offload watermark show | k2-offload audit --verbose',
  ].join('\n');
}
