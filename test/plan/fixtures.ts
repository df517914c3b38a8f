import { expect } from 'vitest';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig, TableConfigInput } from '../../src/config/schema.ts';
import type { Batch } from '../../src/plan/batch.ts';
import type { PassPlan } from '../../src/plan/planner.ts';

export const ms = (iso: string) => Date.parse(iso);
export const iso = (t: number) => new Date(t).toISOString();
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

/** The default ten tables, with some fields of some tables changed, validated like a config file. */
export function configWith(overrides: Record<string, Partial<TableConfigInput>> = {}): OffloadConfig {
  return parseConfig({ tables: DEFAULT_TABLES.map((t) => ({ ...t, ...overrides[t.name] })) }, 'test config');
}

export const BRONZE = ['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase'];
export const GOLD = ['ohlcv_1m', 'ohlcv_5m', 'ohlcv_15m', 'ohlcv_30m', 'ohlcv_1h', 'ohlcv_1d'];

/** Every table's cursor at `at`, except those given. */
export function watermarks(
  config: OffloadConfig,
  at: string,
  except: Record<string, string> = {},
): Record<string, string> {
  return Object.fromEntries(config.tables.map((t) => [t.name, except[t.name] ?? at]));
}

export const batchesOf = (plan: PassPlan, table: string): Batch[] =>
  plan.tables.find((t) => t.table === table)?.batches ?? [];

export const skipOf = (plan: PassPlan, table: string) => plan.skipped.find((s) => s.table === table);

/** Windows as [start, end] ISO pairs, for readable expectations. */
export const spans = (batches: Batch[]) => batches.map((b) => [b.windowStart, b.windowEnd]);

/** The batches start at `from`, follow each other without gap or overlap, and are never empty. */
export function expectContiguous(batches: Batch[], from: number): void {
  let at = from;
  for (const b of batches) {
    expect(ms(b.windowStart)).toBe(at);
    expect(ms(b.windowEnd)).toBeGreaterThan(at);
    at = ms(b.windowEnd);
  }
}
