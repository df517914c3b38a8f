import type { TableConfig } from '../config/schema.ts';
import { IcebergBehindError } from '../errors.ts';
import type { Catalog } from '../iceberg/catalog.ts';
import type { TableMetadata } from '../iceberg/metadata.ts';
import { findMarker, newestMarker } from '../iceberg/table.ts';
import type { CatalogBinding, Watermark } from '../watermark/types.ts';

/**
 * Whether Iceberg still holds what the watermark says it does. The watermark only ever moves past
 * batches Iceberg committed, so its last batch must be in the table's marker chain (the current
 * snapshot's ancestry). When it is not, and nothing in the chain reaches the cursor, the catalog moved
 * back (a restore, a rollback) and the rows between are in neither tier's index: committing on top
 * would hide the gap for good.
 */

/** How the catalog a run uses is named in the watermark row and in messages. */
export const catalogLabel = (catalog: Pick<Catalog, 'kind'> & { catalogName?: string }): string =>
  catalog.catalogName ? `${catalog.kind}:${catalog.catalogName}` : catalog.kind;

/**
 * A watermark whose history a new, empty table here would not hold: it has moved past a committed
 * batch, or its table was seen in another catalog or location.
 */
export const historyElsewhere = (w: Watermark | undefined, here: CatalogBinding): w is Watermark =>
  !!w &&
  (w.lastMarkerBatchId !== null ||
    (w.iceberg !== null && (w.iceberg.catalog !== here.catalog || w.iceberg.location !== here.location)));

/** The gap, in words, when Iceberg is behind the watermark; undefined when it holds the last batch. */
export function behindBy(w: Watermark, metadata: TableMetadata): string | undefined {
  const last = w.lastMarkerBatchId;
  if (last === null || findMarker(metadata, last)) return undefined;
  const newest = newestMarker(metadata);
  if (newest && Date.parse(newest.windowEnd) >= Date.parse(w.cursor)) return undefined;
  return `the watermark's last committed batch ${last} (cursor ${w.cursor}) is not in Iceberg's marker chain, whose newest batch ${newest ? `${newest.batchId} ends at ${newest.windowEnd}` : 'is none (no offload marker at all)'}`;
}

const REWIND = (table: string) =>
  `k2-offload watermark rewind --table ${table} --reason "..." (docs/runbooks/iceberg-behind.md)`;

export function behindError(table: TableConfig, metadataLocation: string, gap: string): IcebergBehindError {
  return new IcebergBehindError(
    `table ${table.name}: Iceberg is behind its watermark: ${gap}; the catalog points at ${metadataLocation}, older than what was committed (a restored catalog or table version?). Nothing of ${table.name} is offloaded until repaired: point the catalog back at the newest metadata, or move the watermark back to what Iceberg holds with ${REWIND(table.name)}`,
    { table: table.name, metadataLocation },
  );
}

/** Never create a table for a watermark with history: the history is in another catalog or location. */
export function noTwinError(table: TableConfig, w: Watermark, here: CatalogBinding): IcebergBehindError {
  const there = w.iceberg
    ? `the ${w.iceberg.catalog} catalog, table at ${w.iceberg.location}`
    : 'a catalog this run does not see';
  return new IcebergBehindError(
    `table ${table.name}: the ${here.catalog} catalog has no Iceberg table for it at ${here.location}, but its watermark has history (cursor ${w.cursor}, last committed batch ${w.lastMarkerBatchId ?? '(none)'}) committed through ${there}; refusing to create an empty twin. Run with that catalog (K2_CATALOG, WAREHOUSE) or register the table there; to start over in this catalog on purpose, ${REWIND(table.name)}`,
    { table: table.name, catalog: here.catalog, location: here.location, history: w.iceberg },
  );
}
