import { describe, expect, it } from 'vitest';
import { applyTransform, murmur3, parseTransform, resultType } from '../../src/iceberg/transforms.ts';
import {
  compareValues,
  fromBytes,
  type IcebergValue,
  minimalBytes,
  toBytes,
} from '../../src/iceberg/values.ts';

const utf8 = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const uuid = (s: string) => new Uint8Array(Buffer.from(s.replaceAll('-', ''), 'hex'));
const micros = (iso: string) => BigInt(Date.parse(iso)) * 1000n;

describe('partition transforms (table spec, Appendix B test vectors)', () => {
  // 32-bit hashes the spec lists for bucket[N]; the bucket is (hash & Integer.MAX_VALUE) % N.
  const vectors: Array<[string, IcebergValue, number]> = [
    ['int', 34, 2017239379],
    ['long', 34n, 2017239379],
    ['decimal(9, 2)', 1420n, -500754589],
    ['date', 17486, -653330422],
    ['time', 81068000000n, -662762989],
    ['timestamp', micros('2017-11-16T22:31:08Z'), -2047944441],
    ['timestamptz', micros('2017-11-16T14:31:08-08:00'), -2047944441],
    ['timestamp_ns', micros('2017-11-16T22:31:08Z') * 1000n + 1001n, -1207196810],
    ['string', 'iceberg', 1210000089],
    ['uuid', uuid('f79c3e09-677c-4bbd-a479-3f349cb785e7'), 1488055340],
    ['binary', new Uint8Array([0, 1, 2, 3]), -188683207],
  ];
  for (const [type, value, hash] of vectors)
    it(`bucket of ${type} hashes as the spec says`, () => {
      const bucket = applyTransform(parseTransform('bucket[1000]'), type, value);
      expect(bucket).toBe((hash & 0x7fffffff) % 1000);
    });

  // The vectors above cover tails of 0 (binary, uuid, longs), 2 (decimal 0x058c) and 3 bytes ("iceberg").
  it('murmur3 of empty input and a one-byte tail matches the reference', () => {
    expect(murmur3(utf8(''))).toBe(0);
    expect(murmur3(utf8('a'))).toBe(1009084850);
  });

  it('truncates ints, longs, decimals, strings and binaries', () => {
    const t = parseTransform('truncate[10]');
    expect(applyTransform(t, 'int', 1)).toBe(0);
    expect(applyTransform(t, 'int', -1)).toBe(-10);
    expect(applyTransform(t, 'long', -1n)).toBe(-10n);
    expect(applyTransform(parseTransform('truncate[50]'), 'decimal(9, 2)', 1065n)).toBe(1050n);
    expect(applyTransform(parseTransform('truncate[3]'), 'string', 'iceberg')).toBe('ice');
    expect(applyTransform(parseTransform('truncate[2]'), 'string', '😀😁😂')).toBe('😀😁');
    expect(applyTransform(parseTransform('truncate[2]'), 'binary', new Uint8Array([1, 2, 3]))).toEqual(
      new Uint8Array([1, 2]),
    );
  });

  it('extracts years, months, days and hours since the epoch, flooring before 1970', () => {
    const ts = micros('2017-11-16T22:31:08Z');
    const at = (name: string, type: string, v: IcebergValue) => applyTransform(parseTransform(name), type, v);
    expect([
      at('year', 'timestamptz', ts),
      at('month', 'timestamptz', ts),
      at('day', 'timestamptz', ts),
      at('hour', 'timestamptz', ts),
    ]).toEqual([47, 574, 17486, 419686]);
    const before = micros('1970-01-01T00:00:00Z') - 1n;
    expect([
      at('year', 'timestamp', before),
      at('month', 'timestamp', before),
      at('day', 'timestamp', before),
      at('hour', 'timestamp', before),
    ]).toEqual([-1, -1, -1, -1]);
    expect(at('month', 'date', 17486)).toBe(574);
    expect(at('day', 'timestamptz_ns', ts * 1000n)).toBe(17486);
  });

  it('gives int results for date/time and bucket transforms, the source type otherwise', () => {
    expect(resultType(parseTransform('day'), 'timestamptz')).toBe('int');
    expect(resultType(parseTransform('bucket[4]'), 'string')).toBe('int');
    expect(resultType(parseTransform('truncate[4]'), 'string')).toBe('string');
    expect(resultType(parseTransform('identity'), 'decimal(18, 8)')).toBe('decimal(18, 8)');
    expect(() => parseTransform('bucket[0]')).toThrow('unknown partition transform "bucket[0]"');
  });
});

describe('single-value serialization (table spec, Appendix D)', () => {
  const cases: Array<[string, IcebergValue, string]> = [
    ['boolean', true, '01'],
    ['int', 1, '01000000'],
    ['date', -1, 'ffffffff'],
    ['long', 9007199254740993n, '0100000000002000'],
    ['timestamptz', 1n, '0100000000000000'],
    ['float', 1, '0000803f'],
    ['double', -2, '00000000000000c0'],
    ['decimal(9, 2)', 1420n, '058c'],
    ['decimal(38, 8)', -1n, 'ff'],
    ['decimal(38, 8)', 0n, '00'],
    ['decimal(38, 8)', 128n, '0080'],
    ['decimal(38, 8)', -129n, 'ff7f'],
    ['string', 'Ü', 'c39c'],
    ['uuid', uuid('f79c3e09-677c-4bbd-a479-3f349cb785e7'), 'f79c3e09677c4bbda4793f349cb785e7'],
  ];
  for (const [type, value, bytes] of cases)
    it(`${type} ${String(value)} <-> ${bytes}`, () => {
      expect(hex(toBytes(type, value))).toBe(bytes);
      expect(fromBytes(type, toBytes(type, value))).toEqual(value);
    });

  it('minimal decimal bytes cover the 38-digit range', () => {
    const big = 10n ** 38n - 1n;
    expect(minimalBytes(big).length).toBe(16);
    expect(fromBytes('decimal(38, 0)', minimalBytes(-big))).toBe(-big);
  });

  it('orders strings by code point, bytes unsigned', () => {
    expect(compareValues('string', 'Z', 'a')).toBeLessThan(0);
    expect(compareValues('string', '\uffff', '😀')).toBeLessThan(0);
    expect(compareValues('binary', new Uint8Array([0x7f]), new Uint8Array([0x80]))).toBeLessThan(0);
    expect(compareValues('long', -1n, 1n)).toBeLessThan(0);
  });
});
