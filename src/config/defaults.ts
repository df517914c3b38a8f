import type { TableConfigInput } from './schema.ts';

const DAY = 86_400;
/** How late a trade may arrive and still be in its candle when the candle is offloaded. */
export const GOLD_LATENESS_SECONDS = 2 * 3600 + 300;

const bronzeColumns = [
  { name: 'exchange_timestamp', type: 'DateTime64(3)', required: true },
  { name: 'sequence_number', type: 'UInt64', required: true },
  { name: 'symbol', type: 'String', required: true },
  { name: 'price', type: 'Decimal(18, 8)', required: true },
  { name: 'quantity', type: 'Decimal(18, 8)', required: true },
  { name: 'quote_volume', type: 'Decimal(18, 8)', required: true },
  { name: 'event_time', type: 'DateTime64(3)', required: true },
  { name: 'kafka_offset', type: 'UInt64', required: true },
  { name: 'kafka_partition', type: 'UInt16', required: true },
  { name: 'ingestion_timestamp', type: 'DateTime', required: true },
];

const bronze = (exchange: string): TableConfigInput => ({
  name: `bronze_trades_${exchange}`,
  layer: 'bronze',
  source: { database: 'k2', table: `bronze_trades_${exchange}` },
  target: { namespace: 'cold', name: `bronze_trades_${exchange}` },
  cursor: { kind: 'ingestion_time', column: 'ingestion_timestamp' },
  maxWindowSeconds: 3600,
  ttlSeconds: 7 * DAY,
  ttlColumn: 'exchange_timestamp',
  columns: bronzeColumns,
  naturalKey: ['symbol', 'sequence_number'],
  partitionSpec: [{ column: 'exchange_timestamp', transform: 'day' }],
});

const silver: TableConfigInput = {
  name: 'silver_trades',
  layer: 'silver',
  source: { database: 'k2', table: 'silver_trades' },
  target: { namespace: 'cold', name: 'silver_trades' },
  dependsOn: ['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase'],
  cursor: { kind: 'ingestion_time', column: 'processed_at' },
  maxWindowSeconds: 3600,
  ttlSeconds: 30 * DAY,
  ttlColumn: 'timestamp',
  columns: [
    { name: 'message_id', type: 'UUID', required: true },
    { name: 'trade_id', type: 'String', required: true },
    { name: 'exchange', type: 'LowCardinality(String)', required: true },
    { name: 'symbol', type: 'LowCardinality(String)', required: true },
    { name: 'canonical_symbol', type: 'LowCardinality(String)', required: true },
    {
      name: 'asset_class',
      type: "Enum8('equities' = 1, 'crypto' = 2, 'futures' = 3, 'options' = 4)",
      required: true,
    },
    { name: 'currency', type: 'LowCardinality(String)', required: true },
    { name: 'price', type: 'Decimal128(8)', required: true },
    { name: 'quantity', type: 'Decimal128(8)', required: true },
    { name: 'quote_volume', type: 'Decimal128(8)', required: true },
    { name: 'side', type: "Enum8('BUY' = 1, 'SELL' = 2, 'SELL_SHORT' = 3, 'UNKNOWN' = 4)", required: true },
    { name: 'trade_conditions', type: 'Array(String)', required: true },
    { name: 'timestamp', type: "DateTime64(6, 'UTC')", required: true },
    { name: 'ingestion_timestamp', type: "DateTime64(6, 'UTC')", required: true },
    { name: 'processed_at', type: "DateTime64(6, 'UTC')", required: true },
    { name: 'source_sequence', type: 'Nullable(UInt64)' },
    { name: 'platform_sequence', type: 'Nullable(UInt64)' },
    { name: 'vendor_data', type: 'Map(String, String)', required: true },
    { name: 'is_valid', type: 'Bool', required: true },
    { name: 'validation_errors', type: 'Array(String)', required: true },
  ],
  naturalKey: ['message_id'],
  partitionSpec: [
    { column: 'timestamp', transform: 'day' },
    { column: 'exchange', transform: 'identity' },
    { column: 'asset_class', transform: 'identity' },
  ],
};

export const CANDLE_INTERVALS = [
  { suffix: '1m', seconds: 60 },
  { suffix: '5m', seconds: 300 },
  { suffix: '15m', seconds: 900 },
  { suffix: '30m', seconds: 1800 },
  { suffix: '1h', seconds: 3600 },
  { suffix: '1d', seconds: DAY },
] as const;

const gold = ({ suffix, seconds }: (typeof CANDLE_INTERVALS)[number]): TableConfigInput => ({
  name: `ohlcv_${suffix}`,
  layer: 'gold',
  source: { database: 'k2', table: `ohlcv_${suffix}` },
  target: { namespace: 'cold', name: `gold_ohlcv_${suffix}` },
  dependsOn: ['silver_trades'],
  cursor: { kind: 'closed_bucket', column: 'window_start', intervalSeconds: seconds },
  // Candles are keyed by trade time, not arrival time: a trade arriving late still changes a closed
  // candle. A candle is offloaded once trades that late are no longer expected (the feed's trades
  // arrive up to 2 h late); a later trade than that is visible to `audit` as a value mismatch.
  latenessSeconds: GOLD_LATENESS_SECONDS,
  // A window holds whole buckets: at least one, and about a day of small candles per batch.
  maxWindowSeconds: Math.max(seconds, DAY),
  ttlSeconds: (suffix === '1d' ? 730 : 365) * DAY,
  columns: [
    { name: 'exchange', type: 'LowCardinality(String)', required: true },
    { name: 'canonical_symbol', type: 'LowCardinality(String)', required: true },
    { name: 'window_start', type: 'DateTime64(3)', required: true },
    { name: 'open_time', type: 'DateTime64(3)', required: true },
    { name: 'open_price', type: 'Decimal64(8)', required: true },
    { name: 'close_time', type: 'DateTime64(3)', required: true },
    { name: 'close_price', type: 'Decimal64(8)', required: true },
    { name: 'high_price', type: 'Decimal64(8)', required: true },
    { name: 'low_price', type: 'Decimal64(8)', required: true },
    { name: 'volume', type: 'Decimal(38, 8)', required: true },
    { name: 'quote_volume', type: 'Decimal(38, 8)', required: true },
    { name: 'trade_count', type: 'UInt64', required: true },
  ],
  naturalKey: ['exchange', 'canonical_symbol', 'window_start'],
  partitionSpec: [
    { column: 'window_start', transform: 'month' },
    { column: 'exchange', transform: 'identity' },
  ],
  // SummingMergeTree keeps partial rows per candle until merges run: rebuild one final row per candle.
  reaggregate: {
    groupBy: ['exchange', 'canonical_symbol', 'window_start'],
    columns: {
      open_time: 'min(open_time)',
      open_price: 'argMin(open_price, open_time)',
      close_time: 'max(close_time)',
      close_price: 'argMax(close_price, close_time)',
      high_price: 'max(high_price)',
      low_price: 'min(low_price)',
      volume: 'sum(volume)',
      quote_volume: 'sum(quote_volume)',
      trade_count: 'sum(trade_count)',
    },
  },
});

/** The ten tables of the hot tier, in layer order. */
export const DEFAULT_TABLES: TableConfigInput[] = [
  bronze('binance'),
  bronze('kraken'),
  bronze('coinbase'),
  silver,
  ...CANDLE_INTERVALS.map(gold),
];
