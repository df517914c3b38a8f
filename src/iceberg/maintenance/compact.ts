import type { ClickHouseClient } from '@clickhouse/client';
import { CommitConflictError, InputError } from '../../errors.ts';
import { identString, type TableIdent } from '../catalog.ts';
import { dataFileFromParquet } from '../data-file.ts';
import type { PartitionValues } from '../manifest.ts';
import { currentSchema, type TableMetadata } from '../metadata.ts';
import { joinUri } from '../object-store.ts';
import { topLevelFieldIds } from '../parquet-columns.ts';
import { readParquetFooter } from '../parquet-footer.ts';
import { mappingOf, partitionKey } from '../snapshot-update.ts';
import { type LiveDataFile, liveDataFiles, loadTable, newSnapshotId, newUuid, randomOf } from '../table.ts';
import { deleteAll, type MaintenanceDeps } from './reachable.ts';
import { commitReplace, type Rewritten } from './replace.ts';
import { clickhouseRewriter, type Rewriter, type S3Access } from './rewrite.ts';

/** Small data files of one partition (of one partition spec), to be rewritten into one file. */
export type CompactionGroup = { specId: number; partition: PartitionValues; files: LiveDataFile[] };

export type CompactionOptions = {
  /** Files with fewer rows than this are small. */
  targetFileRows: number;
  /** A partition is compacted once it has at least this many small files (default 2). */
  minFiles?: number;
};

export type CompactRequest = CompactionOptions & {
  table: TableIdent;
  /** Writes the merged file; default: `clickhouseRewriter(clickhouse, s3)`. */
  rewriter?: Rewriter;
  clickhouse?: ClickHouseClient;
  /** Credentials for ClickHouse's `s3()` when the warehouse is on S3. */
  s3?: S3Access;
  /** Only groups this accepts are compacted (default: all). */
  select?: (group: CompactionGroup) => boolean;
};

export type CompactResult = {
  /** `superseded`: every planned group changed underneath (another compaction got there first). */
  status: 'compacted' | 'nothing-to-compact' | 'superseded';
  partitions: number;
  removedFiles: number;
  addedFiles: number;
  rows: number;
  snapshotId?: bigint;
  metadataLocation: string;
  attempts: number;
};

function checkOptions(o: CompactionOptions): Required<CompactionOptions> {
  const minFiles = o.minFiles ?? 2;
  if (!Number.isInteger(o.targetFileRows) || o.targetFileRows < 1)
    throw new InputError(
      `targetFileRows must be a whole number of rows, at least 1; got ${o.targetFileRows}`,
      {
        targetFileRows: o.targetFileRows,
      },
    );
  if (!Number.isInteger(minFiles) || minFiles < 2)
    throw new InputError(
      `minFiles must be a whole number of at least 2 (one file needs no merging); got ${minFiles}`,
      {
        minFiles,
      },
    );
  return { targetFileRows: o.targetFileRows, minFiles };
}

/** Partitions holding at least `minFiles` files under `targetFileRows` rows; each group lists those files. */
export function planCompaction(files: LiveDataFile[], options: CompactionOptions): CompactionGroup[] {
  const { targetFileRows, minFiles } = checkOptions(options);
  const groups = new Map<string, CompactionGroup>();
  for (const f of files) {
    if (f.file.record_count >= targetFileRows) continue;
    const key = `${f.specId}/${partitionKey(f.file.partition)}`;
    const g = groups.get(key) ?? { specId: f.specId, partition: f.file.partition, files: [] };
    groups.set(key, g);
    g.files.push(f);
  }
  return [...groups.values()]
    .filter((g) => g.files.length >= minFiles)
    .map((g) => ({ ...g, files: g.files.sort((a, b) => a.file.file_path.localeCompare(b.file.file_path)) }));
}

async function rewriteGroup(
  deps: MaintenanceDeps,
  metadata: TableMetadata,
  group: CompactionGroup,
  rewriter: Rewriter,
  output: string,
): Promise<Rewritten> {
  const schema = currentSchema(metadata);
  const spec = metadata['partition-specs'].find((s) => s['spec-id'] === group.specId);
  if (!spec)
    throw new InputError(`partition spec ${group.specId} is not in the table metadata`, {
      specId: group.specId,
    });
  const mapping = mappingOf(metadata);
  // Files written under older schemas may lack a column added since, or hold it under an older name.
  const present = await Promise.all(
    group.files.map(async (f) =>
      topLevelFieldIds((await readParquetFooter(deps.store, f.file.file_path)).metadata, mapping),
    ),
  );
  const columns = schema.fields.filter((f) => present.some((p) => p.has(f.id)));
  await rewriter({
    inputs: group.files.map((f) => f.file.file_path),
    output,
    columns: columns.map((f) => f.name),
    sources: present.map((p) =>
      Object.fromEntries(
        columns.flatMap((f) => (p.get(f.id) === f.name ? [] : [[f.name, p.get(f.id) ?? null]])),
      ),
    ),
  });
  const file = await dataFileFromParquet({ store: deps.store, uri: output, schema, spec, mapping });
  const rows = group.files.reduce((n, f) => n + f.file.record_count, 0);
  if (file.record_count !== rows || partitionKey(file.partition) !== partitionKey(group.partition)) {
    throw new InputError(
      `compacting ${group.files.length} files of partition ${partitionKey(group.partition)} wrote ${file.record_count} rows of partition ${partitionKey(file.partition)}, expected ${rows}; nothing was committed, check the rewriter`,
      { output, rows: file.record_count, expectedRows: rows },
    );
  }
  return { group, file };
}

/**
 * Rewrites the small files of each qualifying partition into one Parquet file and commits all of them in
 * one `replace` snapshot that carries the newest offload marker forward. On a lost race the table is
 * reloaded and the commit rebuilt; groups whose files another commit removed meanwhile are dropped.
 */
export async function compactTable(deps: MaintenanceDeps, request: CompactRequest): Promise<CompactResult> {
  checkOptions(request);
  const rewriter =
    request.rewriter ?? (request.clickhouse ? clickhouseRewriter(request.clickhouse, request.s3) : undefined);
  if (!rewriter)
    throw new InputError(`compacting ${identString(request.table)} needs a ClickHouse client or a rewriter`, {
      table: identString(request.table),
    });
  const random = randomOf(deps);
  const { metadataLocation, metadata } = await loadTable(deps, request.table);
  const groups = planCompaction(await liveDataFiles(deps.store, metadata), request).filter(
    (g) => request.select?.(g) ?? true,
  );
  const none = { partitions: 0, removedFiles: 0, addedFiles: 0, rows: 0, metadataLocation, attempts: 0 };
  if (groups.length === 0) return { status: 'nothing-to-compact', ...none };

  const snapshotId = newSnapshotId(random);
  const dataDir = joinUri(metadata.location, 'data');
  const rewritten: Rewritten[] = [];
  const outputs: string[] = [];
  try {
    for (const g of groups) {
      const output = joinUri(dataDir, `compacted-${newUuid(random)}.parquet`);
      outputs.push(output);
      rewritten.push(await rewriteGroup(deps, metadata, g, rewriter, output));
    }
  } catch (error) {
    // Nothing refers to the merged files before the commit.
    await deleteAll(deps.store, outputs);
    throw error;
  }
  let result: Awaited<ReturnType<typeof commitReplace>>;
  try {
    result = await commitReplace(deps, { table: request.table, snapshotId, rewritten, random });
  } catch (error) {
    // Lost every race: nothing refers to the merged files. Other failures (the catalog unreachable
    // mid-swap) may have committed them: those stay, for orphan removal to judge once they are old.
    if (error instanceof CommitConflictError) await deleteAll(deps.store, outputs);
    throw error;
  }
  const committed = new Set(result.committed);
  await deleteAll(
    deps.store,
    rewritten.filter((r) => !committed.has(r)).map((r) => r.file.file_path),
  );
  return {
    status: result.status,
    partitions: result.committed.length,
    removedFiles: result.committed.reduce((n, r) => n + r.group.files.length, 0),
    addedFiles: result.committed.length,
    rows: result.committed.reduce((n, r) => n + r.file.record_count, 0),
    ...(result.status === 'compacted' ? { snapshotId } : {}),
    metadataLocation: result.metadataLocation,
    attempts: result.attempts,
  };
}

/** `compactTable` for one partition (of the given spec, default any). */
export async function compactPartition(
  deps: MaintenanceDeps,
  request: Omit<CompactRequest, 'select'> & { partition: PartitionValues; specId?: number },
): Promise<CompactResult> {
  const key = partitionKey(request.partition);
  return compactTable(deps, {
    ...request,
    select: (g) =>
      partitionKey(g.partition) === key && (request.specId === undefined || g.specId === request.specId),
  });
}
