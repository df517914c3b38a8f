import { defaultConfig, tableByName } from '../../src/config/load.ts';
import type { TableMetadata } from '../../src/iceberg/metadata.ts';
import { newTableMetadata } from '../../src/iceberg/new-table.ts';
import { markerSummary } from '../../src/iceberg/table.ts';

/** The table the in-memory metadata below belongs to, and where it lives. */
export const TABLE = 'bronze_trades_binance';
export const LOCATION = 's3://lake/warehouse/cold.db/bronze_trades_binance';
/** An instant on the hour `h` of one fixed day. */
export const at = (h: number) => new Date(Date.UTC(2026, 10, 22, h)).toISOString();

/**
 * Table metadata whose main branch holds one offload snapshot per window, oldest first, the last one
 * current: what the guards read, without a table on disk.
 */
export function withBatches(windows: Array<[batchId: string, start: number, end: number]>): TableMetadata {
  const m = newTableMetadata(tableByName(defaultConfig(), TABLE), {
    location: LOCATION,
    tableUuid: 'u-1',
    nowMs: 0,
  });
  let parent: bigint | undefined;
  windows.forEach(([batchId, start, end], i) => {
    const id = BigInt(i + 1);
    m.snapshots.push({
      'snapshot-id': id,
      ...(parent === undefined ? {} : { 'parent-snapshot-id': parent }),
      'sequence-number': id,
      'timestamp-ms': i,
      'manifest-list': `${LOCATION}/metadata/snap-${id}.avro`,
      summary: {
        operation: 'append',
        ...markerSummary({ batchId, table: TABLE, windowStart: at(start), windowEnd: at(end), rows: 10 }),
      },
    });
    parent = id;
  });
  if (parent !== undefined) {
    m['current-snapshot-id'] = parent;
    m.refs = { main: { 'snapshot-id': parent, type: 'branch' } };
  }
  m['last-sequence-number'] = BigInt(windows.length);
  return m;
}
