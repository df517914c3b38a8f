import {
  evaluate,
  type KnownValues,
  type ResolvedStatement,
  resolveStatement,
  type Statement,
  templateResolver,
  wildcardMatch,
} from './policy.ts';
import { type RecordedCall, type Requirement, TEST_ACCOUNT, TEST_REGION } from './record.ts';

type Resource = { Type: string; Properties?: Record<string, unknown> };
export type TemplateJson = { Resources: Record<string, Resource> };

/** Every identity-policy statement of a role: its inline policies and the AWS::IAM::Policy resources on it. */
export function roleStatements(
  template: TemplateJson,
  roleId: string,
  known: KnownValues,
): ResolvedStatement[] {
  const resolve = templateResolver(template.Resources, known);
  const role = template.Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not a role`);
  if (role.Properties?.ManagedPolicyArns)
    throw new Error(`role ${roleId} has managed policies, which the contract test cannot read`);
  const inline = (
    (role.Properties?.Policies ?? []) as { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[]
  ).flatMap((p) => p.PolicyDocument.Statement.map((s, i) => [`${roleId}/${p.PolicyName}#${i}`, s] as const));
  const attached = Object.entries(template.Resources)
    .filter(
      ([, r]) =>
        r.Type === 'AWS::IAM::Policy' &&
        ((r.Properties?.Roles ?? []) as { Ref?: string }[]).some((x) => x.Ref === roleId),
    )
    .flatMap(([id, r]) =>
      ((r.Properties?.PolicyDocument as { Statement: Statement[] } | undefined)?.Statement ?? []).map(
        (s, i) => [`${id}#${i}`, s] as const,
      ),
    );
  return [...inline, ...attached].map(([id, s]) => resolveStatement(s, resolve, id));
}

export type Denial = { principal: string; call: string; action: string; resource: string };

/** Every requirement of every call that the statements would not allow, with who asked. */
export function denials(calls: RecordedCall[], statements: ResolvedStatement[]): Denial[] {
  return calls.flatMap((c) =>
    c.requirements
      .filter((r) => !evaluate(statements, r).allowed)
      .map((r) => ({ principal: c.principal, call: c.call, action: r.action, resource: r.resource })),
  );
}

export const describeDenial = (d: Denial) =>
  `${d.principal}: ${d.call} needs ${d.action} on ${d.resource}, which its role does not allow`;

/** Statements that allowed at least one recorded requirement. */
export function usedStatements(calls: RecordedCall[], statements: ResolvedStatement[]): Set<string> {
  const used = new Set<string>();
  for (const c of calls)
    for (const r of c.requirements) {
      const by = evaluate(statements, r).by;
      if (by) used.add(by.id);
    }
  return used;
}

/**
 * Granted `action on resource` pairs no recorded call used (the least-privilege report), written as
 * `action resource`.
 */
export function unusedGrants(calls: RecordedCall[], statements: ResolvedStatement[]): string[] {
  const requirements = calls.flatMap((c) => c.requirements);
  return statements
    .filter((s) => s.effect === 'Allow')
    .flatMap((s) =>
      (s.actions ?? ['NotAction']).flatMap((action) =>
        (s.resources ?? ['NotResource']).flatMap((resource) =>
          requirements.some(
            (r) =>
              wildcardMatch(action, r.action, true) &&
              wildcardMatch(resource, r.resource) &&
              evaluate([s], r).allowed,
          )
            ? []
            : [`${action} ${resource}`],
        ),
      ),
    );
}

/** The statement removed: what a role would be without it. */
export const without = (statements: ResolvedStatement[], id: string) => statements.filter((s) => s.id !== id);

type Definition = { States: Record<string, Record<string, unknown>> } & Record<string, unknown>;

/** Every state of a definition, Map iterators and Parallel branches included. */
export function allStates(definition: Definition): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const walk = (d: { States?: Record<string, Record<string, unknown>> }) => {
    for (const [name, state] of Object.entries(d.States ?? {})) {
      out[name] = state;
      const inner = (state.ItemProcessor ?? state.Iterator) as Definition | undefined;
      if (inner) walk(inner);
      for (const branch of (state.Branches ?? []) as Definition[]) walk(branch);
    }
  };
  walk(definition);
  return out;
}

const EMR_SYNC_RULE = `arn:aws:events:${TEST_REGION}:${TEST_ACCOUNT}:rule/StepFunctionsGetEventsForEMRServerlessJobRule`;

/**
 * What Step Functions does with the state machine's role for one executed Task state: a Lambda ARN is
 * `lambda:InvokeFunction` on it; `emr-serverless:startJobRun.sync` starts the run on the application,
 * passes the job role, polls and may cancel the run, and manages the EventBridge rule it waits on
 * (https://docs.aws.amazon.com/step-functions/latest/dg/emr-serverless-iam.html).
 */
export function taskRequirements(
  stateName: string,
  state: Record<string, unknown>,
  resolve: (v: unknown) => string,
  planBucket: string,
): Requirement[] {
  const resource = resolve(state.Resource);
  if (resource.startsWith('arn:aws:lambda:')) return [{ action: 'lambda:InvokeFunction', resource }];
  if (resource === 'arn:aws:states:::lambda:invoke') {
    const params = state.Parameters as Record<string, unknown>;
    return [{ action: 'lambda:InvokeFunction', resource: resolve(params.FunctionName) }];
  }
  if (resource === 'arn:aws:states:::emr-serverless:startJobRun.sync') {
    const params = state.Parameters as Record<string, unknown>;
    const app = `arn:aws:emr-serverless:${TEST_REGION}:${TEST_ACCOUNT}:/applications/${resolve(params.ApplicationId)}`;
    return [
      { action: 'emr-serverless:StartJobRun', resource: app },
      { action: 'emr-serverless:GetJobRun', resource: `${app}/jobruns/run-1` },
      { action: 'emr-serverless:CancelJobRun', resource: `${app}/jobruns/run-1` },
      {
        action: 'iam:PassRole',
        resource: resolve(params.ExecutionRoleArn),
        context: { 'iam:PassedToService': 'emr-serverless.amazonaws.com' },
      },
      { action: 'events:PutTargets', resource: EMR_SYNC_RULE },
      { action: 'events:PutRule', resource: EMR_SYNC_RULE },
      { action: 'events:DescribeRule', resource: EMR_SYNC_RULE },
    ];
  }
  const params = (state.Parameters ?? {}) as Record<string, unknown>;
  const app = () =>
    `arn:aws:emr-serverless:${TEST_REGION}:${TEST_ACCOUNT}:/applications/${resolve(params.ApplicationId)}`;
  // The EMR job started, then polled (each poll extends the lease): no `.sync`, no EventBridge rule.
  if (resource === 'arn:aws:states:::emr-serverless:startJobRun')
    return [
      { action: 'emr-serverless:StartJobRun', resource: app() },
      {
        action: 'iam:PassRole',
        resource: resolve(params.ExecutionRoleArn),
        context: { 'iam:PassedToService': 'emr-serverless.amazonaws.com' },
      },
    ];
  if (resource === 'arn:aws:states:::aws-sdk:emrserverless:getJobRun')
    return [{ action: 'emr-serverless:GetJobRun', resource: `${app()}/jobruns/run-1` }];
  // A table's plan object, written by PlanCycle: bucket and key come from the state at run time.
  if (resource === 'arn:aws:states:::aws-sdk:s3:getObject')
    return [
      { action: 's3:GetObject', resource: `arn:aws:s3:::${planBucket}/staging/plans/cycle-1/t-1.json` },
    ];
  throw new Error(`state ${stateName}: no IAM mapping for task resource ${resource}; add it to the contract`);
}
