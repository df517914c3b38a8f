import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, InputError } from '../../src/errors.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';
import { assertUntilPast, parseCycleInput } from '../../src/pipeline/plan-cycle.ts';

/**
 * What a malformed step event or execution input is told, before anything is written: which field,
 * what was wrong, what is expected. Operators rerun cycles from the console with input they typed.
 */
describe("a step's malformed event", () => {
  const schema = z.object({ table: z.string(), batch: z.object({ rows: z.number() }) }).strict();

  it('names the step, each field by its path and what was wrong, five at most', () => {
    const error = (() => {
      try {
        parseEvent(schema, { batch: { rows: 'x' }, a: 1 }, 'StageBatch input');
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toMatch(
      /^StageBatch input is malformed: table: .+; batch\.rows: .+; \(root\): .+a/,
    );
    expect(error?.details).toEqual({ what: 'StageBatch input' });
    const many = z.object(Object.fromEntries('abcdefg'.split('').map((k) => [k, z.string()])));
    expect(() => parseEvent(many, {}, 'X')).toThrow(
      /^X is malformed: a: [^;]+; b: [^;]+; c: [^;]+; d: [^;]+; e: [^;]+$/,
    );
  });

  it('passes a well-formed event through as parsed', () => {
    expect(parseEvent(schema, { table: 't', batch: { rows: 3 } }, 'X')).toEqual({
      table: 't',
      batch: { rows: 3 },
    });
  });
});

describe('the execution input', () => {
  it('names the field, the keys it does not know, and the shape expected', () => {
    const expected = '; expected {"tables"?: ["name", ...], "until"?: "ISO-8601 instant"}';
    const unknownKey = () => parseCycleInput({ untill: '2026-01-01T00:00:00Z' });
    expect(unknownKey).toThrow(ConfigError);
    expect(unknownKey).toThrow(
      new RegExp(
        `^execution input \\(input\\): .* \\(untill\\)${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
      ),
    );
    expect(unknownKey).toThrow(expect.objectContaining({ details: { field: '(input)' } }));
    expect(() => parseCycleInput({ until: 'yesterday' })).toThrow(
      expect.objectContaining({ details: { field: 'until' } }),
    );
    expect(parseCycleInput(undefined)).toEqual({});
  });

  it('refuses an until in the future, saying now, and takes one in the past or none', () => {
    const now = new Date('2026-11-22T12:00:00.000Z');
    const future = () => assertUntilPast('2026-11-22T12:00:00.001Z', now);
    expect(future).toThrow(InputError);
    expect(future).toThrow(
      'until 2026-11-22T12:00:00.001Z is in the future (now 2026-11-22T12:00:00.000Z); rows after now are not final yet, give an instant in the past or omit it',
    );
    expect(future).toThrow(
      expect.objectContaining({ details: { field: 'until', value: '2026-11-22T12:00:00.001Z' } }),
    );
    expect(() => assertUntilPast('2026-11-22T12:00:00.000Z', now)).not.toThrow();
    expect(() => assertUntilPast(undefined, now)).not.toThrow();
  });
});
