import { type Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { buildStateMachineDefinition, type LambdaTask, PLAN_PREFIX } from '../../src/orchestration/asl.ts';
import { acknowledge, allow } from '../nag.ts';
import type { EmrCommit } from './emr-commit.ts';

export type OffloadStateMachineProps = {
  resourcePrefix: string;
  functions: Record<LambdaTask, lambda.IFunction>;
  emr: EmrCommit;
  /** The warehouse bucket: PlanCycle writes each table's plan under `PLAN_PREFIX`, the Map reads it. */
  planBucket: s3.IBucket;
  maxConcurrency: number;
  maxPasses: number;
  timeout: Duration;
  logRetentionDays: number;
};

/**
 * The `offload-cycle` state machine: the definition from `src/orchestration/asl.ts`, every event logged
 * (with data: batch specs carry no secrets), X-Ray traced, and a timeout below the schedule period so
 * one cycle ends before the next one starts.
 */
export class OffloadStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: OffloadStateMachineProps) {
    super(scope, id);
    const name = `${props.resourcePrefix}-cycle`;
    const functionArns = Object.fromEntries(
      Object.entries(props.functions).map(([task, fn]) => [task, fn.functionArn]),
    ) as Record<LambdaTask, string>;
    const definition = buildStateMachineDefinition({
      functions: functionArns,
      maxConcurrency: props.maxConcurrency,
      maxPasses: props.maxPasses,
      timeoutSeconds: props.timeout.toSeconds(),
      emr: props.emr.options,
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      // Step Functions requires this prefix for vended logs delivered to a resource policy-less group.
      logGroupName: `/aws/vendedlogs/states/${name}`,
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: 'k2-offload cycle: invoke the offload functions and run the Spark commit job',
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: name,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(Stack.of(this).toJsonString(definition)),
      role,
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    // The unqualified functions only: the definition never names a version or alias.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: Object.values(props.functions).map((fn) => fn.functionArn),
      }),
    );
    props.emr.grantStartAndPoll(role);

    // The plan hand-off: objects of one cycle, named at run time by cycle id, table and lease token.
    const plans = props.planBucket.arnForObjects(`${PLAN_PREFIX}*`);
    const planWhy =
      'Plan objects are named at run time (cycle id, table, lease token) under the plan prefix.';
    allow(role, { actions: ['s3:GetObject'], resources: [plans] }, planWhy);
    allow(
      props.functions.planCycle.role as iam.Role,
      { actions: ['s3:PutObject'], resources: [plans] },
      planWhy,
    );

    acknowledge(
      role,
      'Log delivery and X-Ray actions have no resource-level permissions.',
      'AwsSolutions-IAM5[Resource::*]',
    );
  }
}
