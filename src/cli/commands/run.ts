import { runCycle } from '../../pipeline/local-runner.ts';
import { previewCycle } from '../../pipeline/preview.ts';
import type { CycleSummary } from '../../pipeline/publish-cycle.ts';
import type { Runtime } from '../../runtime/open.ts';
import { flag } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';
import { formatTable, humanDuration, singleLine } from '../output.ts';
import { observeCursorMoves } from '../progress.ts';
import { renderPreview, SELECT_OPTIONS, selection } from './plan.ts';

export type TableRun = {
  table: string;
  status: 'succeeded' | 'failed' | 'skipped';
  batches: number;
  rows: number;
  cursor: string | null;
  error: string | null;
  skipped: string | null;
};

export type RunReport = {
  cycleId: string | null;
  status: string;
  passes: number;
  seconds: number;
  rows: number;
  tables: TableRun[];
};

/**
 * A failed table's error as the cycle's state carries it is cut short (Step Functions state is
 * bounded); the watermark store recorded it whole. The stored one, when it is the same error.
 */
export function wholeError(shown: string, last: { name: string; message: string } | null): string {
  if (!last) return shown;
  const whole = `${last.name}: ${last.message}`;
  return whole.startsWith(shown.replace(/…$/, '')) ? whole : shown;
}

/** One line per configured table: what all passes of the cycle did to it, and where its cursor is now. */
export async function summarizeCycle(
  rt: Runtime,
  passes: CycleSummary[],
  seconds: number,
): Promise<RunReport> {
  const watermarks = new Map((await rt.watermarks.list()).map((w) => [w.table, w]));
  const last = passes.at(-1);
  const tables: TableRun[] = rt.config.tables.map((t) => {
    const outcomes = passes.flatMap((p) => p.tables.filter((o) => o.table === t.name));
    const failed = outcomes.find((o) => o.status === 'failed');
    const skip = last?.skipped.find((s) => s.table === t.name);
    return {
      table: t.name,
      status: failed ? 'failed' : outcomes.length ? 'succeeded' : 'skipped',
      batches: outcomes.reduce((n, o) => n + o.batches, 0),
      rows: outcomes.reduce((n, o) => n + o.rows, 0),
      cursor: watermarks.get(t.name)?.cursor ?? null,
      error: failed?.error ? wholeError(failed.error, watermarks.get(t.name)?.lastError ?? null) : null,
      skipped: outcomes.length === 0 && skip ? `${skip.reason}: ${skip.detail}` : null,
    };
  });
  return {
    cycleId: last?.cycleId ?? null,
    status: last?.status ?? 'succeeded',
    passes: passes.length,
    seconds,
    rows: tables.reduce((n, t) => n + t.rows, 0),
    tables,
  };
}

export function renderRun(report: RunReport): string {
  const failed = report.tables.filter((t) => t.error);
  return [
    `Cycle ${report.cycleId ?? '-'}: ${report.status}, ${report.rows} rows in ${report.passes} pass(es), ${humanDuration(report.seconds * 1000)}`,
    '',
    formatTable(
      ['table', 'result', 'batches', 'rows', 'cursor now', 'note'],
      report.tables.map((t) => [
        t.table,
        t.status,
        t.batches,
        t.rows,
        t.cursor,
        t.error ? 'error below' : t.skipped,
      ]),
    ),
    // Whole, below the table: the what-to-do ends the message, and a table cell would clip it.
    ...(failed.length
      ? ['', 'Errors:', ...failed.map((t) => `  ${t.table}: ${singleLine(t.error ?? '')}`)]
      : []),
  ].join('\n');
}

export const runCommand: Command = {
  name: 'run',
  summary: 'run one offload cycle now (all tables, or some), in this process',
  usage: '[--tables A,B] [--until ISO] [--dry-run] [--config PATH] [--json]',
  description: [
    'Runs one cycle against the configured servers by executing the same state machine definition that',
    'is deployed to AWS, in this process: plan (leases, reconcile), then bronze, silver, gold, each',
    'table in bounded batches, looping back while a backlog remains. A table leased by a running cycle',
    'is skipped, not waited on. --dry-run prints the plan instead (as `plan` does) and writes nothing.',
    'Exit code 1 when any table failed (the others still ran).',
  ].join('\n'),
  options: {
    ...SELECT_OPTIONS,
    'dry-run': { type: 'boolean', description: 'show what the cycle would do; write nothing' },
  },
  async run(args, ctx) {
    const { tables, until } = await selection(args, ctx);
    const input = { ...(tables ? { tables } : {}), ...(until ? { until } : {}) };
    if (flag(args, 'dry-run')) {
      const preview = await withRuntime(ctx, (rt) => previewCycle(rt, input));
      ctx.emit({ dryRun: true, ...preview });
      ctx.say(renderPreview(preview, 'Dry run: the cycle would do this'));
      return 0;
    }
    const report = await withRuntime(ctx, async (rt) => {
      const started = Date.now();
      const watermarks = observeCursorMoves(rt.watermarks, (m) => {
        if (m.outcome === 'committed') ctx.event({ event: 'batch-committed', ...m });
      });
      const { passes } = await runCycle({ ...rt, watermarks }, input);
      return summarizeCycle(rt, passes, (Date.now() - started) / 1000);
    });
    ctx.emit(report);
    ctx.say(renderRun(report));
    return report.tables.some((t) => t.status === 'failed') ? 1 : 0;
  },
};
