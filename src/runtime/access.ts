/**
 * What each Lambda function touches, declared once: `functions/<name>/index.ts` builds its clients from
 * it and `lib/constructs/offload-functions.ts` grants exactly this on the stage's resources. The IAM
 * contract test (test/infra/iam-contract.test.ts) checks the grants against every AWS call the functions
 * make while the integration suite runs them.
 */
export const FUNCTION_NAMES = [
  'plan-cycle',
  'stage-batch',
  'commit-batch',
  'commit-watermark',
  'record-failure',
  'publish-cycle',
  'health',
  'extend-lease',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export type FunctionAccess = {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  /** Reads the ClickHouse secret and connects to ClickHouse. */
  readonly clickhouse: boolean;
  /** Reads the Postgres secret and connects to Postgres (watermarks, leases). */
  readonly postgres: boolean;
  /**
   * Brings the watermark tables to the current schema at container start. Only the planner does: every
   * cycle starts there, so the later steps find the tables in place and need no DDL rights.
   */
  readonly migrate?: boolean;
  /**
   * Objects of the Glue database's table folders (`<database>/<table>/...`): `read` Iceberg metadata,
   * manifests and data files; `stage` also creates the data files of its batch attempt
   * (`.../data/<batch>/<attempt>/`, single or multipart uploads; never deletes); `write` also writes
   * metadata and manifests and
   * deletes its own unreferenced files.
   */
  readonly s3: 'none' | 'read' | 'stage' | 'write';
  /**
   * Tables of the stage's Glue database: `read` GetTable; `create` also GetDatabase and CreateTable (the
   * planner creates a table on first use); `commit` also UpdateTable (the metadata swap of a commit).
   */
  readonly glue: 'none' | 'read' | 'create' | 'commit';
  /** Needs the VPC to reach ClickHouse or Postgres. */
  readonly vpc: boolean;
};

/** A step that only writes the watermark store (a failure count, a lease). */
const WATERMARK_ONLY: FunctionAccess = {
  memoryMb: 256,
  timeoutSeconds: 30,
  clickhouse: false,
  postgres: true,
  s3: 'none',
  glue: 'none',
  vpc: true,
};

export const FUNCTION_ACCESS: Record<FunctionName, FunctionAccess> = {
  // Leases, reconcile and windows; creates a table's first metadata file and its Glue table.
  'plan-cycle': {
    memoryMb: 512,
    timeoutSeconds: 60,
    clickhouse: true,
    postgres: true,
    migrate: true,
    s3: 'write',
    glue: 'create',
    vpc: true,
  },
  // Reads the table (is the batch already committed?), checks its lease in Postgres just before the first
  // write, then writes the window's Parquet to a folder of its own in the table's data folder.
  'stage-batch': {
    memoryMb: 2048,
    timeoutSeconds: 600,
    clickhouse: true,
    postgres: true,
    s3: 'stage',
    glue: 'read',
    vpc: true,
  },
  // The in-Lambda committer: manifests, metadata, the Glue swap; checks the lease in Postgres.
  'commit-batch': {
    memoryMb: 1024,
    timeoutSeconds: 300,
    clickhouse: false,
    postgres: true,
    s3: 'write',
    glue: 'commit',
    vpc: true,
  },
  // Verifies the marker in Iceberg, then moves the watermark.
  'commit-watermark': {
    memoryMb: 512,
    timeoutSeconds: 60,
    clickhouse: false,
    postgres: true,
    s3: 'read',
    glue: 'read',
    vpc: true,
  },
  // Counts the failure in the watermark store.
  'record-failure': WATERMARK_ONLY,
  // Publishes the pass's metrics and runs the per-hour check: grouped counts on ClickHouse against the
  // ledger in Postgres.
  'publish-cycle': {
    memoryMb: 512,
    timeoutSeconds: 120,
    clickhouse: true,
    postgres: true,
    s3: 'none',
    glue: 'none',
    vpc: true,
  },
  // The heartbeat of a running Spark commit job: one compare-and-set UPDATE of the table's lease row.
  'extend-lease': WATERMARK_ONLY,
  health: {
    memoryMb: 512,
    timeoutSeconds: 120,
    clickhouse: true,
    postgres: true,
    s3: 'read',
    glue: 'read',
    vpc: true,
  },
};
