import type { TableConfig } from '../config/schema.ts';
import { mapColumn } from '../config/types.ts';
import type { WantedTable } from '../iceberg/evolve.ts';

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
