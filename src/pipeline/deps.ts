import type { ClickHouseClient } from '@clickhouse/client';
import type { OffloadConfig } from '../config/schema.ts';
import type { Catalog } from '../iceberg/catalog.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import type { S3Staging } from '../stage/targets.ts';
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
  /**
   * Where ClickHouse's own `s3()` calls go, and how staged files reach S3 (default: streamed through
   * this process). No credentials: SQL never carries a secret to ClickHouse.
   */
  s3?: { endpoint?: string; region: string; staging?: S3Staging };
  /** A fresh nonce per staging attempt (its folder's name); random by default. */
  nonce?: () => string;
  clock: () => Date;
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

/** The Iceberg module's view of the deps (it counts time in epoch milliseconds). */
export const icebergDeps = (deps: PipelineDeps) => ({
  store: deps.store,
  catalog: deps.catalog,
  clock: () => deps.clock().getTime(),
});
