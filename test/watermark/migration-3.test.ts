import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyMigrations, MIGRATIONS } from '../../src/watermark/migrations.ts';
import { createPostgresWatermarkStore } from '../../src/watermark/store.ts';
import { freshDatabase } from '../support/pg.ts';

let db: Awaited<ReturnType<typeof freshDatabase>>;
let pool: pg.Pool;
beforeAll(async () => {
  db = await freshDatabase('k2mig');
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

it("upgrading a deployed store keeps each table's last committed batch, so the marker-chain check holds at once", async () => {
  const client = await pool.connect();
  try {
    await applyMigrations(
      client,
      'k2_offload',
      MIGRATIONS.filter((m) => m.version <= 2),
    );
    // As the previous build left them: one table whose last batch had rows, one whose last window was empty.
    await client.query(
      `INSERT INTO k2_offload.watermarks (table_name, cursor, version, last_batch_id, last_rows, created_at, updated_at)
       VALUES ('trades', '2026-11-22T01:00:00Z', 4, 'batch-with-rows', 120, now(), now()),
              ('quiet', '2026-11-22T01:00:00Z', 3, 'batch-empty', 0, now(), now())`,
    );
  } finally {
    client.release();
  }
  const store = createPostgresWatermarkStore(pool);
  await store.migrate();
  expect(await store.get('trades')).toMatchObject({
    lastBatchId: 'batch-with-rows',
    lastMarkerBatchId: 'batch-with-rows',
    iceberg: null,
    lease: null,
  });
  // Which batch of the quiet table carries a marker is unknown: no check until its next commit.
  expect((await store.get('quiet')).lastMarkerBatchId).toBeNull();
});
