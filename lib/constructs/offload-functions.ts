import { Duration, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { allow } from '../nag.ts';
import { FUNCTION_NAMES, type FunctionName, OffloadFunction } from './offload-function.ts';
import type { Warehouse } from './warehouse.ts';

/**
 * Environment every function reads (see `functions/<name>/index.ts` and src/runtime/settings.ts): the
 * Glue database of a table is its target namespace. Secrets are ARNs, never values.
 * The secrets are JSON objects with a `url` key (`https://user:password@host:8443` for ClickHouse,
 * `postgres://user:password@host:5432/db` for Postgres).
 */
export const FUNCTION_ENV = {
  stage: 'K2_STAGE',
  warehouse: 'WAREHOUSE',
  catalog: 'K2_CATALOG',
  clickhouseSecretArn: 'K2_CLICKHOUSE_SECRET_ARN',
  postgresSecretArn: 'K2_POSTGRES_SECRET_ARN',
  /** Path of the bundled table config; absent when the default tables are used. */
  config: 'K2_CONFIG',
  /** Table lease lifetime: one schedule period, so a lease outlives its execution but not the next. */
  leaseSeconds: 'K2_LEASE_SECONDS',
  /** Loop-back passes start only this soon after the execution started (half its timeout). */
  cycleBudgetSeconds: 'K2_CYCLE_BUDGET_SECONDS',
} as const;

/** The table config is copied next to each bundle under this name. */
export const BUNDLED_CONFIG = 'tables.json';

type Access = {
  memorySize: number;
  timeout: Duration;
  clickhouse: boolean;
  postgres: boolean;
  /** `write`: read the bucket, write the table folders of the Glue database (data, metadata, staged files). */
  s3: 'none' | 'read' | 'write';
  glue: 'none' | 'read' | 'write';
  /** Needs the VPC to reach ClickHouse or Postgres. */
  vpc: boolean;
};

/** A step that only writes the watermark store (a failure count, a lease). */
const WATERMARK_ONLY: Access = {
  memorySize: 256,
  timeout: Duration.seconds(30),
  clickhouse: false,
  postgres: true,
  s3: 'none',
  glue: 'none',
  vpc: true,
};

/** What each function touches; everything else is denied by omission. */
export const FUNCTION_ACCESS: Record<FunctionName, Access> = {
  'plan-cycle': {
    memorySize: 512,
    timeout: Duration.seconds(60),
    clickhouse: true,
    postgres: true,
    s3: 'write',
    glue: 'write',
    vpc: true,
  },
  'stage-batch': {
    memorySize: 2048,
    timeout: Duration.minutes(10),
    clickhouse: true,
    postgres: true,
    s3: 'write',
    glue: 'none',
    vpc: true,
  },
  'commit-batch': {
    memorySize: 1024,
    timeout: Duration.minutes(5),
    clickhouse: false,
    postgres: true,
    s3: 'write',
    glue: 'write',
    vpc: true,
  },
  'commit-watermark': {
    memorySize: 512,
    timeout: Duration.seconds(60),
    clickhouse: false,
    postgres: true,
    s3: 'read',
    glue: 'read',
    vpc: true,
  },
  'record-failure': WATERMARK_ONLY,
  // Also runs the cycle's per-hour check: grouped counts on ClickHouse against the ledger in Postgres.
  'publish-cycle': {
    memorySize: 512,
    timeout: Duration.minutes(2),
    clickhouse: true,
    postgres: true,
    s3: 'none',
    glue: 'none',
    vpc: true,
  },
  // The heartbeat of a running Spark commit job: one UPDATE of the table's lease row.
  'extend-lease': WATERMARK_ONLY,
  health: {
    memorySize: 512,
    timeout: Duration.minutes(2),
    clickhouse: true,
    postgres: true,
    s3: 'read',
    glue: 'read',
    vpc: true,
  },
};

export type OffloadFunctionsProps = {
  resourcePrefix: string;
  functionsDir: string;
  projectRoot: string;
  tablesConfigPath?: string;
  stageName: string;
  leaseSeconds: number;
  cycleBudgetSeconds: number;
  warehouse: Warehouse;
  glueDatabase: string;
  clickhouseSecret: secrets.ISecret;
  postgresSecret: secrets.ISecret;
  logRetentionDays: number;
  vpc?: { vpc: ec2.IVpc; subnets: ec2.ISubnet[]; securityGroups: ec2.ISecurityGroup[] };
};

/** The eight functions, each granted only what `FUNCTION_ACCESS` lists, on this stage's resources. */
export class OffloadFunctions extends Construct {
  readonly byName: Record<FunctionName, OffloadFunction>;

  constructor(scope: Construct, id: string, props: OffloadFunctionsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const bucket = props.warehouse.bucket;
    const environment = (access: Access): Record<string, string> => ({
      [FUNCTION_ENV.stage]: props.stageName,
      [FUNCTION_ENV.warehouse]: props.warehouse.uri,
      [FUNCTION_ENV.catalog]: 'glue',
      [FUNCTION_ENV.leaseSeconds]: String(props.leaseSeconds),
      [FUNCTION_ENV.cycleBudgetSeconds]: String(props.cycleBudgetSeconds),
      ...(access.clickhouse ? { [FUNCTION_ENV.clickhouseSecretArn]: props.clickhouseSecret.secretArn } : {}),
      ...(access.postgres ? { [FUNCTION_ENV.postgresSecretArn]: props.postgresSecret.secretArn } : {}),
      ...(props.tablesConfigPath ? { [FUNCTION_ENV.config]: `/var/task/${BUNDLED_CONFIG}` } : {}),
    });
    const glueArns = [
      stack.formatArn({ service: 'glue', resource: 'catalog' }),
      stack.formatArn({ service: 'glue', resource: 'database', resourceName: props.glueDatabase }),
      stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${props.glueDatabase}/*` }),
    ];

    const entries = FUNCTION_NAMES.map((name) => {
      const access = FUNCTION_ACCESS[name];
      const fn = new OffloadFunction(this, name, {
        name,
        functionsDir: props.functionsDir,
        projectRoot: props.projectRoot,
        resourcePrefix: props.resourcePrefix,
        memorySize: access.memorySize,
        timeout: access.timeout,
        environment: environment(access),
        logRetentionDays: props.logRetentionDays,
        ...(props.vpc && access.vpc ? { vpc: props.vpc } : {}),
        ...(props.tablesConfigPath
          ? { extraFiles: [[props.tablesConfigPath, BUNDLED_CONFIG]] as [string, string][] }
          : {}),
      });
      const grant = (actions: string[], resources: string[], why: string) =>
        allow(fn.role, { actions, resources }, why);
      const objects = 'Object keys (Parquet files, Iceberg metadata and manifests) are named at run time';
      if (access.clickhouse) props.clickhouseSecret.grantRead(fn.role);
      if (access.postgres) props.postgresSecret.grantRead(fn.role);
      if (access.s3 !== 'none') grant(['s3:ListBucket'], [bucket.bucketArn], objects);
      if (access.s3 !== 'none')
        grant(
          ['s3:GetObject'],
          [bucket.arnForObjects('*')],
          `${objects}; read-only, in the warehouse bucket.`,
        );
      // Batches are staged inside their table's folder (`<namespace>/<table>/data/<batch id>/`), where
      // the committer adopts the files; tables are created by the planner on first use.
      if (access.s3 === 'write')
        grant(
          ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
          [bucket.arnForObjects(`${props.glueDatabase}/*`)],
          `${objects}; writes limited to the table folders of the Glue database.`,
        );
      if (access.glue !== 'none')
        grant(
          [
            'glue:GetDatabase',
            'glue:GetTable',
            'glue:GetTables',
            ...(access.glue === 'write' ? ['glue:CreateTable', 'glue:UpdateTable'] : []),
          ],
          glueArns,
          'Iceberg tables are created per configured table; access is limited to the tables of one Glue database.',
        );
      return [name, fn] as const;
    });
    this.byName = Object.fromEntries(entries) as Record<FunctionName, OffloadFunction>;
  }
}
