import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

/**
 * Scratch prefix expired by the bucket's lifecycle. Cycles stage batches inside their table's folder
 * (unreferenced files there are removed by `k2-offload maintain`); anything written here is temporary.
 */
export const STAGING_PREFIX = 'staging/';

export type WarehouseProps = {
  resourcePrefix: string;
  /** Use this existing bucket instead of creating one. */
  bucketName?: string;
  stagingExpirationDays: number;
  /** A customer managed KMS key for the created bucket (an existing bucket keeps its own settings). */
  keyArn?: string;
};

/**
 * The warehouse bucket: Iceberg tables and the staging area. A created bucket is encrypted, private,
 * SSL only, versioned off (Iceberg keeps its own history), and expires staged files it no longer needs.
 */
export class Warehouse extends Construct {
  readonly bucket: s3.IBucket;
  /** `s3://bucket` */
  readonly uri: string;

  constructor(scope: Construct, id: string, props: WarehouseProps) {
    super(scope, id);
    if (props.bucketName) {
      this.bucket = s3.Bucket.fromBucketName(this, 'Bucket', props.bucketName);
    } else {
      const accessLogs = new s3.Bucket(this, 'AccessLogs', {
        encryption: s3.BucketEncryption.S3_MANAGED,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
      acknowledge(
        accessLogs,
        'This is the access log bucket of the warehouse; logging it again would recurse.',
        'AwsSolutions-S1',
      );
      this.bucket = new s3.Bucket(this, 'Bucket', {
        ...(props.keyArn
          ? {
              encryption: s3.BucketEncryption.KMS,
              encryptionKey: kms.Key.fromKeyArn(this, 'Key', props.keyArn),
              bucketKeyEnabled: true,
            }
          : { encryption: s3.BucketEncryption.S3_MANAGED }),
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        serverAccessLogsBucket: accessLogs,
        serverAccessLogsPrefix: `${props.resourcePrefix}/`,
        lifecycleRules: [
          {
            id: 'expire-staging',
            prefix: STAGING_PREFIX,
            expiration: Duration.days(props.stagingExpirationDays),
            abortIncompleteMultipartUploadAfter: Duration.days(1),
          },
        ],
        // Iceberg tables are the cold tier itself: never deleted with the stack.
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }
    this.uri = `s3://${this.bucket.bucketName}`;
  }
}
