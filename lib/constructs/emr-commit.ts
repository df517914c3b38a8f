import { Stack } from 'aws-cdk-lib';
import * as emr from 'aws-cdk-lib/aws-emrserverless';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct, type IConstruct } from 'constructs';
import type { EmrOptions } from '../../src/orchestration/asl.ts';
import { acknowledge, allow, wildcardFindings } from '../nag.ts';
import { commitJobSize, sparkSizeConf } from './emr-sizing.ts';

export const EMR_LOG_PREFIX = 'logs/emr/';

export type EmrCommitProps = {
  resourcePrefix: string;
  releaseLabel: string;
  maxCpu: string;
  maxMemory: string;
  idleTimeoutMinutes: number;
  jobTimeoutMinutes: number;
  /** Tables of a layer offloaded at once: this many jobs must fit the application's capacity together. */
  maxConcurrency: number;
  bucket: s3.IBucket;
  glueDatabase: string;
  /** Absolute path of `jobs/spark/commit_batch.py`. */
  scriptPath: string;
};

/**
 * The Spark committer: an EMR Serverless application that starts on demand and stops when idle, with a
 * job role that can read staged files and write Iceberg tables of one Glue database, nothing more.
 */
export class EmrCommit extends Construct {
  readonly application: emr.CfnApplication;
  readonly jobRole: iam.Role;
  readonly options: EmrOptions;

  constructor(scope: Construct, id: string, props: EmrCommitProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.application = new emr.CfnApplication(this, 'Application', {
      name: `${props.resourcePrefix}-commit`,
      releaseLabel: props.releaseLabel,
      type: 'SPARK',
      architecture: 'ARM64',
      autoStartConfiguration: { enabled: true },
      autoStopConfiguration: { enabled: true, idleTimeoutMinutes: props.idleTimeoutMinutes },
      maximumCapacity: { cpu: props.maxCpu, memory: props.maxMemory },
    });

    const script = new assets.Asset(this, 'Script', { path: props.scriptPath });
    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('emr-serverless.amazonaws.com'),
      description: 'k2-offload Spark commit job: staged Parquet in, Iceberg tables of one Glue database out',
    });
    // Its own script object only, not the whole CDK assets bucket (`script.grantRead` grants `/*`).
    this.jobRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [script.bucket.arnForObjects(script.s3ObjectKey)],
      }),
    );
    const bucket = props.bucket;
    const objects = 'Staged files, Iceberg data and metadata, and job logs are named at run time';
    allow(
      this.jobRole,
      { actions: ['s3:ListBucket', 's3:GetBucketLocation'], resources: [bucket.bucketArn] },
      objects,
    );
    allow(
      this.jobRole,
      {
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [
          bucket.arnForObjects(`${props.glueDatabase}/*`),
          bucket.arnForObjects(`${EMR_LOG_PREFIX}*`),
        ],
      },
      `${objects}; staged files are read from, and Iceberg files written to, the table folders of the Glue database; logs to the job log prefix.`,
    );
    allow(
      this.jobRole,
      {
        actions: [
          'glue:GetDatabase',
          'glue:GetTable',
          'glue:GetTables',
          'glue:CreateTable',
          'glue:UpdateTable',
        ],
        resources: [
          stack.formatArn({ service: 'glue', resource: 'catalog' }),
          stack.formatArn({ service: 'glue', resource: 'database', resourceName: props.glueDatabase }),
          stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${props.glueDatabase}/*` }),
        ],
      },
      'Iceberg tables of the Glue database, named by the table config.',
    );

    this.options = {
      applicationId: this.application.attrApplicationId,
      executionRoleArn: this.jobRole.roleArn,
      entryPoint: script.s3ObjectUrl,
      executionTimeoutMinutes: props.jobTimeoutMinutes,
      logUri: `s3://${bucket.bucketName}/${EMR_LOG_PREFIX}`,
      sparkSubmitParameters: [
        ...sparkSizeConf(commitJobSize(props)),
        '--conf spark.jars=/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar',
        '--conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions',
        '--conf spark.sql.catalog.glue=org.apache.iceberg.spark.SparkCatalog',
        '--conf spark.sql.catalog.glue.catalog-impl=org.apache.iceberg.aws.glue.GlueCatalog',
        '--conf spark.sql.catalog.glue.io-impl=org.apache.iceberg.aws.s3.S3FileIO',
        `--conf spark.sql.catalog.glue.warehouse=s3://${bucket.bucketName}/`,
        '--conf spark.k2.catalog=glue',
      ].join(' '),
    };
  }

  /**
   * What the state machine role needs to start a job run on this application and poll it (GetJobRun
   * through the SDK integration): no `.sync`, so no managed EventBridge rule and no cancel.
   */
  grantStartAndPoll(grantee: iam.IGrantable): void {
    const stack = Stack.of(this);
    const appArn = stack.formatArn({
      service: 'emr-serverless',
      resource: '/applications',
      resourceName: this.application.attrApplicationId,
    });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['emr-serverless:StartJobRun'], resources: [appArn] }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['emr-serverless:GetJobRun'], resources: [`${appArn}/jobruns/*`] }),
    );
    acknowledge(
      grantee.grantPrincipal as unknown as IConstruct,
      'Job runs get their ids when started; access is limited to the runs of this one application.',
      ...wildcardFindings(this, [], [`${appArn}/jobruns/*`]),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.jobRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'emr-serverless.amazonaws.com' } },
      }),
    );
  }
}
