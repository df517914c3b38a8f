import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../../src/config/load.ts';
import { fastAppend } from '../../../src/iceberg/commit.ts';
import {
  compactTable,
  expireSnapshots,
  parquetFunction,
  removeOrphanFiles,
  rewriteSql,
} from '../../../src/iceberg/maintenance/index.ts';
import { MemoryCatalog } from '../../../src/iceberg/memory-catalog.ts';
import { S3ObjectStore } from '../../../src/iceberg/s3-store.ts';
import { createTable, liveDataFiles, loadTable, newestMarker } from '../../../src/iceberg/table.ts';
import { makeBatch } from '../../../src/plan/batch.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../../support/moto.ts';
import { openChdb, rows, stagingSelect } from '../chdb-helpers.ts';
import { from, generators } from '../generators.ts';

describe('rewrite statements', () => {
  it('reads columns by name from each input and writes zstd Parquet; S3 with endpoint and a named collection, no secret', () => {
    const job = {
      inputs: ['file:///w/a.parquet', 'file:///w/b.parquet'],
      output: 'file:///w/c.parquet',
      columns: ['id', 'px'],
    };
    expect(rewriteSql(job)).toBe(
      "INSERT INTO FUNCTION file('/w/c.parquet', 'Parquet') SELECT `id`, `px` FROM file('/w/a.parquet', 'Parquet')" +
        " UNION ALL SELECT `id`, `px` FROM file('/w/b.parquet', 'Parquet')\n" +
        "    SETTINGS engine_file_truncate_on_insert = 1, output_format_parquet_compression_method = 'zstd'",
    );
    const access = { endpoint: 'http://127.0.0.1:5000/', namedCollection: 'k2_s3' };
    expect(parquetFunction('s3://wh1/t/data/a.parquet', access)).toBe(
      "s3(`k2_s3`, url = 'http://127.0.0.1:5000/wh1/t/data/a.parquet', format = 'Parquet')",
    );
    expect(parquetFunction('s3://wh1/t/a.parquet', { region: 'eu-west-1' })).toBe(
      "s3('https://wh1.s3.eu-west-1.amazonaws.com/t/a.parquet', 'Parquet')",
    );
    expect(rewriteSql({ ...job, output: 's3://wh1/c.parquet' })).toMatch(/s3_truncate_on_insert = 1/);
    expect(() => parquetFunction('file:///w/*.parquet')).toThrow(/glob character/);
    expect(() => parquetFunction('gs://w/a.parquet')).toThrow(/file:\/\/ and s3:\/\/ warehouses only/);
    expect(() => parquetFunction("file:///w/it's/a.parquet")).toThrow(/cannot be handed to ClickHouse/);
    for (const uri of ['file:///w/*.parquet', 'gs://w/a.parquet', "file:///w/it's/a.parquet"])
      expect(() => parquetFunction(uri)).toThrow(expect.objectContaining({ details: { uri } }));
    expect(() => rewriteSql({ ...job, columns: ['id; DROP'] })).toThrow(/not a plain identifier/);
  });
});

const SUITE = 'compaction of an S3 warehouse by ClickHouse, against moto';

describe.skipIf(skipMoto(motoAvailability(), SUITE))(SUITE, () => {
  const cwd = process.cwd();
  const bronze = tableByName(defaultConfig(), 'bronze_trades_kraken');
  const bucket = `k2-${randomBytes(4).toString('hex')}`;
  let moto: Moto;
  let store: S3ObjectStore;
  let chdb: ClickHouseClient;
  let dir: string;

  beforeAll(async () => {
    moto = await startMoto();
    store = new S3ObjectStore(moto.clientConfig);
    await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
    dir = await mkdtemp(join(tmpdir(), 'k2-compact-s3-'));
    chdb = openChdb(dir);
  });
  afterAll(async () => {
    await chdb?.close();
    process.chdir(cwd);
    await moto?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('merges the small files of a day on S3, then expiry removes them; sums stay the same', async () => {
    // ClickHouse's own identity for S3, created once on the server by the operator: SQL names it only.
    await chdb.command({
      query: `CREATE NAMED COLLECTION k2_compact AS url = '${moto.endpoint}/', access_key_id = '${MOTO_CREDENTIALS.accessKeyId}', secret_access_key = '${MOTO_CREDENTIALS.secretAccessKey}'`,
    });
    const access = { endpoint: moto.endpoint, namedCollection: 'k2_compact' };
    const deps = { store, catalog: new MemoryCatalog() };
    const location = `s3://${bucket}/cold/${bronze.target.name}`;
    await createTable(deps, { table: bronze.target, config: bronze, location });
    const select = stagingSelect(bronze, generators.bronze);
    for (const hour of ['00', '01', '02']) {
      const batch = makeBatch(bronze.name, `2024-01-01T${hour}:00:00Z`, `2024-01-01T${hour}:59:59Z`);
      const uri = `${location}/data/${batch.batchId}.parquet`;
      await chdb.command({
        query: `INSERT INTO FUNCTION ${parquetFunction(uri, access)} SELECT ${select} FROM ${from(200, { day: '2024-01-01' })}`,
      });
      await fastAppend(deps, { table: bronze.target, marker: { ...batch, rows: 200 }, files: [uri] });
    }
    const sums = async () => {
      const { metadata } = await loadTable(deps, bronze.target);
      const files = await liveDataFiles(store, metadata);
      const union = files
        .map((f) => `SELECT sequence_number, price FROM ${parquetFunction(f.file.file_path, access)}`)
        .join(' UNION ALL ');
      const [r] = await rows(
        chdb,
        `SELECT toString(count()) AS c, toString(sum(price)) AS p FROM (${union})`,
      );
      return { files: files.length, ...r };
    };
    const before = await sums();
    expect(before).toMatchObject({ files: 3, c: '600' });

    const result = await compactTable(deps, {
      table: bronze.target,
      clickhouse: chdb,
      s3: access,
      targetFileRows: 1000,
    });
    expect(result).toMatchObject({ status: 'compacted', removedFiles: 3, addedFiles: 1, rows: 600 });
    expect(await sums()).toEqual({ ...before, files: 1 });

    // Snapshots and objects here are stamped by the real clock: a cutoff just past now is after all of them.
    const expired = await expireSnapshots(deps, { table: bronze.target, olderThanMs: Date.now() + 1 });
    expect(expired).toMatchObject({ retainedSnapshots: 1, deletedDataFiles: 3 });
    expect(await sums()).toEqual({ ...before, files: 1 });
    const { metadata } = await loadTable(deps, bronze.target);
    expect(newestMarker(metadata)?.windowStart).toBe('2024-01-01T02:00:00.000Z');
    const orphans = await removeOrphanFiles(deps, {
      table: bronze.target,
      olderThanMs: Date.now() + 1,
      dryRun: true,
    });
    expect(orphans.orphans).toEqual([]);
  });
});
