import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '../../src/errors.ts';
import {
  checkHolder,
  checkSchemaName,
  checkTtl,
  normalizeAdvance,
  normalizeBinding,
  normalizeError,
  normalizeFailure,
  normalizeForceRelease,
  normalizeHistoryQuery,
  normalizeLimit,
  normalizeNoop,
  normalizeReconcile,
  normalizeSetCursor,
  staleLease,
  unknownTable,
} from '../../src/watermark/rules.ts';
import { thrownBy } from '../support/rejection.ts';

/**
 * The words both watermark stores refuse bad input with. A refusal that no longer happens lets a bad
 * value into the table every exactly-once decision reads; one that names the wrong field sends the
 * operator to fix the wrong thing.
 */
const advance = {
  table: 'silver_trades',
  batchId: 'b1',
  windowStart: '2026-11-22T01:00:00Z',
  windowEnd: '2026-11-22T02:00:00Z',
  leaseToken: '7',
  rows: 10,
  files: 1,
  bytes: 100,
  durationMs: 12.4,
  outcome: 'committed' as const,
};
const setCursor = {
  table: 'silver_trades',
  cursor: '2026-11-22T01:00:00Z',
  actor: 'ops',
  reason: 'replay',
  allowBackwards: false,
};

const refusal = (fn: () => unknown): InputError => {
  const error = thrownBy<InputError>(fn);
  expect(error).toBeInstanceOf(InputError);
  return error;
};

describe('watermark input rules', () => {
  it.each<[string, () => unknown, string, Record<string, unknown>?]>([
    [
      'a table name that is not an identifier',
      () => normalizeNoop({ table: 'silver-trades', leaseToken: '7', reason: 'x' }),
      'table "silver-trades" is not a valid table name: a letter or _, then letters, digits or _',
      { table: 'silver-trades' },
    ],
    [
      'a table name that is no string',
      () => normalizeForceRelease({ table: 7 as never, actor: 'ops', reason: 'x' }),
      'table 7 is not a valid table name',
      { table: 7 },
    ],
    [
      // Its text, "undefined", would pass for a name.
      'a missing table name',
      () => normalizeForceRelease({ table: undefined as never, actor: 'ops', reason: 'x' }),
      'table undefined is not a valid table name',
      { table: undefined },
    ],
    [
      'a lease token that is not decimal',
      () => normalizeAdvance({ ...advance, leaseToken: '7a' }),
      'leaseToken "7a" is not a lease token: expected the decimal token returned by acquireLease',
      { field: 'leaseToken', value: '7a' },
    ],
    [
      'a negative row count',
      () => normalizeAdvance({ ...advance, rows: -1 }),
      'rows must be a non-negative integer, got -1',
      { field: 'rows', value: -1 },
    ],
    [
      'fractional files',
      () => normalizeAdvance({ ...advance, files: 1.5 }),
      'files must be',
      { field: 'files', value: 1.5 },
    ],
    [
      'negative bytes',
      () => normalizeAdvance({ ...advance, bytes: -3 }),
      'bytes must be',
      { field: 'bytes', value: -3 },
    ],
    [
      'a negative duration',
      () => normalizeAdvance({ ...advance, durationMs: -1 }),
      'durationMs must be a non-negative number, got -1',
      { value: -1 },
    ],
    [
      'an endless duration',
      () =>
        normalizeFailure({
          table: 'silver_trades',
          error: { name: 'E', message: 'm' },
          durationMs: Number.POSITIVE_INFINITY,
        }),
      'durationMs must be a non-negative number, got null',
      { value: Number.POSITIVE_INFINITY },
    ],
    [
      'an empty window',
      () => normalizeAdvance({ ...advance, windowEnd: advance.windowStart }),
      'window of silver_trades is inverted or empty: start 2026-11-22T01:00:00.000Z is not before end 2026-11-22T01:00:00.000Z; a watermark only moves forward',
      {
        table: 'silver_trades',
        windowStart: '2026-11-22T01:00:00.000Z',
        windowEnd: '2026-11-22T01:00:00.000Z',
      },
    ],
    [
      'an unknown outcome',
      () => normalizeAdvance({ ...advance, outcome: 'maybe' as never }),
      'outcome must be committed or reconciled, got "maybe"',
    ],
    [
      'a blank batch id',
      () => normalizeAdvance({ ...advance, batchId: '  ' }),
      'batchId is required and must not be empty',
      { field: 'batchId' },
    ],
    [
      'a batch id that is no string',
      () => normalizeAdvance({ ...advance, batchId: 5 as never }),
      'batchId is required and must not be empty',
      { field: 'batchId' },
    ],
    [
      'a reconcile without rows',
      () =>
        normalizeReconcile({
          table: 'silver_trades',
          batchId: 'b',
          windowEnd: advance.windowEnd,
          rows: -1,
        } as never),
      'rows must be',
      { field: 'rows', value: -1 },
    ],
    [
      'a blank reason',
      () => normalizeNoop({ table: 'silver_trades', leaseToken: '7', reason: '' }),
      'reason is required',
      { field: 'reason' },
    ],
    [
      'a cursor that is no instant',
      () => normalizeSetCursor({ ...setCursor, cursor: 'now' }),
      'cursor: "now" is not a valid instant',
      { field: 'cursor', value: 'now' },
    ],
    [
      'a blank actor',
      () => normalizeSetCursor({ ...setCursor, actor: '' }),
      'actor is required',
      { field: 'actor' },
    ],
    [
      'a blank reason to set',
      () => normalizeSetCursor({ ...setCursor, reason: ' ' }),
      'reason is required',
      { field: 'reason' },
    ],
    [
      'negative skipped rows',
      () => normalizeSetCursor({ ...setCursor, skippedRows: -5 }),
      'skippedRows must be a whole number of rows, got -5',
    ],
    [
      'a blank force-release reason',
      () => normalizeForceRelease({ table: 'silver_trades', actor: 'ops', reason: '' }),
      'reason is required',
      { field: 'reason' },
    ],
    [
      'a catalog binding without a catalog',
      () => normalizeBinding({ catalog: '', location: 's3://x' }),
      'catalog is required',
      { field: 'catalog' },
    ],
    [
      'a catalog binding without a location',
      () => normalizeBinding({ catalog: 'glue', location: '' }),
      'location is required',
      { field: 'location' },
    ],
    [
      'a zero lease',
      () => checkTtl(0),
      'lease ttlSeconds must be a number in (0, 86400], got 0',
      { ttlSeconds: 0 },
    ],
    ['a lease over a day', () => checkTtl(86_401), 'got 86401', { ttlSeconds: 86_401 }],
    ['a list limit of zero', () => normalizeLimit(0), 'limit must be an integer in [1, 10000], got 0'],
    ['a list limit over the cap', () => normalizeLimit(10_001), 'got 10001'],
    [
      'a history since no instant',
      () => normalizeHistoryQuery({ since: 'yesterday' }),
      'since: "yesterday" is not a valid instant',
      { field: 'since', value: 'yesterday' },
    ],
    [
      'an advance whose window start is no instant',
      () => normalizeAdvance({ ...advance, windowStart: 'soon' }),
      'windowStart: "soon" is not a valid instant',
      { field: 'windowStart', value: 'soon' },
    ],
    [
      'a reconcile whose window end is no instant',
      () =>
        normalizeReconcile({ table: 'silver_trades', batchId: 'b', windowEnd: 'later', rows: 1 } as never),
      'windowEnd: "later" is not a valid instant',
      { field: 'windowEnd', value: 'later' },
    ],
    ['a blank holder', () => checkHolder(' '), 'holder is required', { field: 'holder' }],
    [
      'a blank force-release actor',
      () => normalizeForceRelease({ table: 'silver_trades', actor: '', reason: 'x' }),
      'actor is required',
      { field: 'actor' },
    ],
    [
      'a failure with a bad window',
      () =>
        normalizeFailure({
          table: 'silver_trades',
          windowStart: 'x',
          error: { name: 'E', message: 'm' },
          durationMs: 1,
        }),
      'windowStart: "x"',
      { field: 'windowStart', value: 'x' },
    ],
    [
      'a failure with a bad window end',
      () =>
        normalizeFailure({
          table: 'silver_trades',
          windowEnd: 'y',
          error: { name: 'E', message: 'm' },
          durationMs: 1,
        }),
      'windowEnd: "y"',
      { field: 'windowEnd', value: 'y' },
    ],
  ])('refuses %s', (_label, fn, message, details) => {
    const error = refusal(fn);
    expect(error.message).toContain(message);
    if (details) expect(error.details).toEqual(details);
  });

  it('refuses a schema name with upper case, as a config error', () => {
    const error = thrownBy<ConfigError>(() => checkSchemaName('K2'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'watermark schema "K2" is not a valid name: use lower-case letters, digits and _, starting with a letter or _, at most 63 characters (default k2_offload)',
    );
    expect(error.details).toEqual({ schema: 'K2' });
  });

  it('accepts the default schema name and any lower-case one', () => {
    expect(checkSchemaName('k2_offload')).toBe('k2_offload');
    expect(checkSchemaName('_k2_2')).toBe('_k2_2');
  });

  it('accepts the edges: a lease of exactly a day, limits 1 and 10000, zero counts and durations', () => {
    expect(checkTtl(86_400)).toBe(86_400);
    expect(normalizeLimit(1)).toBe(1);
    expect(normalizeLimit(10_000)).toBe(10_000);
    expect(normalizeLimit(undefined)).toBe(100);
    const zero = normalizeAdvance({
      ...advance,
      rows: 0,
      files: 0,
      bytes: 0,
      durationMs: 0,
      outcome: 'reconciled',
    });
    expect(zero).toMatchObject({
      rows: 0,
      files: 0,
      bytes: 0,
      durationMs: 0,
      outcome: 'reconciled',
      releaseLease: false,
    });
    expect(normalizeAdvance(advance).durationMs).toBe(12);
    expect(normalizeSetCursor({ ...setCursor, skippedRows: 0 }).skippedRows).toBeNull();
    expect(normalizeSetCursor({ ...setCursor, skippedRows: 12 }).skippedRows).toBe(12);
  });

  it('keeps a failure without a token or a window as nulls, and an error without a name as "Error"', () => {
    const base = { table: 'silver_trades', durationMs: 1 };
    expect(normalizeFailure({ ...base, leaseToken: '', error: { name: '', message: 'boom' } })).toMatchObject(
      {
        leaseToken: null,
        windowStart: null,
        windowEnd: null,
        batchId: null,
        error: { name: 'Error', message: 'boom' },
      },
    );
    expect(
      normalizeFailure({ ...base, leaseToken: '007', error: { name: 'LeaseError', message: 'x' } })
        .leaseToken,
    ).toBe('7');
    expect(normalizeError({ name: 5, message: 42 } as never)).toEqual({ name: 'Error', message: '42' });
    expect(normalizeError(undefined as never)).toEqual({ name: 'Error', message: 'undefined' });
  });

  it('says which tables do have a watermark, or that none has', () => {
    expect(unknownTable('gold', ['silver_trades', 'ohlcv_1m']).message).toBe(
      'no watermark for table "gold" (known tables: silver_trades, ohlcv_1m); check the name, or add the table to the config and run the offload once to create its watermark',
    );
    expect(unknownTable('gold', []).message).toContain('(no table has a watermark yet)');
    expect(unknownTable('gold', []).details).toEqual({ table: 'gold', known: [] });
  });

  it('tells a fenced-out holder who holds the table now, or that nobody does', () => {
    const held = staleLease('silver_trades', '7', '8', 'cycle-9');
    expect(held.message).toContain('is no longer current: cycle-9 holds token 8;');
    expect(held.details).toEqual({
      table: 'silver_trades',
      token: '7',
      currentToken: '8',
      holder: 'cycle-9',
    });
    expect(staleLease('silver_trades', '7', '8', null).message).toContain('no lease is held (last token 8)');
  });
});
