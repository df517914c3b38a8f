import type { Catalog, TableIdent } from '../../src/iceberg/catalog.ts';

/**
 * The catalog given, answering at most `reads` reads of a table's current metadata location. A writer
 * whose retry loop never ends (a give-up check or a swap gone missing) then fails its test at once: our
 * in-memory store and catalogs never yield to the timer that would end a hung test, so it would hang.
 */
export function withReadBudget<C extends Catalog>(inner: C, reads = 50): C {
  let done = 0;
  return Object.assign(Object.create(inner) as C, {
    async currentMetadataLocation(table: TableIdent): Promise<string | undefined> {
      if (++done > reads) throw new Error(`the table was read more than ${reads} times: a retry without end`);
      return inner.currentMetadataLocation(table);
    },
  });
}
