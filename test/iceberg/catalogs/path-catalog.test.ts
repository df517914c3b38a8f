import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitConflictError, InputError } from '../../../src/errors.ts';
import { fileUri, LocalObjectStore } from '../../../src/iceberg/local-store.ts';
import { MemoryObjectStore } from '../../../src/iceberg/memory-store.ts';
import type { ObjectStore } from '../../../src/iceberg/object-store.ts';
import { createPathCatalog } from '../../../src/iceberg/path-catalog.ts';
import { S3ObjectStore } from '../../../src/iceberg/s3-store.ts';
import { type Moto, motoAvailability, skipMoto, startMoto } from '../../support/moto.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** The same behaviour on every store: the catalog's guarantees come from the store's conditional create. */
/**
 * `atomicCreates: false` for a store whose conditional create is not atomic under concurrency: moto
 * checks and puts with other requests in between, so under load two racing creates can both win. The
 * race is then judged on the atomic stores here, and S3's own answers to it in s3-store.test.ts.
 */
function pathCatalogSuite(
  setup: () => { store: ObjectStore; warehouse: string },
  { atomicCreates }: { atomicCreates: boolean },
) {
  const t = { namespace: 'cold', name: 'silver_trades' };
  let n = 0;
  // A fresh table per test, so tests do not depend on each other.
  const fresh = () => ({ namespace: 'cold', name: `t${++n}` });

  it('creates a table at <warehouse>/<namespace>/<name>/metadata/v1.metadata.json with a version hint', async () => {
    const { store, warehouse } = setup();
    const catalog = createPathCatalog(store, `${warehouse}/`);
    expect(await catalog.currentMetadataLocation(t)).toBeUndefined();
    const staged = `${warehouse}/cold/silver_trades/metadata/00000-aaa.metadata.json`;
    await store.put(staged, bytes('{"v":1}'));
    await catalog.createTable(t, staged);

    const v1 = `${warehouse}/cold/silver_trades/metadata/v1.metadata.json`;
    expect(await catalog.currentMetadataLocation(t)).toBe(v1);
    expect(text(await store.get(v1))).toBe('{"v":1}');
    expect(text(await store.get(catalog.versionHintLocation(t)))).toBe('1');
    expect(await store.head(staged)).toBeUndefined();

    await store.put(staged, bytes('{"v":"again"}'));
    await expect(catalog.createTable(t, staged)).rejects.toBeInstanceOf(CommitConflictError);
    expect(text(await store.get(v1))).toBe('{"v":1}');
  });

  it('commits a file the writer named itself after nextMetadataLocation', async () => {
    const { store, warehouse } = setup();
    const catalog = createPathCatalog(store, warehouse);
    const table = fresh();
    const first = catalog.nextMetadataLocation(table, undefined);
    expect(first).toBe(`${warehouse}/cold/${table.name}/metadata/v1.metadata.json`);
    expect(await store.put(first, bytes('one'), { ifNoneMatch: true })).toBe(true);
    await catalog.createTable(table, first);

    const second = catalog.nextMetadataLocation(table, first);
    expect(second).toBe(`${warehouse}/cold/${table.name}/metadata/v2.metadata.json`);
    expect(await store.put(second, bytes('two'), { ifNoneMatch: true })).toBe(true);
    await catalog.swapMetadataLocation(table, first, second);
    expect(await catalog.currentMetadataLocation(table)).toBe(second);
    expect(text(await store.get(catalog.versionHintLocation(table)))).toBe('2');

    const unwritten = catalog.nextMetadataLocation(table, second);
    await expect(catalog.swapMetadataLocation(table, second, unwritten)).rejects.toThrow(
      /v3\.metadata\.json was not written; put it with \{ ifNoneMatch: true \} first/,
    );
    await expect(catalog.swapMetadataLocation(table, second, unwritten)).rejects.toMatchObject({
      details: { table: `cold.${table.name}`, uri: unwritten },
    });
  });

  if (atomicCreates)
    it('lets exactly one of several writers building on the same version win', async () => {
      const { store, warehouse } = setup();
      const catalog = createPathCatalog(store, warehouse);
      const table = fresh();
      const dir = `${catalog.tableLocation(table)}/metadata`;
      await store.put(`${dir}/00000-init.metadata.json`, bytes('v1'));
      await catalog.createTable(table, `${dir}/00000-init.metadata.json`);
      const v1 = `${dir}/v1.metadata.json`;

      const writers = [0, 1, 2, 3, 4];
      await Promise.all(
        writers.map((w) => store.put(`${dir}/00001-w${w}.metadata.json`, bytes(`writer-${w}`))),
      );
      const results = await Promise.allSettled(
        writers.map((w) => catalog.swapMetadataLocation(table, v1, `${dir}/00001-w${w}.metadata.json`)),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CommitConflictError);
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect(await catalog.currentMetadataLocation(table)).toBe(`${dir}/v2.metadata.json`);
      expect(text(await store.get(`${dir}/v2.metadata.json`))).toBe(`writer-${winner}`);
    });

  it('finds the current version by listing, so a stale or missing hint does no harm', async () => {
    const { store, warehouse } = setup();
    const catalog = createPathCatalog(store, warehouse);
    const table = fresh();
    const dir = `${catalog.tableLocation(table)}/metadata`;
    for (const v of [1, 2, 3, 10]) await store.put(`${dir}/v${v}.metadata.json`, bytes(`v${v}`));
    // Files beside the versions that must not be mistaken for them.
    await store.put(`${dir}/snap-123-1-abc.avro`, bytes('manifest list'));
    await store.put(`${dir}/v11-not-a-version.avro`, bytes('x'));
    await store.put(`${dir}/version-hint.text`, bytes('2'));
    expect(await catalog.currentMetadataLocation(table)).toBe(`${dir}/v10.metadata.json`);
    await store.delete(`${dir}/version-hint.text`);
    expect(await catalog.currentMetadataLocation(table)).toBe(`${dir}/v10.metadata.json`);
  });

  it('refuses a stale or invented expected version, and a location that is not a version file', async () => {
    const { store, warehouse } = setup();
    const catalog = createPathCatalog(store, warehouse);
    const table = fresh();
    const dir = `${catalog.tableLocation(table)}/metadata`;
    await store.put(`${dir}/v1.metadata.json`, bytes('v1'));
    await store.put(`${dir}/v2.metadata.json`, bytes('v2'));

    await store.put(`${dir}/stale.metadata.json`, bytes('stale'));
    const stale = catalog.swapMetadataLocation(
      table,
      `${dir}/v1.metadata.json`,
      `${dir}/stale.metadata.json`,
    );
    await expect(stale).rejects.toBeInstanceOf(CommitConflictError);
    await expect(stale).rejects.toThrow(/v2\.metadata\.json was created by another writer/);
    expect(text(await store.get(`${dir}/v2.metadata.json`))).toBe('v2');

    const invented = catalog.swapMetadataLocation(
      table,
      `${dir}/v7.metadata.json`,
      `${dir}/stale.metadata.json`,
    );
    await expect(invented).rejects.toBeInstanceOf(CommitConflictError);
    expect(await store.head(`${dir}/v8.metadata.json`)).toBeUndefined();

    const foreign = catalog.swapMetadataLocation(
      table,
      `${dir}/00001-x.metadata.json`,
      `${dir}/stale.metadata.json`,
    );
    await expect(foreign).rejects.toBeInstanceOf(InputError);
    await expect(foreign).rejects.toThrow(/is not a version file of cold\.t\d+/);
  });

  it('lists the tables of a namespace and nothing else', async () => {
    const { store, warehouse } = setup();
    const catalog = createPathCatalog(store, warehouse);
    await store.put(`${warehouse}/listing/b/metadata/v1.metadata.json`, bytes('x'));
    await store.put(`${warehouse}/listing/a/metadata/v3.metadata.json`, bytes('x'));
    await store.put(`${warehouse}/listing/a/data/part-00000.parquet`, bytes('x'));
    await store.put(`${warehouse}/listing/not_a_table/data/part-00000.parquet`, bytes('x'));
    await store.put(`${warehouse}/listing2/c/metadata/v1.metadata.json`, bytes('x'));
    await catalog.createNamespace('listing');
    expect(await catalog.listTables('listing')).toEqual([
      { namespace: 'listing', name: 'a' },
      { namespace: 'listing', name: 'b' },
    ]);
  });
}

describe('path catalog on a memory store', () => {
  const store = new MemoryObjectStore();
  pathCatalogSuite(() => ({ store, warehouse: 'mem://warehouse' }), { atomicCreates: true });
});

describe('path catalog on a local folder', () => {
  const store = new LocalObjectStore();
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-path-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  pathCatalogSuite(() => ({ store, warehouse: fileUri(join(dir, 'warehouse')) }), { atomicCreates: true });
});

const SUITE = 'path catalog on S3 (moto)';
describe.skipIf(skipMoto(motoAvailability(), SUITE))(SUITE, () => {
  let moto: Moto;
  let store: S3ObjectStore;
  const bucket = `k2-path-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    moto = await startMoto();
    store = new S3ObjectStore(moto.clientConfig);
    await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => moto?.stop());
  pathCatalogSuite(() => ({ store, warehouse: `s3://${bucket}/warehouse` }), { atomicCreates: false });
});
