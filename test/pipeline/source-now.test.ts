import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/errors.ts';
import { sourceNow } from '../../src/pipeline/deps.ts';
import { rejection } from '../support/rejection.ts';

/** A ClickHouse that answers its clock query with these rows; any other query fails the test. */
const clockAnswering = (rows: unknown[]) =>
  ({
    query: async ({ query }: { query: string }) => {
      if (!/^SELECT toString\(toUnixTimestamp64Milli\(now64\(3\)\)\) AS now$/.test(query))
        throw new Error(`unexpected query: ${query}`);
      return { json: async () => rows };
    },
  }) as unknown as ClickHouseClient;

describe("window bounds come from the source's clock", () => {
  it('reads now from ClickHouse, to the millisecond, when no source clock is set', async () => {
    const now = await sourceNow({ clickhouse: clockAnswering([{ now: '1795348800123' }]) });
    expect(now.toISOString()).toBe('2026-11-22T12:00:00.123Z');
  });

  it('a set source clock is asked instead of ClickHouse', async () => {
    const clock = async () => new Date('2026-11-22T06:00:00.000Z');
    expect(await sourceNow({ clickhouse: clockAnswering([]), sourceClock: clock })).toEqual(await clock());
  });

  it('refuses an answer that is not an instant, quoting it, as a retryable outage', async () => {
    for (const rows of [[{ now: 'never' }], []]) {
      const error = await rejection<Error>(sourceNow({ clickhouse: clockAnswering(rows) }));
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error.message).toBe(
        `ClickHouse answered SELECT now64(3) with ${JSON.stringify(rows[0])}, not an instant; window bounds come from its clock, check the server`,
      );
    }
  });
});
