import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

/**
 * Where EventBridge puts a scheduled start it could not deliver (throttled, target missing, permissions):
 * kept 14 days for an operator to see why a cycle did not start.
 */
function deadLetterQueue(scope: Construct, name: string): sqs.Queue {
  const queue = new sqs.Queue(scope, 'DeadLetters', {
    queueName: `${name}-dlq`,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  acknowledge(
    queue,
    'This queue is itself the dead-letter queue of the schedule target.',
    'AwsSolutions-SQS3',
  );
  return queue;
}

/** EventBridge rule starting one offload cycle per period with input `{}` (all tables, up to now). */
export class CycleSchedule extends Construct {
  readonly rule: events.Rule;
  readonly deadLetters: sqs.Queue;

  constructor(
    scope: Construct,
    id: string,
    props: { resourcePrefix: string; schedule: string; enabled: boolean; stateMachine: sfn.IStateMachine },
  ) {
    super(scope, id);
    this.deadLetters = deadLetterQueue(this, `${props.resourcePrefix}-cycle`);
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: `${props.resourcePrefix}-cycle`,
      description: 'Starts the k2 offload cycle; a missed start is caught by the scheduler-down alarm',
      schedule: events.Schedule.expression(props.schedule),
      enabled: props.enabled,
      targets: [
        new targets.SfnStateMachine(props.stateMachine, {
          input: events.RuleTargetInput.fromObject({}),
          retryAttempts: 3,
          maxEventAge: Duration.minutes(5),
          deadLetterQueue: this.deadLetters,
        }),
      ],
    });
  }
}

/** EventBridge rule invoking the health function every 5 minutes: lag, watermark age, TTL headroom. */
export class HealthSchedule extends Construct {
  readonly rule: events.Rule;
  readonly deadLetters: sqs.Queue;

  constructor(scope: Construct, id: string, props: { resourcePrefix: string; health: lambda.IFunction }) {
    super(scope, id);
    this.deadLetters = deadLetterQueue(this, `${props.resourcePrefix}-health`);
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: `${props.resourcePrefix}-health`,
      description: 'Publishes k2 offload lag, watermark age and TTL headroom metrics',
      schedule: events.Schedule.rate(Duration.minutes(5)),
      targets: [
        new targets.LambdaFunction(props.health, {
          event: events.RuleTargetInput.fromObject({ source: 'schedule' }),
          retryAttempts: 1,
          maxEventAge: Duration.minutes(4),
          deadLetterQueue: this.deadLetters,
        }),
      ],
    });
  }
}
