import { type App, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
// cdk-nag is CommonJS whose named exports Node's ESM loader cannot detect; take them off the module object.
import cdkNag from 'cdk-nag';
import type { IConstruct } from 'constructs';

const { AwsSolutionsChecks } = cdkNag;

/** Runs cdk-nag's AWS Solutions pack at synth: any unacknowledged finding stops synthesis. */
export function addNagChecks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
}

/**
 * Acknowledges findings on one construct (and its children), each with the reason it is acceptable.
 * A finding id is a rule (`AwsSolutions-L1`) or a rule with its finding (`AwsSolutions-IAM5[Resource::*]`).
 */
export function acknowledge(scope: IConstruct, reason: string, ...ids: string[]): void {
  for (const id of ids) Validations.of(scope).acknowledge({ id, reason });
}

type Intrinsic =
  | string
  | { Ref?: unknown; 'Fn::GetAtt'?: unknown[]; 'Fn::Join'?: [string, unknown[]]; 'Fn::Sub'?: unknown };

/** How cdk-nag prints a resource in a finding: `<LogicalId.Attr>` for GetAtt, `<Name>` for Ref. */
export function flatten(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  const v = value as Exclude<Intrinsic, string>;
  if (v['Fn::Sub'] !== undefined) return flatten(v['Fn::Sub']);
  if (v['Fn::Join']) return v['Fn::Join'][1].map(flatten).join(v['Fn::Join'][0]);
  if (v['Fn::GetAtt']) return `<${flatten(v['Fn::GetAtt'][0])}.${flatten(v['Fn::GetAtt'][1])}>`;
  if (v.Ref !== undefined) return `<${flatten(v.Ref)}>`;
  return JSON.stringify(value);
}

/** The IAM5 finding ids a statement's wildcards produce. */
export function wildcardFindings(scope: IConstruct, actions: string[], resources: string[]): string[] {
  const stack = Stack.of(scope);
  return [
    ...actions.filter((a) => a.includes('*')).map((a) => `AwsSolutions-IAM5[Action::${a}]`),
    ...resources
      .map((r) => flatten(stack.resolve(r)))
      .filter((r) => r.includes('*'))
      .map((r) => `AwsSolutions-IAM5[Resource::${r}]`),
  ];
}

/** Adds a statement to a role and acknowledges its wildcards with the reason they are needed. */
export function allow(
  role: iam.Role,
  statement: { actions: string[]; resources: string[]; conditions?: Record<string, unknown> },
  reason: string,
): void {
  role.addToPolicy(new iam.PolicyStatement(statement));
  const findings = wildcardFindings(role, statement.actions, statement.resources);
  if (findings.length > 0) acknowledge(role, reason, ...findings);
}
