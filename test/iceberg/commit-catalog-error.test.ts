import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/errors.ts';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { createTable } from '../../src/iceberg/table.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { withReadBudget } from './catalog-budget.ts';
import { ticks, ticksConfig, ticksParquet } from './parquet-fixtures.ts';

const ident: TableIdent = { namespace: 'test', name: 'ticks' };
const location = 'mem://warehouse/test/ticks';

/**
 * Only a lost race for the catalog is retried inside the commit; any other failure of the swap (the
 * catalog unreachable) reaches the caller as it is, once, so the step's own retry policy applies to it.
 */
describe('fast append when the catalog fails', () => {
  it('passes a non-conflict failure of the swap through on the first attempt', async () => {
    let swaps = 0;
    const down = new UnavailableError('catalog unreachable', {});
    class UnreachableCatalog extends MemoryCatalog {
      override async swapMetadataLocation(): Promise<void> {
        swaps++;
        throw down;
      }
    }
    const catalog = withReadBudget(new UnreachableCatalog());
    const store = new MemoryObjectStore();
    const deps = { store, catalog, clock: () => 1_700_000_000_000, sleep: async () => {} };
    await createTable(deps, { table: ident, config: ticksConfig(), location });
    const uri = `${location}/data/batch/part-00000.parquet`;
    await store.put(uri, ticksParquet(ticks(3, '2024-01-01', 'A')));
    const marker = { ...makeBatch('ticks', '2024-01-01T00:00:00Z', '2024-01-01T01:00:00Z'), rows: 3 };

    await expect(fastAppend(deps, { table: ident, marker, files: [uri] })).rejects.toBe(down);
    expect(swaps).toBe(1);
  });
});
