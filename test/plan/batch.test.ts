import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { batchIdOf, makeBatch } from '../../src/plan/batch.ts';
import { thrownBy } from '../support/rejection.ts';

const thrown = (fn: () => unknown) => thrownBy<InputError>(fn);

describe('batch identity', () => {
  // Markers already in Iceberg carry ids made this way: an id computed differently after an upgrade
  // would not find them, and the batch they hold would be staged and committed a second time.
  it('is the first 32 hex digits of sha256("table\\nstart\\nend") over canonical instants, whatever their spelling', () => {
    // printf 'bronze_trades_binance\n2026-11-22T01:00:00.000Z\n2026-11-22T02:00:00.000Z' | sha256sum
    const expected = 'cea55c139eeae51c80fe4ae39395e6fe';
    expect(batchIdOf('bronze_trades_binance', '2026-11-22T01:00:00Z', '2026-11-22T02:00:00.000Z')).toBe(
      expected,
    );
    expect(
      makeBatch('bronze_trades_binance', Date.parse('2026-11-22T01:00:00Z'), '2026-11-22T03:00:00+01:00'),
    ).toEqual({
      table: 'bronze_trades_binance',
      windowStart: '2026-11-22T01:00:00.000Z',
      windowEnd: '2026-11-22T02:00:00.000Z',
      batchId: expected,
    });
  });

  it('refuses an empty window (start equal to end): it would commit a batch holding nothing', () => {
    const error = thrown(() => makeBatch('silver_trades', '2026-11-22T01:00:00Z', '2026-11-22T01:00:00Z'));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe(
      'window of silver_trades is inverted or empty: start 2026-11-22T01:00:00.000Z is not before end 2026-11-22T01:00:00.000Z',
    );
    expect(error.details).toEqual({
      table: 'silver_trades',
      windowStart: '2026-11-22T01:00:00.000Z',
      windowEnd: '2026-11-22T01:00:00.000Z',
    });
  });

  it.each([
    ['windowStart', 'yesterday', '2026-11-22T01:00:00Z'],
    ['windowEnd', '2026-11-22T01:00:00Z', 'soon'],
  ])('refuses a %s that is not an instant, naming the field and the value', (field, start, end) => {
    const error = thrown(() => makeBatch('silver_trades', start, end));
    expect(error).toBeInstanceOf(InputError);
    const value = field === 'windowStart' ? start : end;
    expect(error.message).toBe(
      `${field}: "${value}" is not a valid instant; use ISO 8601 such as 2026-11-22T03:00:00Z`,
    );
    expect(error.details).toEqual({ field, value });
  });

  it('names an unnamed instant "instant" in its refusal', () => {
    const error = thrown(() => batchIdOf('silver_trades', 'never', '2026-11-22T01:00:00Z'));
    expect(error).toBeInstanceOf(InputError);
    expect(error.details).toEqual({ field: 'instant', value: 'never' });
  });
});
