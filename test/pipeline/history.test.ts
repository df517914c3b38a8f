import { describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import {
  behindBy,
  behindError,
  catalogLabel,
  historyElsewhere,
  noTwinError,
} from '../../src/pipeline/history.ts';
import type { Watermark } from '../../src/watermark/types.ts';
import { at, LOCATION, TABLE, withBatches } from './marker-chain.ts';

/**
 * Whether Iceberg still holds what the watermark passed, on metadata built in memory: a catalog moved
 * back must be noticed (committing on top would hide the rows in between for good), and a table that
 * merely holds more than the watermark must not be stopped.
 */
const watermark = (cursor: string, lastMarkerBatchId: string | null, iceberg: Watermark['iceberg'] = null) =>
  ({
    table: TABLE,
    cursor,
    version: 1,
    status: 'idle',
    lastBatchId: lastMarkerBatchId,
    lastMarkerBatchId,
    lastSuccessAt: null,
    lastCheckedAt: null,
    lastRows: null,
    lastDurationMs: null,
    consecutiveFailures: 0,
    lastError: null,
    lease: null,
    leaseToken: '0',
    iceberg,
  }) as Watermark;

describe('Iceberg behind its watermark', () => {
  const chain = withBatches([
    ['b1', 0, 1],
    ['b2', 1, 2],
    ['b3', 2, 3],
  ]);

  it('is not behind while the marker chain holds the last batch the watermark passed, old or newest', () => {
    expect(behindBy(watermark(at(3), 'b3'), chain)).toBeUndefined();
    expect(behindBy(watermark(at(2), 'b2'), chain)).toBeUndefined();
  });

  it('is behind when the chain lost the last batch and ends before the cursor: a restored catalog', () => {
    const restored = withBatches([['b1', 0, 1]]);
    expect(behindBy(watermark(at(3), 'b3'), restored)).toBe(
      `the watermark's last committed batch b3 (cursor ${at(3)}) is not in Iceberg's marker chain, whose newest batch b1 ends at ${at(1)}`,
    );
  });

  it('is behind when the table holds no offload marker at all, saying so', () => {
    expect(behindBy(watermark(at(3), 'b3'), withBatches([]))).toBe(
      `the watermark's last committed batch b3 (cursor ${at(3)}) is not in Iceberg's marker chain, whose newest batch is none (no offload marker at all)`,
    );
  });

  it('is not behind when the chain reaches the cursor under other batch ids (a table rewritten by another run)', () => {
    expect(behindBy(watermark(at(3), 'gone'), chain)).toBeUndefined();
    // Exactly at the cursor counts as reaching it: nothing between is missing.
    expect(behindBy(watermark(at(3), 'gone'), withBatches([['x', 0, 3]]))).toBeUndefined();
    expect(behindBy(watermark(at(3), 'gone'), withBatches([['x', 0, 2]]))).toMatch(/newest batch x ends/);
  });

  it('never judges a watermark that passed no committed batch (a first offload, or a manual cursor)', () => {
    expect(behindBy(watermark(at(9), null), withBatches([]))).toBeUndefined();
  });
});

describe('history a new table here would not hold', () => {
  const here = { catalog: 'postgres:k2', location: LOCATION };

  it('is none for a table never seen and never committed', () => {
    expect(historyElsewhere(undefined, here)).toBe(false);
    expect(historyElsewhere(watermark(at(1), null), here)).toBe(false);
    expect(historyElsewhere(watermark(at(1), null, here), here)).toBe(false);
  });

  it('is a committed batch, or the table seen in another catalog or at another location', () => {
    expect(historyElsewhere(watermark(at(1), 'b1', here), here)).toBe(true);
    expect(historyElsewhere(watermark(at(1), null, { ...here, catalog: 'glue:k2' }), here)).toBe(true);
    expect(historyElsewhere(watermark(at(1), null, { ...here, location: `${LOCATION}-old` }), here)).toBe(
      true,
    );
  });
});

describe('what the operator is told', () => {
  const table = tableByName(defaultConfig(), TABLE);
  const here = { catalog: 'path', location: LOCATION };
  const rewind = `k2-offload watermark rewind --table ${TABLE} --reason "..." (docs/runbooks/iceberg-behind.md)`;

  it('names a catalog by its kind, and its name where it has one', () => {
    expect(catalogLabel({ kind: 'path' })).toBe('path');
    expect(catalogLabel({ kind: 'glue', catalogName: 'k2' })).toBe('glue:k2');
  });

  it('a table behind its watermark: the gap, the metadata the catalog points at, both ways back', () => {
    const error = behindError(table, `${LOCATION}/metadata/00003-a.metadata.json`, 'GAP');
    expect(error.name).toBe('IcebergBehindError');
    expect(error.message).toBe(
      `table ${TABLE}: Iceberg is behind its watermark: GAP; the catalog points at ${LOCATION}/metadata/00003-a.metadata.json, older than what was committed (a restored catalog or table version?). Nothing of ${TABLE} is offloaded until repaired: point the catalog back at the newest metadata, or move the watermark back to what Iceberg holds with ${rewind}`,
    );
    expect(error.details).toEqual({
      table: TABLE,
      metadataLocation: `${LOCATION}/metadata/00003-a.metadata.json`,
    });
  });

  it('no empty twin: where the history is, or that this run cannot see it, and how to go on', () => {
    const seen = { catalog: 'glue:k2', location: 's3://old/t' };
    const elsewhere = noTwinError(table, watermark(at(3), 'b3', seen), here);
    expect(elsewhere.message).toBe(
      `table ${TABLE}: the path catalog has no Iceberg table for it at ${LOCATION}, but its watermark has history (cursor ${at(3)}, last committed batch b3) committed through the glue:k2 catalog, table at s3://old/t; refusing to create an empty twin. Run with that catalog (K2_CATALOG, WAREHOUSE) or register the table there; to start over in this catalog on purpose, ${rewind}`,
    );
    expect(elsewhere.details).toEqual({ table: TABLE, catalog: 'path', location: LOCATION, history: seen });
    const unseen = noTwinError(table, watermark(at(3), null), here);
    expect(unseen.message).toContain(
      'last committed batch (none)) committed through a catalog this run does not see;',
    );
  });
});
