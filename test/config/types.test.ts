import { describe, expect, it } from 'vitest';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { icebergTypeString, mapColumn, parseClickHouseType } from '../../src/config/types.ts';
import { ConfigError } from '../../src/errors.ts';

const map = (type: string, iceberg?: string) => mapColumn({ name: 'c', type, iceberg });

// [ClickHouse type, Iceberg type, optional, staging type]
const DEFAULT_TYPES: Array<[string, string, boolean, string]> = [
  ['String', 'string', false, 'String'],
  ['LowCardinality(String)', 'string', false, 'String'],
  ["Enum8('equities' = 1, 'crypto' = 2, 'futures' = 3, 'options' = 4)", 'string', false, 'String'],
  ["Enum8('BUY' = 1, 'SELL' = 2, 'SELL_SHORT' = 3, 'UNKNOWN' = 4)", 'string', false, 'String'],
  ['UUID', 'uuid', false, 'UUID'],
  ['Bool', 'boolean', false, 'Bool'],
  ['UInt16', 'int', false, 'Int32'],
  ['UInt64', 'long', false, 'Int64'],
  ['Nullable(UInt64)', 'long', true, 'Nullable(Int64)'],
  ['Decimal(18, 8)', 'decimal(18, 8)', false, 'Decimal(18, 8)'],
  ['Decimal(38, 8)', 'decimal(38, 8)', false, 'Decimal(38, 8)'],
  ['Decimal64(8)', 'decimal(18, 8)', false, 'Decimal(18, 8)'],
  ['Decimal128(8)', 'decimal(38, 8)', false, 'Decimal(38, 8)'],
  // ClickHouse DateTimes are instants whatever their display zone: timestamptz, staged in UTC microseconds.
  ['DateTime', 'timestamptz', false, "DateTime64(6, 'UTC')"],
  ['DateTime64(3)', 'timestamptz', false, "DateTime64(6, 'UTC')"],
  ["DateTime64(6, 'UTC')", 'timestamptz', false, "DateTime64(6, 'UTC')"],
  ['Array(String)', 'list<string>', false, 'Array(String)'],
  ['Map(String, String)', 'map<string, string>', false, 'Map(String, String)'],
];

describe('ClickHouse to Iceberg type mapping', () => {
  it('covers every column type of the default tables', () => {
    const used = new Set(DEFAULT_TABLES.flatMap((t) => t.columns.map((c) => c.type)));
    const covered = new Set(DEFAULT_TYPES.map(([ch]) => ch));
    expect([...used].filter((t) => !covered.has(t))).toEqual([]);
  });

  it.each(DEFAULT_TYPES)('%s -> %s (optional %s), staged as %s', (ch, iceberg, optional, staging) => {
    const m = map(ch);
    expect(icebergTypeString(m.iceberg)).toBe(iceberg);
    expect(m.optional).toBe(optional);
    expect(m.stagingType).toBe(staging);
  });

  it.each([
    ['Int8', 'int', 'Int32'],
    ['UInt32', 'long', 'Int64'],
    ['Int64', 'long', 'Int64'],
    ['Float32', 'float', 'Float32'],
    ['Float64', 'double', 'Float64'],
    ['Date', 'date', 'Date32'],
    ['Decimal32(4)', 'decimal(9, 4)', 'Decimal(9, 4)'],
    ["Enum16('a' = -1, 'b' = 300)", 'string', 'String'],
    ['FixedString(16)', 'string', 'String'],
    ["DateTime('Europe/Amsterdam')", 'timestamptz', "DateTime64(6, 'UTC')"],
    ["DateTime64(9, 'Asia/Tokyo')", 'timestamptz', "DateTime64(6, 'UTC')"],
  ])('%s -> %s, staged as %s', (ch, iceberg, staging) => {
    expect(icebergTypeString(map(ch).iceberg)).toBe(iceberg);
    expect(map(ch).stagingType).toBe(staging);
  });

  it('keeps element and value nullability of nested types', () => {
    expect(map('Array(Nullable(String))').iceberg).toEqual({
      kind: 'list',
      element: { kind: 'primitive', type: 'string' },
      elementRequired: false,
    });
    expect(map('Array(Nullable(String))').stagingType).toBe('Array(Nullable(String))');
    const m = map('Map(LowCardinality(String), Nullable(Decimal(18, 8)))');
    expect(m.iceberg).toEqual({
      kind: 'map',
      key: { kind: 'primitive', type: 'string' },
      value: { kind: 'primitive', type: 'decimal(18, 8)' },
      valueRequired: false,
    });
    expect(m.stagingType).toBe('Map(String, Nullable(Decimal(18, 8)))');
    expect(icebergTypeString(map('Array(Array(UInt64))').iceberg)).toBe('list<list<long>>');
  });

  it('maps a UUID to string on request, for engines without uuid support', () => {
    expect(map('UUID', 'string')).toEqual({
      iceberg: { kind: 'primitive', type: 'string' },
      optional: false,
      stagingType: 'String',
    });
    expect(map('Nullable(UUID)', 'string').stagingType).toBe('Nullable(String)');
    expect(() => map('UUID', 'binary')).toThrow('column c: iceberg override "binary" is not supported');
  });

  it.each([
    ['Decimal(18,', 'column c: cannot parse ClickHouse type "Decimal(18,"'],
    ['Array(String', 'column c: cannot parse ClickHouse type "Array(String"'],
    ['String)', 'column c: cannot parse ClickHouse type "String)"'],
    ["Enum8('a = 1)", 'column c: cannot parse ClickHouse type'],
    ['Nullable String', 'column c: cannot parse ClickHouse type "Nullable String"'],
    ['Tuple(String, UInt8)', 'column c: ClickHouse type Tuple(String, UInt8) is not supported'],
    ['IPv4', 'column c: ClickHouse type IPv4 is not supported'],
    ['Decimal(40, 2)', 'column c: Decimal(40, 2) has no Iceberg equivalent'],
    ['Decimal(10, 12)', 'column c: Decimal(10, 12) has no Iceberg equivalent'],
    ['Decimal(S)', 'column c: Decimal(S): Decimal needs a numeric argument 1'],
    ['Map(Nullable(String), String)', 'column c: Map(Nullable(String), String): map keys cannot be Nullable'],
    ['Array(5)', 'column c: Array(5): Array needs a type argument'],
  ])('refuses %s with a message naming the column and the type', (ch, message) => {
    expect(() => map(ch)).toThrow(ConfigError);
    expect(() => map(ch)).toThrow(message);
  });

  it('parses type arguments as ClickHouse prints them', () => {
    expect(parseClickHouseType("Map(String, Array(DateTime64(3, 'UTC')))")).toEqual({
      name: 'Map',
      args: [
        { name: 'String', args: [] },
        { name: 'Array', args: [{ name: 'DateTime64', args: [3, 'UTC'] }] },
      ],
    });
  });
});
