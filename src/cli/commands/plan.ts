import { loadConfig, selectTables } from '../../config/load.ts';
import { type CyclePreview, previewCycle } from '../../pipeline/preview.ts';
import { instantOpt, listOpt, type OptionSpecs, type Parsed } from '../args.ts';
import { type Command, type Context, withRuntime } from '../context.ts';
import { formatTable } from '../output.ts';

export const SELECT_OPTIONS: OptionSpecs = {
  tables: { type: 'string', value: 'A,B', description: 'only these tables (comma-separated); default: all' },
  until: {
    type: 'string',
    value: 'ISO',
    description: 'plan no window past this instant (ISO 8601 with a zone, not in the future)',
  },
};

/** `--tables` and `--until`, checked before anything is opened: a bad value writes nothing. */
export async function selection(args: Parsed, ctx: Context) {
  const tables = listOpt(args, 'tables');
  const until = instantOpt(args, 'until', ctx.io.clock());
  if (tables) selectTables(await loadConfig(ctx.configPath), tables);
  return { tables, until };
}

export function renderPreview(preview: CyclePreview, title: string): string {
  const shown = preview.tables.filter((t) => t.skip?.reason !== 'not-selected');
  const rows = shown.map((t) => {
    const first = t.batches[0];
    const last = t.batches.at(-1);
    const estimated = t.batches.every((b) => b.estimatedRows !== null)
      ? t.batches.reduce((n, b) => n + (b.estimatedRows ?? 0), 0)
      : null;
    const why = t.skip ? `${t.skip.reason}: ${t.skip.detail}` : '';
    const reconcile = [
      t.firstOffloadFrom ? `first offload: starts at the oldest row, ${t.firstOffloadFrom}; ` : '',
      t.reconcile ? `reconciles from ${t.reconcile.from} first; ` : '',
      t.schemaChanges.length ? `Iceberg schema first: ${t.schemaChanges.join(', ')}; ` : '',
    ].join('');
    return [
      t.table,
      t.cursor,
      t.batches.length,
      first && last ? `${first.windowStart} -> ${last.windowEnd}` : null,
      estimated,
      `${reconcile}${why}` || null,
    ];
  });
  const total = preview.tables.reduce((n, t) => n + t.batches.length, 0);
  return [
    `${title} (now ${preview.now}${preview.until ? `, until ${preview.until}` : ''})`,
    '',
    formatTable(['table', 'cursor', 'batches', 'windows', 'est. rows', 'why no batch / notes'], rows),
    '',
    total === 0
      ? 'Nothing to offload now.'
      : `${total} batch(es) in this pass${preview.more ? '; more would follow in loop-back passes' : ''}.`,
  ].join('\n');
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'what the next cycle would do, per table, and why a table gets no batch (read-only)',
  usage: '[--tables A,B] [--until ISO] [--config PATH] [--json]',
  description: [
    'Plans a cycle from the current watermarks, leases and Iceberg markers exactly as the cycle does,',
    'without taking a lease or writing anything. Per table: where its cursor is, the batches (windows and',
    'estimated rows) of the next pass, or why it gets none: up-to-date, waiting-for-upstream (silver after',
    'bronze, gold after silver), bucket-open (a candle closes later), leased (a running cycle holds it),',
    'not-selected. A table whose Iceberg marker is ahead of its watermark is reconciled first.',
  ].join('\n'),
  options: SELECT_OPTIONS,
  async run(args, ctx) {
    const { tables, until } = await selection(args, ctx);
    const preview = await withRuntime(ctx, (rt) => previewCycle(rt, { tables, until }));
    ctx.emit(preview);
    ctx.say(renderPreview(preview, 'Next cycle'));
    return 0;
  },
};
