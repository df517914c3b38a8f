import { z } from 'zod';
import { InputError } from '../errors.ts';
import { toInstant } from '../plan/batch.ts';
import { checkTableName } from './rules.ts';

/**
 * The hourly ledger: per batch, the rows it committed per hour of the cursor (and, for re-aggregated
 * tables, a checksum of the values), recorded when the watermark commits. Each cycle compares it with
 * ClickHouse's own counts for the closed hours below the cursor, so back-dated rows and changed candles
 * are noticed without reading Iceberg.
 */

/** One hour's share of a batch. `checksum`: a sum of row hashes modulo 2^64, as decimal text ("0" when unused). */
export const hourCountSchema = z.strictObject({
  hour: z.iso.datetime({ offset: true }),
  rows: z.number().int(),
  checksum: z.string().regex(/^[0-9]+$/),
});
export type HourCount = z.infer<typeof hourCountSchema>;

/** `offload`: a cycle's batch (its window counts as checked coverage); `repair`: a corrective batch. */
export const LEDGER_KINDS = ['offload', 'repair'] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

export type LedgerEntry = {
  table: string;
  batchId: string;
  kind: LedgerKind;
  windowStart: string;
  windowEnd: string;
  /** Changes per hour: rows added (a repair replacing candles may add negative rows) and checksum added. */
  hours: HourCount[];
  recordedAt: string;
};

export type HourMismatch = {
  hour: string;
  clickhouseRows: number;
  committedRows: number;
  clickhouseChecksum: string;
  committedChecksum: string;
};

export type HourlyCheck = {
  table: string;
  checkedAt: string;
  /** Closed hours compared: [from, to); hours not wholly covered by recorded offload windows are skipped. */
  from: string;
  to: string;
  checkedHours: number;
  mismatches: HourMismatch[];
};

export interface HourlyLedger {
  /** Records a batch's hours once; a replay of the same batch id is `recorded: false` and changes nothing. */
  recordHours(entry: Omit<LedgerEntry, 'recordedAt'>): Promise<{ recorded: boolean }>;
  /** Entries whose window overlaps [from, to), oldest window first. */
  ledger(table: string, range: { from: string; to: string }): Promise<LedgerEntry[]>;
  /** Replaces the table's latest check result. */
  recordCheck(check: HourlyCheck): Promise<void>;
  lastCheck(table: string): Promise<HourlyCheck | null>;
}

const UINT64 = 1n << 64n;

/** Adds checksums modulo 2^64 (a sum of hashes: order-free, and a replaced row subtracts its old hash). */
export function addChecksums(...values: string[]): string {
  return `${((values.reduce((sum, v) => sum + BigInt(v), 0n) % UINT64) + UINT64) % UINT64}`;
}

export function normalizeEntry(entry: Omit<LedgerEntry, 'recordedAt'>): Omit<LedgerEntry, 'recordedAt'> {
  const windowStart = toInstant(entry.windowStart, 'windowStart');
  const windowEnd = toInstant(entry.windowEnd, 'windowEnd');
  if (Date.parse(windowEnd) < Date.parse(windowStart))
    throw new InputError(`ledger window [${windowStart}, ${windowEnd}) is inverted`, {
      table: entry.table,
      batchId: entry.batchId,
    });
  if (!LEDGER_KINDS.includes(entry.kind))
    throw new InputError(
      `ledger kind ${JSON.stringify(entry.kind)} is not one of ${LEDGER_KINDS.join(', ')}`,
      {
        table: entry.table,
      },
    );
  return {
    table: checkTableName(entry.table),
    batchId: entry.batchId,
    kind: entry.kind,
    windowStart,
    windowEnd,
    hours: entry.hours.map((h) => ({
      hour: toInstant(h.hour, 'hour'),
      rows: h.rows,
      checksum: addChecksums(h.checksum),
    })),
  };
}
