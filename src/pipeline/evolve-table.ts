import type { TableConfig } from '../config/schema.ts';
import { mapColumn } from '../config/types.ts';
import { SchemaDriftError } from '../errors.ts';
import { evolveMetadata, type WantedTable } from '../iceberg/evolve.ts';
import type { TableMetadata } from '../iceberg/metadata.ts';

/** The Iceberg table a table config asks for, in the Iceberg module's terms. */
export function wantedFromConfig(table: TableConfig): WantedTable {
  return {
    name: table.name,
    columns: table.columns.map((c) => {
      const mapping = mapColumn(c);
      return {
        name: c.name,
        type: mapping.iceberg,
        required: c.required && !mapping.optional,
        renamedFrom: c.renamedFrom,
      };
    }),
    dropped: table.droppedColumns,
    partitionSpec: table.partitionSpec,
    naturalKey: table.naturalKey,
  };
}

/**
 * Staging writes the config's columns; the commit keeps only columns the Iceberg table has. A batch
 * staged for a config the table was not brought to (a config deployed between planning and staging)
 * would leave its new columns out unseen: it waits for the next cycle's planning to evolve the table.
 */
export function assertTableAtConfig(table: TableConfig, metadata: TableMetadata): void {
  const { changes } = evolveMetadata(metadata, wantedFromConfig(table));
  if (changes.length > 0)
    throw new SchemaDriftError(
      `table ${table.name}: the Iceberg table is not at the config's schema yet (${changes.map((c) => c.detail).join('; ')}); nothing staged, the next cycle's planning applies the change first`,
      { table: table.name, changes: changes.map((c) => c.detail) },
    );
}
