import { createHash } from 'node:crypto';
import { icebergTableFunction, type S3Access } from '../audit/iceberg-source.ts';
import { isEmbedded, queryRows } from '../clickhouse/client.ts';
import { stringLiteral } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError, InvalidMetadataError, LeaseError } from '../errors.ts';
import { identString } from '../iceberg/catalog.ts';
import { dataFileFromParquet } from '../iceberg/data-file.ts';
import type { Rewritten } from '../iceberg/maintenance/replace.ts';
import { commitReplace } from '../iceberg/maintenance/replace.ts';
import { ancestry, currentSchema, defaultSpec, type TableMetadata } from '../iceberg/metadata.ts';
import { joinUri } from '../iceberg/object-store.ts';
import { mappingOf, partitionKey } from '../iceberg/snapshot-update.ts';
import { type LiveDataFile, liveDataFiles, loadTable, newSnapshotId, randomOf } from '../iceberg/table.ts';
import { icebergDeps, type PipelineDeps } from '../pipeline/deps.ts';
import { targetOf } from '../pipeline/plan-cycle.ts';
import { attemptPrefix, newAttemptNonce } from '../stage/attempt.ts';
import type { HourCount, HourlyCheck, HourMismatch } from '../watermark/hourly-types.ts';
import { checkTableHours, HOUR_MS, lookbackReaching } from './check.ts';
import {
  freshRowsSql,
  hourDelta,
  hoursOf,
  hoursScope,
  icebergRowsSql,
  missingRowsSql,
  writeRows,
} from './repair-rows.ts';
import { checksValues } from './sql.ts';

/** Summary keys of a repair snapshot, beside the newest offload marker it carries forward unchanged. */
export const REPAIR_KEYS = {
  kind: 'k2.offload.kind',
  repairId: 'k2.offload.repair-id',
  hours: 'k2.offload.repair-hours',
} as const;

export type RepairResult = {
  table: string;
  status: 'nothing-to-repair' | 'repaired' | 'already-repaired' | 'unrepairable';
  repairId: string | null;
  hours: string[];
  /** Rows the repair added to Iceberg (candles: rows of the rewritten files, net of those deleted). */
  addedRows: number;
  detail: string;
  before: HourlyCheck;
  after: HourlyCheck;
};

/**
 * The repair's identity: table, hours, and both sides' numbers for them. A rerun after a crash sees the
 * same numbers (the ledger entry is what the crash lost) and finds its commit; once recorded, the ledger
 * changed, so any later repair of the same hours is a new one.
 */
export function repairIdOf(table: string, mismatches: HourMismatch[]): string {
  const content = mismatches.map((m) => [
    m.hour,
    m.clickhouseRows,
    m.clickhouseChecksum,
    m.committedRows,
    m.committedChecksum,
  ]);
  return createHash('sha256')
    .update(JSON.stringify([table, content]))
    .digest('hex')
    .slice(0, 32);
}

function findRepair(metadata: TableMetadata, repairId: string): HourCount[] | undefined {
  for (const s of ancestry(metadata))
    if (s.summary[REPAIR_KEYS.repairId] === repairId)
      return JSON.parse(s.summary[REPAIR_KEYS.hours] ?? '[]') as HourCount[];
  return undefined;
}

type Plan = { metadata: TableMetadata; iceberg: string; hours: string[]; prefix: string };

/** Trades and other append-only tables: the rows whose natural key Iceberg lacks, as new files. */
async function appendMissing(deps: PipelineDeps, table: TableConfig, plan: Plan, s3: S3Access | undefined) {
  const select = missingRowsSql(table, plan.hours, plan.iceberg);
  const { uris, rows } = await writeRows(deps.clickhouse, table, select, plan.prefix, s3);
  return { uris, rows, replaced: [] as LiveDataFile[] };
}

/**
 * Candles: every Iceberg file holding a candle of the hours is rewritten with its other candles kept
 * and the hours' candles taken from ClickHouse's final values; one overwrite commit swaps them.
 */
async function replaceCandles(deps: PipelineDeps, table: TableConfig, plan: Plan, s3: S3Access | undefined) {
  const scope = hoursScope(table, plan.hours);
  const inHours = `${scope.inRange} AND ${scope.inHours}`;
  const paths = await queryRows<{ p: string }>(
    deps.clickhouse,
    `SELECT DISTINCT _path AS p FROM ${plan.iceberg} WHERE ${inHours}`,
  );
  const live = await liveDataFiles(deps.store, plan.metadata);
  const pathOf = (uri: string) =>
    uri.startsWith('file://') ? new URL(uri).pathname : uri.replace(/^s3a?:\/\//, '');
  const wanted = new Set(paths.map((r) => r.p.replace(/^\/+/, '')));
  const replaced = live.filter((f) => wanted.has(pathOf(f.file.file_path).replace(/^\/+/, '')));
  if (replaced.length !== wanted.size)
    throw new InvalidMetadataError(
      `repair of ${table.name}: ClickHouse's Iceberg reader names ${wanted.size} data files with candles of the hours, the table's manifests ${replaced.length}`,
      { table: table.name, paths: [...wanted].slice(0, 5) },
    );
  const fresh = freshRowsSql(table, plan.hours);
  const inFiles = `_path IN (${paths.map((r) => stringLiteral(r.p)).join(', ') || "''"})`;
  const kept = icebergRowsSql(table, plan.iceberg, `${inFiles} AND NOT (${inHours})`);
  const { uris, rows } = await writeRows(
    deps.clickhouse,
    table,
    `SELECT * FROM (${kept} UNION ALL ${fresh})`,
    plan.prefix,
    s3,
  );
  return { uris, rows, replaced };
}

/**
 * Groups the new files with the replaced files of their partition: one group per new file. Replaced
 * files of an older partition spec (the table was repartitioned since) have no partition of the new
 * files to match: their rows are in the new files all the same (kept rows and fresh ones are written
 * together), so they join the first group and go in the same commit.
 */
function groupsOf(
  table: TableConfig,
  metadata: TableMetadata,
  added: Rewritten['file'][],
  replaced: LiveDataFile[],
) {
  const specId = defaultSpec(metadata)['spec-id'];
  const groups: Rewritten[] = added.map((file) => ({
    group: {
      specId,
      partition: file.partition,
      files: replaced.filter(
        (r) => r.specId === specId && partitionKey(r.file.partition) === partitionKey(file.partition),
      ),
    },
    file,
  }));
  const olderSpecs = replaced.filter((r) => r.specId !== specId);
  if (olderSpecs.length > 0 && groups[0]) groups[0].group.files.push(...olderSpecs);
  const grouped = new Set(groups.flatMap((g) => g.group.files.map((f) => f.file.file_path)));
  const orphan = replaced.find((r) => !grouped.has(r.file.file_path));
  if (orphan)
    throw new InvalidMetadataError(
      `repair of ${table.name}: data file ${orphan.file.file_path} would be deleted with no file replacing its partition (another partition spec?); repair by hand`,
      { table: table.name },
    );
  return groups;
}

/**
 * `k2-offload repair`: under the table's lease, finds the closed hours the per-hour check flags, writes
 * what Iceberg lacks for them (missing keys; for candles, the hours' final values), commits it in one
 * snapshot carrying the repair marker, records it in the ledger and checks again. Idempotent: a repair
 * Iceberg already holds is only recorded; nothing to repair is a no-op.
 */
export async function repairTable(
  deps: PipelineDeps,
  table: TableConfig,
  options: { lookbackHours?: number; holder: string; s3?: S3Access },
): Promise<RepairResult> {
  const lease = await deps.watermarks.acquireLease(table.name, options.holder, deps.leaseSeconds);
  if (!lease.acquired)
    throw new LeaseError(
      `table ${table.name} is leased by ${lease.holder} until ${lease.expiresAt}; a repair runs under the table's lease, run it again once that pass ends`,
      { table: table.name, holder: lease.holder },
    );
  try {
    // Far enough back for every hour the last check still reports, even those past the look-back.
    const last = await deps.watermarks.lastCheck(table.name);
    const { cursor } = await deps.watermarks.get(table.name);
    const lookbackHours = Math.max(
      options.lookbackHours ?? table.hourlyCheckHours,
      lookbackReaching(cursor, last?.mismatches ?? []),
    );
    const before = await checkTableHours(deps, table, { lookbackHours });
    const hours = before.mismatches.map((m) => m.hour);
    const result = (status: RepairResult['status'], detail: string, extra: Partial<RepairResult> = {}) => ({
      table: table.name,
      status,
      repairId: null,
      hours,
      addedRows: 0,
      detail,
      before,
      after: before,
      ...extra,
    });
    if (hours.length === 0)
      return result(
        'nothing-to-repair',
        `the ${before.checkedHours} checked hour(s) agree with what was committed`,
      );
    const ident = targetOf(table);
    const { metadataLocation, metadata } = await loadTable(deps, ident);
    if (!isEmbedded(deps.clickhouse) && metadataLocation.startsWith('file://'))
      throw new ConfigError(
        `repair of ${table.name} joins ClickHouse's rows with Iceberg's in one query: a remote ClickHouse server cannot read the local warehouse ${metadata.location}; use an s3:// warehouse`,
        { table: table.name },
      );
    const repairId = repairIdOf(table.name, before.mismatches);
    const found = findRepair(metadata, repairId);
    let delta = found;
    let addedRows = 0;
    if (delta === undefined) {
      // What the ledger gains: the hours as ClickHouse holds them now, less what it recorded. Hours
      // where ClickHouse holds fewer rows than were committed lost rows in the hot tier: not repairable.
      const now = await hoursOf(deps.clickhouse, table, freshRowsSql(table, hours));
      const committed = before.mismatches.map((m) => ({
        hour: m.hour,
        rows: m.committedRows,
        checksum: m.committedChecksum,
      }));
      delta = hourDelta(now, committed);
      const shrunk = delta.filter((h) => h.rows < 0).map((h) => h.hour);
      if (shrunk.length > 0)
        return result(
          'unrepairable',
          `ClickHouse holds fewer rows than were committed in ${shrunk.join(', ')}: rows were deleted from the hot tier after their offload, which a repair cannot put back (Iceberg keeps them). Compare with k2-offload audit --table ${table.name}`,
        );
      const plan: Plan = {
        metadata,
        iceberg: icebergTableFunction(metadataLocation, options.s3),
        hours,
        // A folder of this attempt's own, as staging writes: a rerun after a crash never touches the
        // files of an attempt that may have been committed.
        prefix: attemptPrefix(
          `${joinUri(metadata.location, 'data', `repair-${repairId}`)}/`,
          lease.token,
          (deps.nonce ?? newAttemptNonce)(),
        ),
      };
      const written = checksValues(table)
        ? await replaceCandles(deps, table, plan, options.s3)
        : await appendMissing(deps, table, plan, options.s3);
      // Nothing to write: every key of the hours is in Iceberg already (the new rows repeat keys it
      // holds, as a replayed partition does); the ledger alone learns that they are accounted for.
      if (written.uris.length > 0) {
        const schema = currentSchema(metadata);
        const spec = defaultSpec(metadata);
        const mapping = mappingOf(metadata);
        const files = await Promise.all(
          written.uris.map((uri) => dataFileFromParquet({ store: deps.store, uri, schema, spec, mapping })),
        );
        const iceberg = icebergDeps(deps);
        const random = randomOf(iceberg);
        const rewritten = groupsOf(table, metadata, files, written.replaced);
        deps.faults.hit('repair-before-commit', { table: table.name, batchId: repairId });
        const committed = await commitReplace(iceberg, {
          table: ident,
          snapshotId: newSnapshotId(random),
          rewritten,
          random,
          operation: checksValues(table) ? 'overwrite' : 'append',
          summary: {
            [REPAIR_KEYS.kind]: 'repair',
            [REPAIR_KEYS.repairId]: repairId,
            [REPAIR_KEYS.hours]: JSON.stringify(delta),
          },
        });
        if (committed.committed.length !== rewritten.length)
          throw new InvalidMetadataError(
            `repair of ${table.name} found its files replaced by another commit of ${identString(ident)}; nothing was committed, run it again`,
            { table: table.name },
          );
      }
      addedRows = written.rows - written.replaced.reduce((n, f) => n + f.file.record_count, 0);
    }
    deps.faults.hit('repair-after-commit', { table: table.name, batchId: repairId });
    await deps.watermarks.recordHours({
      table: table.name,
      batchId: repairId,
      kind: 'repair',
      windowStart: hours[0] as string,
      windowEnd: new Date(Date.parse(hours.at(-1) as string) + HOUR_MS).toISOString(),
      hours: delta,
    });
    const after = await checkTableHours(deps, table, { lookbackHours });
    return result(
      found ? 'already-repaired' : 'repaired',
      `${hours.length} hour(s) repaired in Iceberg ${identString(ident)} (repair ${repairId})`,
      { repairId, addedRows, after },
    );
  } finally {
    await deps.watermarks.releaseLease(table.name, lease.token);
  }
}
