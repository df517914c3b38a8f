import type { TableConfig } from '../../src/config/schema.ts';

/** Generator expressions over `numbers(N)` with a per-file constant `v` (day, exchange...). */
export const generators: Record<TableConfig['layer'], Record<string, string>> = {
  bronze: {
    exchange_timestamp: "toDateTime64(v.day, 6, 'UTC') + number * 7",
    sequence_number: '9007199254740993 + number',
    symbol: "['BTCUSDT', 'ETHUSDT'][number % 2 + 1]",
    price: 'toDecimal64(number, 8) / 3',
    quantity: 'toDecimal64(number % 17, 8) + toDecimal64(0.12345678, 8)',
    quote_volume: 'toDecimal64(number, 8) * 2',
    event_time: "toDateTime64(v.day, 6, 'UTC') + number * 7",
    kafka_offset: 'number',
    kafka_partition: 'number % 4',
    ingestion_timestamp: "toDateTime64(v.day, 6, 'UTC') + number * 7 + 1",
  },
  silver: {
    message_id: 'generateUUIDv4(number)',
    trade_id: 'toString(number)',
    exchange: 'v.exchange',
    symbol: "'BTC-USD'",
    canonical_symbol: "'BTC/USD'",
    asset_class: 'v.asset_class',
    currency: "'USD'",
    price: 'toDecimal128(number, 8) / 7',
    quantity: 'toDecimal128(0.5, 8)',
    quote_volume: 'toDecimal128(number, 8) / 14',
    side: "['BUY', 'SELL'][number % 2 + 1]",
    trade_conditions: "arrayMap(i -> concat('c', toString(i)), range(number % 3))",
    timestamp: "toDateTime64(concat(v.day, ' 00:00:00.123456'), 6, 'UTC') + number",
    ingestion_timestamp: "toDateTime64(v.day, 6, 'UTC') + number + 1",
    processed_at: "toDateTime64(v.day, 6, 'UTC') + number + 2",
    source_sequence: 'if(number % 5 = 0, NULL, number)',
    platform_sequence: 'NULL',
    vendor_data: "map('seq', toString(number), 'src', v.exchange)",
    is_valid: 'number % 2 = 0',
    validation_errors: "if(number % 2 = 0, [], ['price_out_of_range'])",
  },
  gold: {
    exchange: 'v.exchange',
    canonical_symbol: "['BTC/USD', 'ETH/USD'][number % 2 + 1]",
    window_start: "toStartOfHour(toDateTime64(v.day, 6, 'UTC') + number * 3600)",
    open_time: "toDateTime64(v.day, 6, 'UTC') + number * 3600 + 1",
    open_price: 'toDecimal64(100 + number, 8)',
    close_time: "toDateTime64(v.day, 6, 'UTC') + number * 3600 + 3599",
    close_price: 'toDecimal64(101 + number, 8)',
    high_price: 'toDecimal64(102 + number, 8)',
    low_price: 'toDecimal64(99 + number, 8)',
    volume: 'toDecimal128(number, 8) / 3',
    quote_volume: 'toDecimal128(number, 8) * 1000',
    trade_count: 'number * 10',
  },
};
export const from = (n: number, v: Record<string, string>) =>
  `numbers(${n}) AS n, (SELECT ${Object.entries(v)
    .map(([k, x]) => `'${x}' AS ${k}`)
    .join(', ')}) AS v`;
