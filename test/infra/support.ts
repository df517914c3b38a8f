import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { addNagChecks } from '../../lib/nag.ts';
import { OffloadStack } from '../../lib/stacks/offload-stack.ts';
import { parseStageConfig, type StageConfigInput } from '../../lib/stage-config.ts';
import { defaultConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE_FUNCTIONS = join(PROJECT_ROOT, 'test', 'infra', 'fixtures', 'functions');

export type Synthesized = { stack: OffloadStack; template: Template; outdir: string };

/**
 * Synthesizes the stack once, with cdk-nag's AWS Solutions checks: synthesis throws on any finding that
 * is not acknowledged with a reason, so a returned template is nag-clean.
 */
export function synthesize(
  stage: StageConfigInput = {},
  tables: OffloadConfig = defaultConfig(),
  functionsDir = FIXTURE_FUNCTIONS,
): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'k2-cdk-'));
  const app = new App({ outdir });
  const stack = new OffloadStack(app, 'K2Offload-test', {
    stage: parseStageConfig({ stage: 'test', ...stage }),
    tables,
    projectRoot: PROJECT_ROOT,
    functionsDir,
  });
  addNagChecks(app);
  const assembly = app.synth();
  return { stack, template: Template.fromJSON(assembly.getStackByName(stack.stackName).template), outdir };
}

type Resource = { Type: string; Properties: Record<string, unknown> };

export function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

/** The one resource of a type (dashboard, state machine...). */
export function onlyResource(template: Template, type: string): Resource {
  const found = resourcesOfType(template, type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return (found[0] as [string, Resource])[1];
}

export function logicalIdOf(template: Template, type: string, predicate: (r: Resource) => boolean): string {
  const found = resourcesOfType(template, type).filter(([, r]) => predicate(r));
  if (found.length !== 1) throw new Error(`expected one ${type} to match, found ${found.length}`);
  return (found[0] as [string, Resource])[0];
}

/** A CloudFormation string with its references printed as `<LogicalId.Attr>` / `<Ref>`. */
export function printed(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as {
    'Fn::Join'?: [string, unknown[]];
    'Fn::GetAtt'?: [string, string];
    'Fn::Sub'?: string;
    Ref?: string;
  };
  if (typeof v['Fn::Sub'] === 'string') return v['Fn::Sub'];
  if (v['Fn::Join']) return v['Fn::Join'][1].map(printed).join(v['Fn::Join'][0]);
  if (v['Fn::GetAtt']) return `<${v['Fn::GetAtt'][0]}.${v['Fn::GetAtt'][1]}>`;
  if (v.Ref) return `<${v.Ref}>`;
  throw new Error(`unexpected intrinsic ${JSON.stringify(value)}`);
}

/** The state machine definition as JSON, references to other resources printed as `<LogicalId.Attr>`. */
export function stateMachineDefinition(template: Template): Record<string, unknown> {
  const [[, machine]] = resourcesOfType(template, 'AWS::StepFunctions::StateMachine') as [[string, Resource]];
  return JSON.parse(printed(machine.Properties.DefinitionString));
}

/** The statements of the policies attached to a role. */
export function statementsOfRole(template: Template, roleLogicalId: string): Record<string, unknown>[] {
  return resourcesOfType(template, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleLogicalId))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement);
}

export function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}
