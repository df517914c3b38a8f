import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { createTable, loadTable } from '../../src/iceberg/table.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { ticks, ticksConfig, ticksParquet } from './parquet-fixtures.ts';

const ident: TableIdent = { namespace: 'test', name: 'ticks' };
const location = 'mem://warehouse/test/ticks';

/**
 * The marker's row count is what the watermark step verifies and what the audit trusts: a commit whose
 * files hold another count must not happen, whichever way the counts differ.
 */
describe('fast append row count', () => {
  it('refuses staged files holding more rows than the batch says (a stray file from another attempt), committing nothing', async () => {
    const store = new MemoryObjectStore();
    const deps = {
      store,
      catalog: new MemoryCatalog(),
      clock: () => 1_700_000_000_000,
      sleep: async () => {},
    };
    await createTable(deps, { table: ident, config: ticksConfig(), location });
    const before = await loadTable(deps, ident);
    const own = `${location}/data/batch/part-00000.parquet`;
    const stray = `${location}/data/batch/part-00001.parquet`;
    await store.put(own, ticksParquet(ticks(3, '2024-01-01', 'A')));
    await store.put(stray, ticksParquet(ticks(2, '2024-01-01', 'A', 100n)));
    const marker = { ...makeBatch('ticks', '2024-01-01T00:00:00Z', '2024-01-01T01:00:00Z'), rows: 3 };

    const error = await fastAppend(deps, { table: ident, marker, files: [own, stray] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(
      `batch ${marker.batchId} of test.ticks: the staged files hold 5 rows, the batch says 3; stage the batch again`,
    );
    expect((error as InputError).details).toEqual({
      table: 'test.ticks',
      batchId: marker.batchId,
      fileRows: 5,
      expectedRows: 3,
    });
    const after = await loadTable(deps, ident);
    expect(after.metadataLocation).toBe(before.metadataLocation);
    expect(after.metadata.snapshots).toEqual([]);
  });
});
