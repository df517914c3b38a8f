import { Duration, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import {
  FUNCTION_ACCESS,
  FUNCTION_NAMES,
  type FunctionAccess,
  type FunctionName,
} from '../../src/runtime/access.ts';
import { allow } from '../nag.ts';
import { OffloadFunction } from './offload-function.ts';
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

/** What each function touches, declared once in src/runtime/access.ts; everything else is denied by omission. */
export { FUNCTION_ACCESS };

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
  /** Customer managed keys of the bucket and of the secrets, when they use one. */
  bucketKeyArn?: string;
  secretsKeyArn?: string;
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
    const environment = (access: FunctionAccess): Record<string, string> => ({
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
        memorySize: access.memoryMb,
        timeout: Duration.seconds(access.timeoutSeconds),
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
      const tables = bucket.arnForObjects(`${props.glueDatabase}/*`);
      // GetSecretValue only: the functions never describe, list or change a secret.
      const secret = 'The connection secret of a server this function connects to.';
      if (access.clickhouse)
        grant(['secretsmanager:GetSecretValue'], [props.clickhouseSecret.secretArn], secret);
      if (access.postgres) grant(['secretsmanager:GetSecretValue'], [props.postgresSecret.secretArn], secret);
      if (access.s3 !== 'none')
        grant(
          ['s3:GetObject'],
          [tables],
          `${objects}; read-only, in the table folders of the Glue database.`,
        );
      // Batches are staged inside their table's data folder (`<database>/<table>/data/<batch id>/`), in a
      // folder per attempt, create-only: a stager never deletes or lists (orphan removal does that), so
      // not even a stalled one can touch a file a snapshot refers to.
      if (access.s3 === 'stage')
        grant(
          ['s3:PutObject', 's3:AbortMultipartUpload'],
          [bucket.arnForObjects(`${props.glueDatabase}/*/data/*`)],
          `${objects}; staged data files only, single or multipart uploads, in the data folders of the Glue database's tables.`,
        );
      if (access.s3 === 'write')
        grant(
          ['s3:PutObject', 's3:DeleteObject'],
          [tables],
          `${objects}; writes limited to the table folders of the Glue database.`,
        );
      // Glue authorizes a table request on the catalog, the database and the table.
      const why =
        'Iceberg tables are created per configured table; access is limited to the tables of one Glue database.';
      // Customer managed keys: only as used by S3 and Secrets Manager on this function's behalf.
      const viaService = (service: string) => ({
        StringEquals: { 'kms:ViaService': `${service}.${stack.region}.${stack.urlSuffix}` },
      });
      if (props.bucketKeyArn && access.s3 !== 'none')
        fn.role.addToPolicy(
          new iam.PolicyStatement({
            actions: ['kms:Decrypt', ...(access.s3 === 'read' ? [] : ['kms:GenerateDataKey'])],
            resources: [props.bucketKeyArn],
            conditions: viaService('s3'),
          }),
        );
      if (props.secretsKeyArn && (access.clickhouse || access.postgres))
        fn.role.addToPolicy(
          new iam.PolicyStatement({
            actions: ['kms:Decrypt'],
            resources: [props.secretsKeyArn],
            conditions: viaService('secretsmanager'),
          }),
        );
      if (access.glue !== 'none') grant(['glue:GetTable'], glueArns, why);
      if (access.glue === 'create') {
        grant(['glue:GetDatabase'], glueArns.slice(0, 2), why);
        grant(['glue:CreateTable'], glueArns, why);
      }
      if (access.glue === 'commit') grant(['glue:UpdateTable'], glueArns, why);
      return [name, fn] as const;
    });
    this.byName = Object.fromEntries(entries) as Record<FunctionName, OffloadFunction>;
  }
}
