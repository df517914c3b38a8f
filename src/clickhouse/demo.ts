import type { ClickHouseClient } from '@clickhouse/client';
import { CANDLE_INTERVALS } from '../config/defaults.ts';
import { ident, qualifiedName, stringLiteral } from './sql.ts';

/**
 * The hot tier of the seed system, for the demo and the tests: three bronze trade tables, silver fed
 * from them by materialized views, six candle tables fed from silver by materialized views, with the
 * seed's engines, partitions, sort keys, TTLs and defaults.
 */
export const DEMO_EXCHANGES = [
  // Each exchange spells symbols its own way; silver maps them to `BASE/QUOTE`.
  { name: 'binance', symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT'], share: 0.5 },
  { name: 'kraken', symbols: ['XBT/USD', 'ETH/USD', 'SOL/USD'], share: 0.3 },
  { name: 'coinbase', symbols: ['BTC-USD', 'ETH-USD', 'SOL-USD', 'DOGE-USD'], share: 0.2 },
] as const;
export type DemoExchange = (typeof DEMO_EXCHANGES)[number]['name'];

export const bronzeTable = (exchange: string) => `bronze_trades_${exchange}`;

function bronzeDdl(db: string, exchange: string): string {
  const order =
    exchange === 'coinbase'
      ? '(symbol, exchange_timestamp, sequence_number)'
      : '(exchange_timestamp, sequence_number)';
  return `CREATE TABLE IF NOT EXISTS ${qualifiedName(db, bronzeTable(exchange))} (
    exchange_timestamp DateTime64(3),
    sequence_number UInt64,
    symbol String,
    price Decimal(18, 8),
    quantity Decimal(18, 8),
    quote_volume Decimal(18, 8),
    event_time DateTime64(3),
    kafka_offset UInt64,
    kafka_partition UInt16,
    ingestion_timestamp DateTime DEFAULT now()
  ) ENGINE = MergeTree
  PARTITION BY toYYYYMMDD(exchange_timestamp)
  ORDER BY ${order}
  TTL toDateTime(exchange_timestamp) + INTERVAL 7 DAY`;
}

function silverDdl(db: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualifiedName(db, 'silver_trades')} (
    message_id UUID,
    trade_id String,
    exchange LowCardinality(String),
    symbol LowCardinality(String),
    canonical_symbol LowCardinality(String),
    asset_class Enum8('equities' = 1, 'crypto' = 2, 'futures' = 3, 'options' = 4),
    currency LowCardinality(String),
    price Decimal128(8),
    quantity Decimal128(8),
    quote_volume Decimal128(8),
    side Enum8('BUY' = 1, 'SELL' = 2, 'SELL_SHORT' = 3, 'UNKNOWN' = 4),
    trade_conditions Array(String),
    timestamp DateTime64(6, 'UTC'),
    ingestion_timestamp DateTime64(6, 'UTC'),
    processed_at DateTime64(6, 'UTC') DEFAULT now64(6),
    source_sequence Nullable(UInt64),
    platform_sequence Nullable(UInt64),
    vendor_data Map(String, String),
    is_valid Bool DEFAULT true,
    validation_errors Array(String) DEFAULT []
  ) ENGINE = MergeTree
  PARTITION BY (exchange, asset_class, toYYYYMMDD(timestamp))
  ORDER BY (exchange, asset_class, canonical_symbol, timestamp)
  TTL toDateTime(timestamp) + INTERVAL 30 DAY`;
}

function candleDdl(db: string, suffix: string): string {
  const ttl = suffix === '1d' ? '2 YEAR' : '1 YEAR';
  return `CREATE TABLE IF NOT EXISTS ${qualifiedName(db, `ohlcv_${suffix}`)} (
    exchange LowCardinality(String),
    canonical_symbol LowCardinality(String),
    window_start DateTime64(3),
    open_time DateTime64(3),
    open_price Decimal64(8),
    close_time DateTime64(3),
    close_price Decimal64(8),
    high_price Decimal64(8),
    low_price Decimal64(8),
    volume Decimal(38, 8),
    quote_volume Decimal(38, 8),
    trade_count UInt64
  ) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
  PARTITION BY (exchange, toYYYYMM(window_start))
  ORDER BY (exchange, canonical_symbol, window_start)
  TTL toDateTime(window_start) + INTERVAL ${ttl}`;
}

/** `BASE/QUOTE` from each exchange's own spelling (Kraken says XBT for bitcoin). */
function canonicalSymbolSql(exchange: string): string {
  if (exchange === 'binance')
    return `multiIf(endsWith(symbol, 'USDT'), concat(substring(symbol, 1, length(symbol) - 4), '/USDT'), endsWith(symbol, 'USDC'), concat(substring(symbol, 1, length(symbol) - 4), '/USDC'), symbol)`;
  if (exchange === 'kraken') return `replaceRegexpOne(symbol, '^XBT/', 'BTC/')`;
  return `replaceOne(symbol, '-', '/')`;
}

/**
 * Bronze -> silver. Choices a real normalizer would make:
 * - `message_id` is derived from (exchange, symbol, sequence_number), so a re-delivered trade keeps
 *   its id and shows up as a duplicate key instead of a new trade;
 * - bronze carries no aggressor side, so `side` is UNKNOWN;
 * - `processed_at` is the bronze row's `ingestion_timestamp` (the view runs inside that very insert,
 *   so for live rows it is the insert time); a back-dated demo backfill then spreads silver's cursor
 *   over the same span as bronze's instead of stamping every row with the backfill's wall clock;
 * - trades that arrive over a minute after they happened carry the condition `late_arrival`.
 */
function silverViewSql(db: string, exchange: string): string {
  return `CREATE MATERIALIZED VIEW IF NOT EXISTS ${qualifiedName(db, `${bronzeTable(exchange)}_to_silver`)}
  TO ${qualifiedName(db, 'silver_trades')} AS
  SELECT
    reinterpretAsUUID(MD5(concat(${stringLiteral(exchange)}, '|', symbol, '|', toString(sequence_number)))) AS message_id,
    toString(sequence_number) AS trade_id,
    ${stringLiteral(exchange)} AS exchange,
    symbol,
    ${canonicalSymbolSql(exchange)} AS canonical_symbol,
    'crypto' AS asset_class,
    splitByChar('/', canonical_symbol)[2] AS currency,
    toDecimal128(price, 8) AS price,
    toDecimal128(quantity, 8) AS quantity,
    toDecimal128(quote_volume, 8) AS quote_volume,
    'UNKNOWN' AS side,
    if(dateDiff('second', exchange_timestamp, ingestion_timestamp) > 60, ['late_arrival'], []) AS trade_conditions,
    toDateTime64(exchange_timestamp, 6, 'UTC') AS timestamp,
    toDateTime64(ingestion_timestamp, 6, 'UTC') AS ingestion_timestamp,
    toDateTime64(ingestion_timestamp, 6, 'UTC') AS processed_at,
    sequence_number AS source_sequence,
    CAST(NULL AS Nullable(UInt64)) AS platform_sequence,
    map('kafka_partition', toString(kafka_partition), 'kafka_offset', toString(kafka_offset)) AS vendor_data,
    price > 0 AND quantity > 0 AS is_valid,
    arrayFilter(e -> e != '', [if(price > 0, '', 'non_positive_price'), if(quantity > 0, '', 'non_positive_quantity')]) AS validation_errors
  FROM ${qualifiedName(db, bronzeTable(exchange))}`;
}

/**
 * Silver -> one candle table. Like the seed, the view aggregates each insert block on its own, so a
 * candle touched by several blocks is several partial rows until SummingMergeTree merges them (and the
 * merge sums volumes but keeps an arbitrary row's open/close/high/low: staging re-aggregates instead).
 */
function candleViewSql(db: string, suffix: string, seconds: number): string {
  return `CREATE MATERIALIZED VIEW IF NOT EXISTS ${qualifiedName(db, `ohlcv_${suffix}_mv`)}
  TO ${qualifiedName(db, `ohlcv_${suffix}`)} AS
  SELECT
    exchange,
    canonical_symbol,
    toStartOfInterval(timestamp, INTERVAL ${seconds} SECOND) AS window_start,
    min(timestamp) AS open_time,
    argMin(price, timestamp) AS open_price,
    max(timestamp) AS close_time,
    argMax(price, timestamp) AS close_price,
    max(price) AS high_price,
    min(price) AS low_price,
    sum(quantity) AS volume,
    sum(quote_volume) AS quote_volume,
    count() AS trade_count
  FROM ${qualifiedName(db, 'silver_trades')}
  WHERE is_valid
  GROUP BY exchange, canonical_symbol, window_start`;
}

/** Every statement of the demo schema, tables before the views that write into them. */
export function demoSchemaStatements(database = 'k2'): string[] {
  const db = database;
  return [
    `CREATE DATABASE IF NOT EXISTS ${ident(db, 'database')}`,
    ...DEMO_EXCHANGES.map((e) => bronzeDdl(db, e.name)),
    silverDdl(db),
    ...CANDLE_INTERVALS.map((c) => candleDdl(db, c.suffix)),
    ...CANDLE_INTERVALS.map((c) => candleViewSql(db, c.suffix, c.seconds)),
    ...DEMO_EXCHANGES.map((e) => silverViewSql(db, e.name)),
  ];
}

/** Creates the ten tables and nine views (idempotent). */
export async function createDemoSchema(client: ClickHouseClient, database = 'k2'): Promise<void> {
  for (const query of demoSchemaStatements(database)) await client.command({ query });
}
