import type { SchemaElement } from 'hyparquet';
import { ByteWriter, parquetWrite } from 'hyparquet-writer';
import { type TableConfig, tableConfigSchema } from '../../src/config/schema.ts';

/**
 * Small Parquet files for unit tests, written by hyparquet-writer: a second Parquet implementation
 * besides ClickHouse, with explicit schemas (and field ids when asked).
 */
export type Tick = { id: bigint; ts: bigint; sym: string; px: bigint; qty: number | null; tags: string[] };

export const DAY_MICROS = 86_400_000_000n;
export const dayMicros = (iso: string) => BigInt(Date.parse(iso)) * 1000n;

export function ticksConfig(
  partitionSpec: TableConfig['partitionSpec'] = [
    { column: 'ts', transform: 'day' },
    { column: 'sym', transform: 'identity' },
  ],
): TableConfig {
  return tableConfigSchema.parse({
    name: 'ticks',
    layer: 'bronze',
    source: { database: 'k2', table: 'ticks' },
    target: { namespace: 'test', name: 'ticks' },
    cursor: { kind: 'ingestion_time', column: 'ts' },
    ttlSeconds: 86400,
    columns: [
      { name: 'id', type: 'Int64', required: true },
      { name: 'ts', type: "DateTime64(6, 'UTC')", required: true },
      { name: 'sym', type: 'String', required: true },
      { name: 'px', type: 'Decimal(18, 4)', required: true },
      { name: 'qty', type: 'Nullable(Int32)' },
      { name: 'tags', type: 'Array(String)', required: true },
    ],
    naturalKey: ['id'],
    partitionSpec,
  });
}

export type TickFileOptions = {
  /** Parquet field ids, as Spark writes them; ClickHouse writes none. */
  fieldIds?: boolean;
  /** Rename columns in the file (with field ids, readers must still find them). */
  rename?: Record<string, string>;
  omit?: string[];
  statistics?: boolean;
};

export function ticksParquet(ticks: Tick[], options: TickFileOptions = {}): Uint8Array {
  const name = (n: string) => options.rename?.[n] ?? n;
  const id = (n: number) => (options.fieldIds ? { field_id: n } : {});
  const columns: Array<{ elements: SchemaElement[]; data: unknown[]; source: string }> = [
    {
      source: 'id',
      elements: [{ name: name('id'), type: 'INT64', repetition_type: 'REQUIRED', ...id(1) }],
      data: ticks.map((t) => t.id),
    },
    {
      source: 'ts',
      elements: [
        {
          name: name('ts'),
          type: 'INT64',
          repetition_type: 'REQUIRED',
          converted_type: 'TIMESTAMP_MICROS',
          logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
          ...id(2),
        },
      ],
      data: ticks.map((t) => t.ts),
    },
    {
      source: 'sym',
      elements: [
        {
          name: name('sym'),
          type: 'BYTE_ARRAY',
          converted_type: 'UTF8',
          repetition_type: 'REQUIRED',
          ...id(3),
        },
      ],
      data: ticks.map((t) => t.sym),
    },
    {
      source: 'px',
      elements: [
        {
          name: name('px'),
          type: 'INT64',
          converted_type: 'DECIMAL',
          scale: 4,
          precision: 18,
          logical_type: { type: 'DECIMAL', scale: 4, precision: 18 },
          repetition_type: 'REQUIRED',
          ...id(4),
        },
      ],
      data: ticks.map((t) => t.px),
    },
    {
      source: 'qty',
      elements: [{ name: name('qty'), type: 'INT32', repetition_type: 'OPTIONAL', ...id(5) }],
      data: ticks.map((t) => t.qty),
    },
    {
      source: 'tags',
      elements: [
        {
          name: name('tags'),
          repetition_type: 'REQUIRED',
          converted_type: 'LIST',
          num_children: 1,
          ...id(6),
        },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        {
          name: 'element',
          type: 'BYTE_ARRAY',
          converted_type: 'UTF8',
          repetition_type: 'REQUIRED',
          ...id(7),
        },
      ],
      data: ticks.map((t) => t.tags),
    },
  ];
  const kept = columns.filter((c) => !options.omit?.includes(c.source));
  const writer = new ByteWriter();
  parquetWrite({
    writer,
    schema: [{ name: 'root', num_children: kept.length }, ...kept.flatMap((c) => c.elements)],
    columnData: kept.map((c) => ({ name: c.elements[0]?.name as string, data: c.data as never })),
    statistics: options.statistics ?? true,
  });
  return new Uint8Array(writer.getBuffer());
}

/** `n` ticks on one day and symbol, ids from `firstId`. */
export function ticks(n: number, day: string, sym: string, firstId = 1n): Tick[] {
  return Array.from({ length: n }, (_, i) => ({
    id: firstId + BigInt(i),
    ts: dayMicros(day) + BigInt(i) * 1_000_000n,
    sym,
    px: 1_000_000n + BigInt(i),
    qty: i % 3 === 0 ? null : i,
    tags: i % 2 === 0 ? [] : ['a', `t${i}`],
  }));
}
