import { type MarkerEntry, recentMarkers } from '../../audit/range.ts';
import { loadConfig, selectTables } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
import { loadTable } from '../../iceberg/table.ts';
import { describeHolder } from '../../pipeline/health.ts';
import { targetOf } from '../../pipeline/plan-cycle.ts';
import type { AuditRecord, RunRecord, Watermark } from '../../watermark/types.ts';
import { intOpt, type Parsed, stringOpt } from '../args.ts';
import { type Command, type Context, withRuntime } from '../context.ts';
import { formatTable, singleLine } from '../output.ts';
import { changeWatermark } from './watermark-change.ts';
import { releaseWatermarkLease, rewindWatermark } from './watermark-repair.ts';

export type WatermarkView = {
  watermarks: Array<Watermark & { icebergMarkers: MarkerEntry[] }>;
  history: RunRecord[];
  audit: AuditRecord[];
};

async function show(args: Parsed, ctx: Context): Promise<number> {
  const name = stringOpt(args, 'table');
  const limit = intOpt(args, 'limit', 10, 1, 1000);
  const config = await loadConfig(ctx.configPath);
  const tables = selectTables(config, name ? [name] : undefined);
  const view = await withRuntime(ctx, async (rt): Promise<WatermarkView> => {
    const stored = new Map((await rt.watermarks.list()).map((w) => [w.table, w]));
    const watermarks = [];
    for (const table of tables) {
      const w = stored.get(table.name);
      if (!w) continue;
      const ident = targetOf(table);
      const exists = (await rt.catalog.currentMetadataLocation(ident)) !== undefined;
      const markers = exists ? recentMarkers((await loadTable(rt, ident)).metadata, name ? limit : 1) : [];
      watermarks.push({ ...w, icebergMarkers: markers });
    }
    const filter = name ? { table: name } : {};
    const known = name ? stored.has(name) : true;
    return {
      watermarks,
      history: known ? await rt.watermarks.history({ ...filter, limit }) : [],
      audit: known ? await rt.watermarks.audit({ ...filter, limit }) : [],
    };
  });
  ctx.emit(view);
  const lines = [
    formatTable(
      ['table', 'cursor', 'status', 'last success', 'last rows', 'failures', 'lease', 'iceberg newest end'],
      view.watermarks.map((w) => [
        w.table,
        w.cursor,
        w.status,
        w.lastSuccessAt,
        w.lastRows,
        w.consecutiveFailures,
        w.lease ? `${describeHolder(w.lease)} since ${w.lease.startedAt} until ${w.lease.expiresAt}` : null,
        w.icebergMarkers[0]?.windowEnd,
      ]),
    ),
  ];
  if (view.watermarks.length === 0) lines.push('(no watermark rows yet: the first cycle creates them)');
  for (const w of view.watermarks.filter((x) => x.lastError))
    lines.push(`${w.table}: last error ${w.lastError?.name}: ${singleLine(w.lastError?.message ?? '')}`);
  if (name && view.watermarks[0]?.icebergMarkers.length)
    lines.push(
      '',
      `Iceberg offload markers of ${name}, newest first:`,
      formatTable(
        ['snapshot id', 'committed at', 'batch id', 'window start', 'window end', 'rows'],
        (view.watermarks[0]?.icebergMarkers ?? []).map((m) => [
          m.snapshotId,
          m.committedAt,
          m.batchId,
          m.windowStart,
          m.windowEnd,
          m.rows,
        ]),
      ),
    );
  lines.push(
    '',
    'Recent runs, newest first:',
    view.history.length
      ? formatTable(
          ['at', 'table', 'outcome', 'window start', 'window end', 'rows', 'files', 'ms', 'note / error'],
          view.history.map((r) => [
            r.recordedAt,
            r.table,
            r.outcome,
            r.windowStart,
            r.windowEnd,
            r.rows,
            r.files,
            r.durationMs,
            r.error ? `${r.error.name}: ${r.error.message}` : r.note,
          ]),
        )
      : '  (none)',
    '',
    'Audit trail of manual changes, newest first:',
    view.audit.length
      ? formatTable(
          ['at', 'table', 'action', 'from', 'to', 'backwards', 'skipped rows', 'actor', 'reason'],
          view.audit.map((a) => [
            a.at,
            a.table,
            a.action,
            a.oldCursor,
            a.newCursor,
            a.backwards,
            a.skippedRows,
            a.actor,
            a.reason,
          ]),
        )
      : '  (none)',
  );
  ctx.say(lines.join('\n'));
  return 0;
}

const ACTIONS = ['show', 'set', 'reset', 'rewind', 'release'] as const;

export const watermarkCommand: Command = {
  name: 'watermark',
  summary: 'show, set, reset or rewind a table watermark, or release a stuck lease, audited',
  usage: 'show|set|reset|rewind|release [--table NAME] [--to ISO] [--force] [--reason TEXT] [--actor NAME]',
  description: [
    'show   cursors, status, failures, last error, lease, the newest Iceberg markers (with --table: the',
    '       recent ones, to pick a rollback point), recent runs and the audit trail of manual changes.',
    'set    move a watermark forward (--table, --to). Refused when it would skip rows that ClickHouse',
    '       holds and Iceberg does not (says how many) unless --force with --reason.',
    'reset  move a watermark backwards to re-offload a range: needs --force and --reason. Refused while',
    '       Iceberg still holds the range (roll the table back first, then use rewind).',
    'rewind move a watermark back to the newest batch Iceberg holds (--table, --reason), after its',
    '       catalog moved back (a restore, a rollback): the gap is offloaded again, once.',
    'release free a stuck lease (--table, --reason) whose holder died; refused while the holder runs',
    '       on this host. A new lease token fences the old holder out.',
    'Every change is refused while a cycle holds the lease and is audited with actor ($USER or',
    '--actor) and reason.',
  ].join('\n'),
  options: {
    table: { type: 'string', value: 'NAME', description: 'the table (required for set and reset)' },
    to: { type: 'string', value: 'ISO', description: 'the new cursor, ISO 8601 with a zone' },
    force: { type: 'boolean', description: 'allow skipping rows (set) or moving backwards (reset)' },
    reason: { type: 'string', value: 'TEXT', description: 'why, for the audit trail' },
    actor: { type: 'string', value: 'NAME', description: 'who, for the audit trail (default $USER)' },
    limit: {
      type: 'string',
      value: 'N',
      description: 'show: how many runs, markers and audit rows (default 10)',
    },
  },
  maxPositionals: 1,
  actions: ACTIONS,
  async run(args, ctx) {
    const action = args.positionals[0];
    if (!action || !(ACTIONS as readonly string[]).includes(action))
      throw new InputError(
        `${action ? `unknown action ${JSON.stringify(action)}` : 'an action is required'}; use ${ACTIONS.join(', ')} (see k2-offload watermark --help)`,
        { value: action },
      );
    if (action === 'show') return show(args, ctx);
    if (action === 'rewind') return rewindWatermark(args, ctx);
    if (action === 'release') return releaseWatermarkLease(args, ctx);
    return changeWatermark(args, ctx, action as 'set' | 'reset');
  },
};
