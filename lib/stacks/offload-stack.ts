import { join } from 'node:path';
import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, type StackProps } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/errors.ts';
import { SECRET_PLACEHOLDER } from '../../src/runtime/not-configured.ts';
import { OffloadAlarms } from '../constructs/alarms.ts';
import { OffloadDashboard } from '../constructs/dashboard.ts';
import { EmrCommit } from '../constructs/emr-commit.ts';
import { FunctionNetwork } from '../constructs/function-network.ts';
import { Notifications } from '../constructs/notifications.ts';
import { OffloadFunctions } from '../constructs/offload-functions.ts';
import { OffloadStateMachine } from '../constructs/offload-state-machine.ts';
import { CycleSchedule, HealthSchedule } from '../constructs/schedules.ts';
import { Warehouse } from '../constructs/warehouse.ts';
import { acknowledge } from '../nag.ts';
import {
  executionTimeoutMinutes,
  type StageConfig,
  scheduleEnabled,
  schedulePeriodMinutes,
} from '../stage-config.ts';

export type OffloadStackProps = StackProps & {
  stage: StageConfig;
  tables: OffloadConfig;
  /** Project root: `functions/`, `jobs/spark/` and a relative `tablesConfig` are found from here. */
  projectRoot: string;
  /** Where `<name>/index.ts` of each function lives; `<projectRoot>/functions` by default. */
  functionsDir?: string;
};

/** The whole offload of one stage: functions, cycle state machine, schedules, Spark committer, alarms. */
export class OffloadStack extends Stack {
  readonly stateMachine: OffloadStateMachine;
  readonly functions: OffloadFunctions;
  readonly alarms: OffloadAlarms;

  constructor(scope: Construct, id: string, props: OffloadStackProps) {
    super(scope, id, props);
    const { stage, tables } = props;
    const prefix = `k2-offload-${stage.stage}`;
    for (const t of tables.tables)
      if (t.target.namespace !== stage.glueDatabase)
        throw new ConfigError(
          `table ${t.name}: target namespace ${t.target.namespace} is not the stage's Glue database ${stage.glueDatabase}; set glueDatabase or the table's target.namespace so they match`,
          { table: t.name, value: t.target.namespace },
        );

    const warehouse = new Warehouse(this, 'Warehouse', {
      resourcePrefix: prefix,
      ...(stage.warehouse.bucketName ? { bucketName: stage.warehouse.bucketName } : {}),
      stagingExpirationDays: stage.warehouse.stagingExpirationDays,
      ...(stage.encryption.bucketKeyArn ? { keyArn: stage.encryption.bucketKeyArn } : {}),
    });
    const database = !stage.createGlueDatabase
      ? undefined
      : new glue.CfnDatabase(this, 'GlueDatabase', {
          catalogId: this.account,
          databaseInput: {
            name: stage.glueDatabase,
            description: 'k2 cold tier: Iceberg tables offloaded from ClickHouse',
          },
        });

    const keyOf = (id: string, arn: string | undefined) =>
      arn ? kms.Key.fromKeyArn(this, id, arn) : undefined;
    const secretsKey = keyOf('SecretsKey', stage.encryption.secretsKeyArn);
    const secret = (id: string, arn: string | undefined, what: string): secrets.ISecret => {
      if (arn) return secrets.Secret.fromSecretCompleteArn(this, id, arn);
      // A placeholder, not a credential: until it is replaced the stage says "not configured" and pages nobody.
      const created = new secrets.Secret(this, id, {
        secretName: `${prefix}/${what}`,
        description: `k2-offload ${what} connection: JSON {"url": "..."}; put the real value after the first deploy`,
        secretStringValue: SecretValue.unsafePlainText(JSON.stringify(SECRET_PLACEHOLDER)),
        ...(secretsKey ? { encryptionKey: secretsKey } : {}),
      });
      acknowledge(
        created,
        `The ${what} credentials belong to that server; they are rotated by its owners, not by this stack.`,
        'AwsSolutions-SMG4',
      );
      return created;
    };
    const clickhouseSecret = secret('ClickHouseSecret', stage.secrets.clickhouseArn, 'clickhouse');
    const postgresSecret = secret('PostgresSecret', stage.secrets.postgresArn, 'postgres');

    const network = stage.vpc ? new FunctionNetwork(this, 'Network', { vpc: stage.vpc }) : undefined;
    const vpc = network?.access;

    this.functions = new OffloadFunctions(this, 'Functions', {
      resourcePrefix: prefix,
      functionsDir: props.functionsDir ?? join(props.projectRoot, 'functions'),
      projectRoot: props.projectRoot,
      ...(stage.tablesConfig ? { tablesConfigPath: join(props.projectRoot, stage.tablesConfig) } : {}),
      stageName: stage.stage,
      // The execution times out a minute before the next start; the lease lasts until that start.
      leaseSeconds: (executionTimeoutMinutes(stage) + 1) * 60,
      // The last loop-back pass starts by half the timeout and has the other half to finish.
      cycleBudgetSeconds: (executionTimeoutMinutes(stage) * 60) / 2,
      warehouse,
      glueDatabase: stage.glueDatabase,
      clickhouseSecret,
      postgresSecret,
      ...(stage.encryption.bucketKeyArn ? { bucketKeyArn: stage.encryption.bucketKeyArn } : {}),
      ...(stage.encryption.secretsKeyArn ? { secretsKeyArn: stage.encryption.secretsKeyArn } : {}),
      logRetentionDays: stage.logRetentionDays,
      ...(vpc ? { vpc } : {}),
    });
    // The functions may read the database but not create it: it exists before they run. It outlives the
    // stack: deleting it would drop the Iceberg tables' catalog entries.
    if (database) {
      this.functions.node.addDependency(database);
      database.applyRemovalPolicy(RemovalPolicy.RETAIN);
    }

    const emr = new EmrCommit(this, 'SparkCommit', {
      resourcePrefix: prefix,
      ...stage.emr,
      maxConcurrency: stage.maxConcurrency,
      bucket: warehouse.bucket,
      glueDatabase: stage.glueDatabase,
      scriptPath: join(props.projectRoot, 'jobs', 'spark', 'commit_batch.py'),
    });

    const timeout = Duration.minutes(executionTimeoutMinutes(stage));
    const f = this.functions.byName;
    this.stateMachine = new OffloadStateMachine(this, 'Cycle', {
      resourcePrefix: prefix,
      functions: {
        planCycle: f['plan-cycle'].function,
        stageBatch: f['stage-batch'].function,
        commitBatch: f['commit-batch'].function,
        commitWatermark: f['commit-watermark'].function,
        recordFailure: f['record-failure'].function,
        publishCycle: f['publish-cycle'].function,
        extendLease: f['extend-lease'].function,
      },
      emr,
      planBucket: warehouse.bucket,
      maxConcurrency: stage.maxConcurrency,
      maxPasses: stage.maxPasses,
      timeout,
      logRetentionDays: stage.logRetentionDays,
    });
    new CycleSchedule(this, 'CycleSchedule', {
      resourcePrefix: prefix,
      schedule: stage.schedule,
      enabled: scheduleEnabled(stage),
      stateMachine: this.stateMachine.stateMachine,
    });
    new HealthSchedule(this, 'HealthSchedule', { resourcePrefix: prefix, health: f.health.function });

    const notifications = new Notifications(this, 'Notifications', {
      resourcePrefix: prefix,
      page: stage.notifications.page,
      warn: stage.notifications.warn,
    });
    this.alarms = new OffloadAlarms(this, 'Alarms', {
      resourcePrefix: prefix,
      thresholds: stage.alarms,
      cyclePeriod: Duration.minutes(schedulePeriodMinutes(stage.schedule) ?? 15),
      stateMachine: this.stateMachine.stateMachine,
      notifications,
      scheduleEnabled: scheduleEnabled(stage),
    });
    const dashboard = new OffloadDashboard(this, 'Dashboard', {
      resourcePrefix: prefix,
      tables: tables.tables.map((t) => t.name),
      thresholds: stage.alarms,
      alarms: this.alarms,
    });

    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachine.stateMachineArn });
    new CfnOutput(this, 'WarehouseBucket', { value: warehouse.bucket.bucketName });
    new CfnOutput(this, 'PageTopicArn', { value: notifications.page.topicArn });
    new CfnOutput(this, 'WarnTopicArn', { value: notifications.warn.topicArn });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboard.dashboardName });
    new CfnOutput(this, 'EmrApplicationId', { value: emr.application.attrApplicationId });
  }
}
