import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/client.ts';
import type { OffloadConfig } from '../config/schema.ts';
import { UnavailableError } from '../errors.ts';
import type { Catalog } from '../iceberg/catalog.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import type { WatermarkStore } from '../watermark/store.ts';
import type { Faults } from './faults.ts';

/**
 * Everything the steps of a cycle touch, built once per process (the CLI, a Lambda's index.ts, a test).
 * The steps are plain functions of these deps and their event; nothing else is global.
 */
export type PipelineDeps = {
  config: OffloadConfig;
  clickhouse: ClickHouseClient;
  watermarks: WatermarkStore;
  catalog: Catalog;
  /** Object store of the warehouse (file:// or s3://); staged files live in each table's data folder. */
  store: ObjectStore;
  /** Warehouse root URI; tables live at `<warehouse>/<namespace>/<name>`. */
  warehouse: string;
  /** S3 access for ClickHouse's own `s3()` writes when staging is on S3. */
  s3?: {
    endpoint?: string;
    region: string;
    accessKeyId?: string;
    secretAccessKey?: string;
    sessionToken?: string;
  };
  /** This process's clock: labels, durations, metric timestamps. Never a window bound or a lease expiry. */
  clock: () => Date;
  /**
   * The source's clock, which every window bound is measured against: rows get their ingestion time
   * from it, so a planner whose own clock runs fast cannot move a watermark past rows still arriving.
   * Default: ClickHouse's `now64(3)`; tests that simulate time give theirs.
   */
  sourceClock?: () => Promise<Date>;
  /** How long a table's lease lives without renewal; longer than one cycle, shorter than two. */
  leaseSeconds: number;
  /**
   * A loop-back pass starts only this soon after the cycle started; later, the cycle ends and the next
   * one carries on, instead of the execution timing out mid-batch. Undefined: no budget (local runs).
   */
  cycleBudgetSeconds?: number | undefined;
  faults: Faults;
  /** Where metric records go: EMF log lines in a Lambda, a file or nowhere locally. */
  metrics: (records: EmfRecord[]) => void;
  log: (line: Record<string, unknown>) => void;
};

export const DEFAULT_LEASE_SECONDS = 15 * 60;

/** Now, by the source's clock (see `sourceClock`). */
export async function sourceNow(deps: Pick<PipelineDeps, 'clickhouse' | 'sourceClock'>): Promise<Date> {
  if (deps.sourceClock) return deps.sourceClock();
  const [row] = await queryRows<{ now: string }>(
    deps.clickhouse,
    `SELECT toString(toUnixTimestamp64Milli(now64(3))) AS now`,
  );
  const now = new Date(Number(row?.now));
  if (Number.isNaN(now.getTime()))
    throw new UnavailableError(
      `ClickHouse answered SELECT now64(3) with ${JSON.stringify(row)}, not an instant; window bounds come from its clock, check the server`,
    );
  return now;
}

/** The Iceberg module's view of the deps (it counts time in epoch milliseconds). */
export const icebergDeps = (deps: PipelineDeps) => ({
  store: deps.store,
  catalog: deps.catalog,
  clock: () => deps.clock().getTime(),
});
