import { expect } from 'vitest';
import { FUNCTION_NAMES } from '../../../src/runtime/access.ts';
import { synthesize } from '../support.ts';
import {
  allStates,
  denials,
  describeDenial,
  roleStatements,
  type TemplateJson,
  taskRequirements,
  unusedGrants,
  usedStatements,
  without,
} from './contract.ts';
import { type KnownValues, templateResolver } from './policy.ts';
import { type CallRecorder, TEST_ACCOUNT, TEST_REGION } from './record.ts';

const STAGE = 'test';
export const MACHINE = 'state-machine';

/**
 * Grants no recorded call uses, each with why it stays. Keys are `<role> <action> <resource pattern>`
 * (resource as a regular expression over the resolved ARN).
 */
export const EXPLAINED_UNUSED: [RegExp, string][] = [
  [
    /^stage-batch s3:AbortMultipartUpload /,
    'A multipart upload of a staged file that fails part-way is aborted, so no parts linger.',
  ],
  [
    /^(plan-cycle|commit-batch) s3:DeleteObject /,
    "Removal of the writer's own unreferenced files: the metadata file of a refused create or commit (tested in test/iceberg).",
  ],
];

type Options = {
  recorder: CallRecorder;
  executedStates: string[];
  secretArns: { clickhouse: string; postgres: string };
  bucket: string;
  print: (text: string) => void;
};

/**
 * Evaluates every recorded call against the role of its principal in the synthesized template, prints the
 * least-privilege report, and shows that removing any statement a call needed makes a call denied.
 */
export function checkIamContract(options: Options): void {
  const template = synthesize({ stage: STAGE }).template.toJSON() as TemplateJson;
  const resources = template.Resources;
  const idOf = (predicate: (type: string, p: Record<string, unknown>) => boolean, what: string) => {
    const found = Object.entries(resources).filter(([, r]) => predicate(r.Type, r.Properties ?? {}));
    if (found.length !== 1) throw new Error(`expected one ${what}, found ${found.length}`);
    return (found[0] as [string, unknown])[0];
  };
  const known: KnownValues = {
    [idOf(
      (t, p) =>
        t === 'AWS::S3::Bucket' && JSON.stringify(p.LifecycleConfiguration ?? '').includes('staging/'),
      'warehouse bucket',
    )]: { ref: options.bucket },
    [idOf(
      (t, p) => t === 'AWS::SecretsManager::Secret' && p.Name === `k2-offload-${STAGE}/clickhouse`,
      'secret',
    )]: { ref: options.secretArns.clickhouse },
    [idOf(
      (t, p) => t === 'AWS::SecretsManager::Secret' && p.Name === `k2-offload-${STAGE}/postgres`,
      'secret',
    )]: { ref: options.secretArns.postgres },
  };
  const roleOf = (id: string, attribute: 'Role' | 'RoleArn') =>
    (resources[id]?.Properties?.[attribute] as { 'Fn::GetAtt': [string] } | undefined)?.['Fn::GetAtt'][0] ??
    '';

  const recorder = options.recorder;
  const roles: [string, string][] = FUNCTION_NAMES.map((fn) => {
    const id = idOf(
      (t, p) => t === 'AWS::Lambda::Function' && p.FunctionName === `k2-offload-${STAGE}-${fn}`,
      `function ${fn}`,
    );
    // What the Lambda runtime does with the function's role on every invocation.
    // CloudWatch Logs authorizes CreateLogStream on the group and PutLogEvents on the stream.
    const group = `arn:aws:logs:${TEST_REGION}:${TEST_ACCOUNT}:log-group:/aws/lambda/k2-offload-${STAGE}-${fn}`;
    const stream = `${group}:log-stream:2026/01/01/[$LATEST]0`;
    recorder.implicit(fn, 'Lambda runtime logs and traces', [
      { action: 'logs:CreateLogStream', resource: group },
      { action: 'logs:PutLogEvents', resource: stream },
      { action: 'xray:PutTraceSegments', resource: '*' },
      { action: 'xray:PutTelemetryRecords', resource: '*' },
    ]);
    return [fn, roleOf(id, 'Role')];
  });

  // The state machine role: what Step Functions did for each Task state the executions ran.
  const machineId = idOf((t) => t === 'AWS::StepFunctions::StateMachine', 'state machine');
  const resolve = templateResolver(resources, known);
  const definition = JSON.parse(resolve(resources[machineId]?.Properties?.DefinitionString));
  const states = allStates(definition);
  for (const name of new Set(options.executedStates)) {
    const state = states[name];
    if (!state) throw new Error(`executed state ${name} is not in the synthesized definition`);
    if (state.Type === 'Task')
      recorder.implicit(MACHINE, `task ${name}`, taskRequirements(name, state, resolve, options.bucket));
  }
  // Set once when the machine is created/updated with logging and tracing, and on every traced execution.
  recorder.implicit(MACHINE, 'Step Functions log delivery and X-Ray', [
    ...[
      'CreateLogDelivery',
      'GetLogDelivery',
      'UpdateLogDelivery',
      'DeleteLogDelivery',
      'ListLogDeliveries',
      'PutResourcePolicy',
      'DescribeResourcePolicies',
      'DescribeLogGroups',
    ].map((a) => ({ action: `logs:${a}`, resource: '*' })),
    ...['PutTraceSegments', 'PutTelemetryRecords', 'GetSamplingRules', 'GetSamplingTargets'].map((a) => ({
      action: `xray:${a}`,
      resource: '*',
    })),
  ]);
  roles.push([MACHINE, roleOf(machineId, 'RoleArn')]);

  const report: string[] = ['IAM least-privilege report (granted, no recorded call used):'];
  const unexplained: string[] = [];
  for (const [principal, roleId] of roles) {
    const statements = roleStatements(template, roleId, known);
    const calls = recorder.of(principal);
    expect(
      calls.length,
      `${principal} made no recorded call: the suite does not exercise it`,
    ).toBeGreaterThan(0);
    expect(denials(calls, statements).map(describeDenial), principal).toEqual([]);
    for (const grant of unusedGrants(calls, statements)) {
      const key = `${principal} ${grant}`;
      const why = EXPLAINED_UNUSED.find(([pattern]) => pattern.test(key))?.[1];
      report.push(`  ${key}${why ? `  -- ${why}` : '  -- UNEXPLAINED'}`);
      if (!why) unexplained.push(key);
    }
    // Each statement a call needed is needed: without it, some call is denied.
    for (const id of usedStatements(calls, statements))
      expect(
        denials(calls, without(statements, id)).length,
        `${principal}: removing ${id} denies nothing, so it duplicates another grant`,
      ).toBeGreaterThan(0);
  }
  options.print(`${report.join('\n')}\n`);
  expect(unexplained, 'grants no call used, without an explanation in EXPLAINED_UNUSED').toEqual([]);
}
