import { loadConfig, tableByName } from '../../config/load.ts';
import { reachableBound } from '../../pipeline/health.ts';
import { runCycle } from '../../pipeline/local-runner.ts';
import { previewCycle } from '../../pipeline/preview.ts';
import { instantOpt, intOpt, requireOpt } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';
import { humanDuration, progressBar } from '../output.ts';
import { observeCursorMoves } from '../progress.ts';
import { wholeError } from './run.ts';

export type CatchUpReport = {
  table: string;
  from: string;
  cursor: string;
  target: string;
  cycles: number;
  batches: number;
  rows: number;
  seconds: number;
  caughtUp: boolean;
  stoppedBecause: string;
};

export const catchUpCommand: Command = {
  name: 'catch-up',
  summary: 'run cycles for one table until it has caught up, with progress',
  usage: '--table NAME [--until ISO] [--max-cycles N] [--config PATH] [--json]',
  description: [
    'Runs cycles for one table until the plan has no batch left for it: its cursor reaches now minus',
    'the lateness (candles: the last closed bucket) as of the start, or --until. Each pass offloads',
    'bounded batches in order, so memory stays flat whatever the backlog. On a terminal a progress bar',
    'shows the cursor moving toward that bound; otherwise one line per cycle.',
    'Exit code 1 when a cycle fails for the table, another cycle holds its lease, or it waits for an',
    'upstream table (silver for bronze, gold for silver) that is further behind: catch that one up first.',
  ].join('\n'),
  options: {
    table: { type: 'string', value: 'NAME', description: 'the table to catch up (required)' },
    until: { type: 'string', value: 'ISO', description: 'stop at this instant instead of now' },
    'max-cycles': { type: 'string', value: 'N', description: 'stop after N cycles (default 100)' },
  },
  async run(args, ctx) {
    const name = requireOpt(args, 'catch-up', 'table', 'the table to catch up');
    const until = instantOpt(args, 'until', ctx.io.clock());
    const maxCycles = intOpt(args, 'max-cycles', 100, 1, 10_000);
    const table = tableByName(await loadConfig(ctx.configPath), name);
    const started = Date.now();
    const report = await withRuntime(ctx, async (rt) => {
      // The bound is fixed when the catch-up starts: chasing a moving `now - lateness` never ends.
      const bound = Math.min(reachableBound(table, rt.clock()), until ? Date.parse(until) : Infinity);
      const input = { tables: [name], until: new Date(bound).toISOString() };
      const first = (await previewCycle(rt, input)).tables.find((t) => t.table === name);
      const from = first?.cursor ?? table.initialCursor;
      const target = new Date(Math.max(bound, Date.parse(from))).toISOString();
      const span = Date.parse(target) - Date.parse(from);
      const bar = progressBar(ctx.io.stdout as NodeJS.WriteStream, name);
      const showBar = !ctx.json && ctx.io.stdout.isTTY === true;
      let cursor = from;
      let movedRows = 0;
      const move = (c: string, rows = 0) => {
        cursor = c;
        movedRows += rows;
        if (showBar) bar.update(Date.parse(c) - Date.parse(from), span, { rows: movedRows, note: c });
      };
      const deps = {
        ...rt,
        watermarks: observeCursorMoves(rt.watermarks, (m) => {
          if (m.table === name) move(m.cursor, m.rows);
          // On a terminal the bar shows the progress; a line per batch would break it.
          if (m.outcome === 'committed' && (!showBar || ctx.logFormat === 'json'))
            ctx.event({ event: 'batch-committed', ...m });
        }),
      };
      let cycles = 0;
      let batches = 0;
      let rows = 0;
      let stoppedBecause = `stopped after --max-cycles ${maxCycles}`;
      let caughtUp = false;
      let failed = false;
      move(from);
      while (cycles < maxCycles) {
        const next = (await previewCycle(rt, input)).tables.find((t) => t.table === name);
        if (next && next.batches.length === 0 && !next.reconcile) {
          // Waiting for upstream is not caught up: the table cannot pass its inputs, catch those up first.
          caughtUp = next.skip?.reason === 'up-to-date' || next.skip?.reason === 'bucket-open';
          failed = !caughtUp;
          stoppedBecause = next.skip ? `${next.skip.reason}: ${next.skip.detail}` : 'nothing to offload';
          break;
        }
        const { passes } = await runCycle(deps, input);
        cycles++;
        const outcomes = passes.flatMap((p) => p.tables.filter((t) => t.table === name));
        batches += outcomes.reduce((n, o) => n + o.batches, 0);
        rows += outcomes.reduce((n, o) => n + o.rows, 0);
        const failure = outcomes.find((o) => o.status === 'failed');
        if (!showBar && !ctx.json)
          ctx.say(`cycle ${cycles}: ${outcomes.reduce((n, o) => n + o.rows, 0)} rows, cursor ${cursor}`);
        if (failure) {
          failed = true;
          const last = (await rt.watermarks.get(name)).lastError;
          stoppedBecause = `cycle failed: ${failure.error ? wholeError(failure.error, last) : 'unknown error'}`;
          break;
        }
      }
      if (showBar) bar.done();
      const now = (await rt.watermarks.get(name)).cursor;
      return {
        report: {
          table: name,
          from,
          cursor: now,
          target,
          cycles,
          batches,
          rows,
          seconds: (Date.now() - started) / 1000,
          caughtUp,
          stoppedBecause,
        } satisfies CatchUpReport,
        failed,
      };
    });
    ctx.emit(report.report);
    const r = report.report;
    ctx.say(
      [
        `${r.table}: ${r.caughtUp ? 'caught up' : 'not caught up'}; cursor ${r.from} -> ${r.cursor} (bound ${r.target})`,
        `${r.cycles} cycle(s), ${r.batches} batch(es), ${r.rows} rows in ${humanDuration(r.seconds * 1000)}`,
        `why it stopped: ${r.stoppedBecause}`,
      ].join('\n'),
    );
    return report.failed || !r.caughtUp ? 1 : 0;
  },
};
