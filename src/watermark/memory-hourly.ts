import type { HourlyCheck, HourlyLedger, LedgerEntry } from './hourly-types.ts';
import { normalizeEntry } from './hourly-types.ts';
import { checkTableName } from './rules.ts';

/** The same ledger in memory, for the memory store. */
export function memoryHourlyMethods(clock: () => Date, known: (table: string) => void): HourlyLedger {
  const entries = new Map<string, LedgerEntry>();
  const checks = new Map<string, HourlyCheck>();
  const clone = <T>(v: T): T => structuredClone(v);
  return {
    async recordHours(input) {
      const e = normalizeEntry(input);
      known(e.table);
      const key = `${e.table}\u0000${e.batchId}`;
      if (entries.has(key)) return { recorded: false };
      entries.set(key, { ...clone(e), recordedAt: clock().toISOString() });
      return { recorded: true };
    },
    async ledger(table, range) {
      const t = checkTableName(table);
      const from = Date.parse(range.from);
      const to = Date.parse(range.to);
      return [...entries.values()]
        .filter((e) => e.table === t && Date.parse(e.windowEnd) > from && Date.parse(e.windowStart) < to)
        .sort((a, b) =>
          a.windowStart === b.windowStart
            ? a.batchId < b.batchId
              ? -1
              : 1
            : Date.parse(a.windowStart) - Date.parse(b.windowStart),
        )
        .map(clone);
    },
    async recordCheck(check) {
      known(check.table);
      checks.set(check.table, clone(check));
    },
    async lastCheck(table) {
      const c = checks.get(checkTableName(table));
      return c ? clone(c) : null;
    },
  };
}
