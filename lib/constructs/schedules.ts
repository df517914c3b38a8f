import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

/** EventBridge rule starting one offload cycle per period with input `{}` (all tables, up to now). */
export class CycleSchedule extends Construct {
  readonly rule: events.Rule;

  constructor(
    scope: Construct,
    id: string,
    props: { resourcePrefix: string; schedule: string; stateMachine: sfn.IStateMachine },
  ) {
    super(scope, id);
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: `${props.resourcePrefix}-cycle`,
      description: 'Starts the k2 offload cycle; a missed start is caught by the scheduler-down alarm',
      schedule: events.Schedule.expression(props.schedule),
      targets: [
        new targets.SfnStateMachine(props.stateMachine, {
          input: events.RuleTargetInput.fromObject({}),
          retryAttempts: 3,
          maxEventAge: Duration.minutes(5),
        }),
      ],
    });
  }
}

/** EventBridge rule invoking the health function every 5 minutes: lag, watermark age, TTL headroom. */
export class HealthSchedule extends Construct {
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: { resourcePrefix: string; health: lambda.IFunction }) {
    super(scope, id);
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: `${props.resourcePrefix}-health`,
      description: 'Publishes k2 offload lag, watermark age and TTL headroom metrics',
      schedule: events.Schedule.rate(Duration.minutes(5)),
      targets: [
        new targets.LambdaFunction(props.health, {
          event: events.RuleTargetInput.fromObject({ source: 'schedule' }),
          retryAttempts: 1,
          maxEventAge: Duration.minutes(4),
        }),
      ],
    });
  }
}
