import { loadConfig, selectTables } from '../../config/load.ts';
import type { TableConfig } from '../../config/schema.ts';
import { identString } from '../../iceberg/catalog.ts';
import { compactTable, planCompaction } from '../../iceberg/maintenance/compact.ts';
import { expireSnapshots, snapshotsToExpire } from '../../iceberg/maintenance/expire.ts';
import { DEFAULT_ORPHAN_GRACE_MS, removeOrphanFiles } from '../../iceberg/maintenance/orphans.ts';
import { liveDataFiles, loadTable } from '../../iceberg/table.ts';
import { icebergDeps } from '../../pipeline/deps.ts';
import { targetOf } from '../../pipeline/plan-cycle.ts';
import type { Runtime } from '../../runtime/open.ts';
import { flag, intOpt, numberOpt, stringOpt } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';
import { formatTable } from '../output.ts';

export type TableMaintenance = {
  table: string;
  iceberg: string;
  result: 'done' | 'would-do' | 'skipped';
  note: string | null;
  compactedPartitions: number;
  compactedFiles: number;
  expiredSnapshots: number;
  orphanFiles: number;
};

const leasedNote = (lease: { holder: string; expiresAt: string }, prefix = '') =>
  `${prefix}leased by ${lease.holder} until ${lease.expiresAt}; try again after that cycle`;

const DAY_MS = 86_400_000;
/** Unreferenced files younger than this may belong to a commit in flight: the one default for every caller. */
const DEFAULT_GRACE_DAYS = DEFAULT_ORPHAN_GRACE_MS / DAY_MS;

type Limits = { expireBefore: number; orphanBefore: number; targetFileRows: number; dryRun: boolean };

async function maintainTable(rt: Runtime, table: TableConfig, limits: Limits): Promise<TableMaintenance> {
  const ident = targetOf(table);
  const base = { table: table.name, iceberg: identString(ident) };
  const none = { compactedPartitions: 0, compactedFiles: 0, expiredSnapshots: 0, orphanFiles: 0 };
  if ((await rt.catalog.currentMetadataLocation(ident)) === undefined)
    return { ...base, ...none, result: 'skipped', note: 'no Iceberg table yet' };
  const deps = icebergDeps(rt);
  if (limits.dryRun) {
    // The real run takes the lease first: a table a cycle holds now would be skipped, so say so.
    const lease = (await rt.watermarks.get(table.name))?.lease;
    if (lease && Date.parse(lease.expiresAt) > rt.clock().getTime())
      return { ...base, ...none, result: 'skipped', note: leasedNote(lease, 'would skip: ') };
    const { metadata } = await loadTable(rt, ident);
    const groups = planCompaction(await liveDataFiles(rt.store, metadata), {
      targetFileRows: limits.targetFileRows,
    });
    const expired = snapshotsToExpire(metadata, { olderThanMs: limits.expireBefore, retainLast: 1 });
    const orphans = await removeOrphanFiles(deps, {
      table: ident,
      olderThanMs: limits.orphanBefore,
      dryRun: true,
    });
    return {
      ...base,
      result: 'would-do',
      note: null,
      compactedPartitions: groups.length,
      compactedFiles: groups.reduce((n, g) => n + g.files.length, 0),
      expiredSnapshots: expired.size,
      orphanFiles: orphans.orphans.length,
    };
  }
  // Like a cycle, maintenance holds the table's lease: it never runs beside an offload of the table.
  const holder = `maintain-${rt.clock().toISOString()}`;
  await rt.watermarks.ensureTables([{ table: table.name, initialCursor: table.initialCursor }]);
  const lease = await rt.watermarks.acquireLease(table.name, holder, rt.leaseSeconds);
  if (!lease.acquired)
    return {
      ...base,
      ...none,
      result: 'skipped',
      note: leasedNote(lease),
    };
  try {
    const compacted = await compactTable(deps, {
      table: ident,
      targetFileRows: limits.targetFileRows,
      clickhouse: rt.clickhouse,
      ...(rt.s3 ? { s3: rt.s3 } : {}),
    });
    const expired = await expireSnapshots(deps, {
      table: ident,
      olderThanMs: limits.expireBefore,
      retainLast: 1,
    });
    const orphans = await removeOrphanFiles(deps, { table: ident, olderThanMs: limits.orphanBefore });
    const failed = expired.failedDeletes.length + orphans.failedDeletes.length;
    return {
      ...base,
      result: 'done',
      note: failed ? `${failed} file(s) could not be deleted; the next run retries them` : null,
      compactedPartitions: compacted.partitions,
      compactedFiles: compacted.removedFiles,
      expiredSnapshots: expired.expiredSnapshotIds.length,
      orphanFiles: orphans.deleted,
    };
  } finally {
    await rt.watermarks.releaseLease(table.name, lease.token);
  }
}

export const maintainCommand: Command = {
  name: 'maintain',
  summary: 'compact small files, expire old snapshots, remove orphan files (per table, under its lease)',
  usage: '[--table NAME] [--dry-run] [--expire-days N] [--orphan-grace-days N] [--target-file-rows N]',
  description: [
    'For each Iceberg table (or --table), holding the table lease as a cycle does:',
    '- compacts partitions with two or more files under --target-file-rows rows into one file (one',
    '  replace snapshot that carries the newest offload marker forward);',
    '- expires snapshots older than --expire-days, always keeping the current one and every snapshot back',
    "  to the newest offload marker (the cycle's reconcile reads it);",
    '- removes files under the table that no metadata refers to and that are older than',
    '  --orphan-grace-days (younger ones may belong to a commit in flight).',
    'A table leased by a running cycle is skipped. --dry-run reports what would be done and changes nothing.',
  ].join('\n'),
  options: {
    table: { type: 'string', value: 'NAME', description: 'only this table' },
    'dry-run': { type: 'boolean', description: 'report what would be done; change nothing' },
    'expire-days': {
      type: 'string',
      value: 'N',
      description: 'expire snapshots older than N days (default 7)',
    },
    'orphan-grace-days': {
      type: 'string',
      value: 'N',
      description: `remove unreferenced files older than N days (default ${DEFAULT_GRACE_DAYS})`,
    },
    'target-file-rows': {
      type: 'string',
      value: 'N',
      description: 'files under N rows are small (default 1000000)',
    },
  },
  async run(args, ctx) {
    const name = stringOpt(args, 'table');
    const expireDays = numberOpt(args, 'expire-days', 7, 0, 3650);
    const graceDays = numberOpt(args, 'orphan-grace-days', DEFAULT_GRACE_DAYS, 0, 3650);
    const targetFileRows = intOpt(args, 'target-file-rows', 1_000_000, 1, 1_000_000_000);
    const dryRun = flag(args, 'dry-run');
    const tables = selectTables(await loadConfig(ctx.configPath), name ? [name] : undefined);
    const results = await withRuntime(ctx, async (rt) => {
      const now = rt.clock().getTime();
      const limits = {
        expireBefore: now - expireDays * DAY_MS,
        orphanBefore: now - graceDays * DAY_MS,
        targetFileRows,
        dryRun,
      };
      const out: TableMaintenance[] = [];
      for (const table of tables) out.push(await maintainTable(rt, table, limits));
      return out;
    });
    ctx.emit({ dryRun, tables: results });
    ctx.say(
      [
        dryRun ? 'Dry run: nothing was changed.' : 'Maintenance done.',
        formatTable(
          [
            'table',
            'result',
            'partitions compacted',
            'files compacted',
            'snapshots expired',
            'orphans',
            'note',
          ],
          results.map((r) => [
            r.table,
            r.result,
            r.compactedPartitions,
            r.compactedFiles,
            r.expiredSnapshots,
            r.orphanFiles,
            r.note,
          ]),
        ),
      ].join('\n'),
    );
    return 0;
  },
};
