import type { ClickHouseClient } from '@clickhouse/client';
import { InputError } from '../errors.ts';
import { toInstant } from '../plan/batch.ts';
import { bronzeTable, DEMO_EXCHANGES } from './demo.ts';
import { qualifiedName, stringLiteral } from './sql.ts';

export type GenerateTradesOptions = {
  /** Rows over all three exchanges (split 50/30/20). */
  rows: number;
  /** Arrival times spread evenly over `[end - spanHours, end)`. */
  spanHours?: number;
  /** End of the span; defaults to now. Keep it recent: the bronze TTL (7 days) deletes older rows. */
  end?: string | Date;
  /** Share of trades that arrive late: 2 min to 2 h after they happened. */
  lateFraction?: number;
  /** Same seed, same options: the same rows. */
  seed?: number;
  /**
   * Added to every sequence number (default 0). Sequence numbers are arrival instants in µs, so a second
   * stream over arrival times another stream already covers (a replayed partition's trades) would meet
   * its keys; an offset past every instant (say 10^16 per stream) keeps the two apart.
   */
  sequenceOffset?: number;
  database?: string;
};

export type GeneratedTrades = {
  rows: Record<string, number>;
  /** Range of `ingestion_timestamp` (the bronze cursor): `[from, to)`. */
  from: string;
  to: string;
};

const BASE_PRICE: Record<string, number> = {
  BTC: 65_000,
  XBT: 65_000,
  ETH: 3_400,
  SOL: 150,
  BNB: 600,
  DOGE: 0.15,
};

function basePrice(symbol: string): number {
  const base = /^[A-Z]+?(?=USDT$|[-/]|$)/.exec(symbol)?.[0] ?? '';
  return BASE_PRICE[base] ?? 100;
}

const ROWS_PER_INSERT = 1_000_000;

const finite = (value: number, name: string, min: number, max: number) => {
  if (!Number.isFinite(value) || value < min || value > max)
    throw new InputError(`generateTrades: ${name} must be between ${min} and ${max}, got ${value}`, {
      field: name,
      value,
    });
  return value;
};

/**
 * One exchange's trades as an INSERT ... SELECT over `numbers(n)`: ClickHouse computes every value from
 * hashes of (seed, exchange, row), so millions of rows insert in seconds and the same seed gives the
 * same rows. Row i arrives at `start + i * step` (µs); its sequence number is that arrival instant in
 * µs (plus `sequenceOffset`), unique per exchange and increasing per symbol. Prices are a per-symbol random walk of log price.
 */
function exchangeInsertSql(
  db: string,
  exchange: number,
  symbols: readonly string[],
  n: number,
  chunk: { offset: number; count: number },
  startUs: number,
  spanUs: number,
  lateFraction: number,
  seed: number,
  sequenceOffset: number,
): string {
  const S = symbols.length;
  const h = (tag: number) => `(cityHash64(${seed}, ${exchange}, ${tag}, number) / 18446744073709551616.0)`;
  const stepUs = spanUs / n;
  // Over its share of rows, each symbol drifts by a few percent, as a few hours of a liquid market do.
  const sigma = 0.03 / Math.sqrt(Math.max(1, n / S));
  const bases = symbols.map(basePrice);
  const decimals = bases.map((b) => (b >= 100 ? 2 : b >= 1 ? 4 : 6));
  const name = DEMO_EXCHANGES[exchange]?.name as string;
  const step = `((${h(4)} - 0.5) * 3.4641016)`;
  // The walk continues across chunks: each symbol's walk so far, summed over the rows before this chunk.
  const before = `(SELECT groupArray(v) FROM (SELECT number % ${S} AS s, sum(${step}) AS v FROM numbers(${chunk.offset}) GROUP BY s ORDER BY s))`;
  return `INSERT INTO ${qualifiedName(db, bronzeTable(name))}
    (exchange_timestamp, sequence_number, symbol, price, quantity, quote_volume, event_time, kafka_offset,
     kafka_partition, ingestion_timestamp)
  SELECT
    fromUnixTimestamp64Milli(trade_ms, 'UTC') AS exchange_timestamp,
    arrival_us + ${sequenceOffset} AS sequence_number,
    [${symbols.map(stringLiteral).join(', ')}][s + 1] AS symbol,
    toDecimal64(toString(p), 8) AS price,
    toDecimal64(toString(q), 8) AS quantity,
    toDecimal64(toString(round(p * q, 8)), 8) AS quote_volume,
    fromUnixTimestamp64Milli(trade_ms + toInt64(1 + ${h(3)} * 20), 'UTC') AS event_time,
    ${Math.floor(startUs / 1000)} + number AS kafka_offset,
    toUInt16(cityHash64(symbol) % 6) AS kafka_partition,
    toDateTime(intDiv(arrival_us, 1000000), 'UTC') AS ingestion_timestamp
  FROM (
    SELECT
      number,
      number % ${S} AS s,
      toUInt64(${startUs} + floor(number * ${stepUs})) AS arrival_us,
      toInt64(intDiv(arrival_us, 1000)) - toInt64(if(${h(1)} < ${lateFraction},
        120000 + ${h(2)} * 7200000, 20 + ${h(2)} * 400)) AS trade_ms,
      round([${bases.join(', ')}][s + 1] * exp(${sigma} * (${before}[s + 1] + sum(${step})
        OVER (PARTITION BY s ORDER BY number ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))),
        [${decimals.join(', ')}][s + 1]) AS p,
      greatest(round(exp(log(5) + ${h(5)} * log(10000)) / p, 8), 0.00000001) AS q
    FROM numbers(${chunk.offset}, ${chunk.count})
  )
  SETTINGS min_insert_block_size_rows = 1048576, min_insert_block_size_bytes = 0`;
}

/**
 * Inserts realistic trades into the three bronze tables (and so, through the views, into silver and
 * gold). `ingestion_timestamp` is set explicitly from each row's arrival time: left to its DEFAULT
 * now(), every demo row would sit at the same second and the offload would have one window to do.
 */
export async function generateTrades(
  client: ClickHouseClient,
  options: GenerateTradesOptions,
): Promise<GeneratedTrades> {
  const rows = finite(options.rows, 'rows', 0, 1e9);
  const spanHours = finite(options.spanHours ?? 6, 'spanHours', 1 / 60, 24 * 365);
  const lateFraction = finite(options.lateFraction ?? 0.01, 'lateFraction', 0, 1);
  const seed = Math.trunc(finite(options.seed ?? 1, 'seed', 0, Number.MAX_SAFE_INTEGER));
  // Below 2^64 with any arrival instant of the next millennia added.
  const sequenceOffset = Math.trunc(finite(options.sequenceOffset ?? 0, 'sequenceOffset', 0, 1e19));
  const endMs = Math.floor(Date.parse(toInstant(options.end ?? new Date(), 'end')) / 1000) * 1000;
  const spanUs = Math.round(spanHours * 3600) * 1_000_000;
  const startUs = endMs * 1000 - spanUs;
  if (rows > spanUs)
    throw new InputError(
      `generateTrades: ${rows} rows do not fit in ${spanHours} h at one per microsecond; widen spanHours`,
      {
        rows,
        spanHours,
      },
    );
  const counts: Record<string, number> = {};
  let left = Math.floor(rows);
  for (const [index, exchange] of DEMO_EXCHANGES.entries()) {
    const n = index === DEMO_EXCHANGES.length - 1 ? left : Math.round(rows * exchange.share);
    left -= n;
    counts[exchange.name] = n;
    if (n === 0) continue;
    // Bounded statements keep the engine's memory flat whatever `rows` is.
    for (let offset = 0; offset < n; offset += ROWS_PER_INSERT) {
      const chunk = { offset, count: Math.min(ROWS_PER_INSERT, n - offset) };
      const db = options.database ?? 'k2';
      const query = exchangeInsertSql(
        db,
        index,
        exchange.symbols,
        n,
        chunk,
        startUs,
        spanUs,
        lateFraction,
        seed,
        sequenceOffset,
      );
      await client.command({ query });
    }
  }
  return {
    rows: counts,
    from: new Date(startUs / 1000).toISOString(),
    to: new Date(endMs).toISOString(),
  };
}
