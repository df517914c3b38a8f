import type { Requirement } from './record.ts';
import { TEST_ACCOUNT, TEST_REGION } from './record.ts';

/**
 * Identity-policy evaluation as IAM does it for one principal, on the statements of a synthesized
 * template: an explicit Deny wins, else an Allow whose Action/NotAction, Resource/NotResource and
 * Condition all match, else denied. Conditions use only the keys and operators below; any other makes
 * the evaluation throw, so a new condition cannot pass unexamined.
 */
export type Statement = {
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: unknown;
  NotResource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

/** A statement with its intrinsics resolved to concrete strings, and where it came from. */
export type ResolvedStatement = {
  id: string;
  effect: 'Allow' | 'Deny';
  actions?: string[];
  notActions?: string[];
  resources?: string[];
  notResources?: string[];
  condition?: Record<string, Record<string, string[]>>;
};

export const UNDERSTOOD_CONDITION_KEYS = ['iam:PassedToService', 'kms:ViaService', 's3:prefix'] as const;
const OPERATORS = ['StringEquals', 'StringLike'] as const;

const list = <T>(v: T | T[] | undefined): T[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v : [v];

/** IAM's `*` (any run) and `?` (one character); actions compare case-insensitively. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, ignoreCase ? 'i' : '').test(value);
}

type Resolve = (value: unknown) => string;

export function resolveStatement(statement: Statement, resolve: Resolve, id: string): ResolvedStatement {
  const strings = (v: unknown) => list(v)?.map(resolve);
  const condition = statement.Condition
    ? Object.fromEntries(
        Object.entries(statement.Condition).map(([op, keys]) => [
          op,
          Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, (list(v) ?? []).map(resolve)])),
        ]),
      )
    : undefined;
  const actions = list(statement.Action);
  const notActions = list(statement.NotAction);
  const resources = strings(statement.Resource);
  const notResources = strings(statement.NotResource);
  return {
    id,
    effect: statement.Effect,
    ...(actions ? { actions } : {}),
    ...(notActions ? { notActions } : {}),
    ...(resources ? { resources } : {}),
    ...(notResources ? { notResources } : {}),
    ...(condition ? { condition } : {}),
  };
}

function conditionHolds(statement: ResolvedStatement, context: Record<string, string>): boolean {
  for (const [operator, keys] of Object.entries(statement.condition ?? {})) {
    if (!(OPERATORS as readonly string[]).includes(operator))
      throw new Error(
        `statement ${statement.id}: condition operator ${operator} is not understood by the evaluator`,
      );
    for (const [key, values] of Object.entries(keys)) {
      if (!(UNDERSTOOD_CONDITION_KEYS as readonly string[]).includes(key))
        throw new Error(`statement ${statement.id}: condition key ${key} is not understood by the evaluator`);
      const actual = context[key];
      if (actual === undefined) return false;
      const hit = values.some((v) => (operator === 'StringLike' ? wildcardMatch(v, actual) : v === actual));
      if (!hit) return false;
    }
  }
  return true;
}

/** Whether the statement applies to the requirement (its effect aside). */
export function statementMatches(statement: ResolvedStatement, req: Requirement): boolean {
  const actionHit = statement.actions
    ? statement.actions.some((a) => wildcardMatch(a, req.action, true))
    : !(statement.notActions ?? []).some((a) => wildcardMatch(a, req.action, true));
  if (!actionHit) return false;
  const resourceHit = statement.resources
    ? statement.resources.some((r) => wildcardMatch(r, req.resource))
    : !(statement.notResources ?? []).some((r) => wildcardMatch(r, req.resource));
  if (!resourceHit) return false;
  return conditionHolds(statement, req.context ?? {});
}

export type Decision = { allowed: boolean; by?: ResolvedStatement; deniedBy?: ResolvedStatement };

export function evaluate(statements: ResolvedStatement[], req: Requirement): Decision {
  const deny = statements.find((s) => s.effect === 'Deny' && statementMatches(s, req));
  if (deny) return { allowed: false, deniedBy: deny };
  const allow = statements.find((s) => s.effect === 'Allow' && statementMatches(s, req));
  return allow ? { allowed: true, by: allow } : { allowed: false };
}

type Resource = { Type: string; Properties?: Record<string, unknown> };

/** Concrete values of resources the test stands in for (bucket names, secret ARNs moto issued...). */
export type KnownValues = Record<string, { ref?: string; attributes?: Record<string, string> }>;

/**
 * Resolves `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub` and `Fn::Select` against the test account and
 * region, known values, and for other resources what CloudFormation returns from their properties.
 */
export function templateResolver(resources: Record<string, Resource>, known: KnownValues): Resolve {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': TEST_REGION,
    'AWS::AccountId': TEST_ACCOUNT,
    'AWS::URLSuffix': 'amazonaws.com',
  };
  const arn = (service: string, rest: string, region = TEST_REGION) =>
    `arn:aws:${service}:${region}:${TEST_ACCOUNT}:${rest}`;
  const propsOf = (id: string) => {
    const r = resources[id];
    if (!r) throw new Error(`template has no resource ${id}`);
    return { type: r.Type, p: r.Properties ?? {} };
  };
  const ref = (id: string): string => {
    if (pseudo[id]) return pseudo[id];
    const value = known[id]?.ref;
    if (value) return value;
    const { type, p } = propsOf(id);
    const named = (key: string) => {
      const v = p[key];
      if (typeof v !== 'string')
        throw new Error(`${type} ${id}: no ${key} to resolve Ref; add a known value`);
      return v;
    };
    if (type === 'AWS::Lambda::Function') return named('FunctionName');
    if (type === 'AWS::IAM::Role') return typeof p.RoleName === 'string' ? p.RoleName : id;
    if (type === 'AWS::Logs::LogGroup') return named('LogGroupName');
    if (type === 'AWS::StepFunctions::StateMachine')
      return arn('states', `stateMachine:${named('StateMachineName')}`);
    if (type === 'AWS::SNS::Topic') return arn('sns', named('TopicName'));
    if (type === 'AWS::SQS::Queue') return `https://sqs.${TEST_REGION}.amazonaws.com/${TEST_ACCOUNT}/${id}`;
    if (type === 'AWS::KMS::Key') return `${id}-key-id`;
    throw new Error(`cannot resolve Ref ${id} (${type}); add a known value`);
  };
  const getAtt = (id: string, attribute: string): string => {
    const value = known[id]?.attributes?.[attribute];
    if (value) return value;
    const { type } = propsOf(id);
    if (attribute === 'Arn') {
      if (type === 'AWS::S3::Bucket') return `arn:aws:s3:::${ref(id)}`;
      if (type === 'AWS::Lambda::Function') return arn('lambda', `function:${ref(id)}`);
      if (type === 'AWS::IAM::Role') return `arn:aws:iam::${TEST_ACCOUNT}:role/${ref(id)}`;
      if (type === 'AWS::Logs::LogGroup') return arn('logs', `log-group:${ref(id)}:*`);
      if (type === 'AWS::SQS::Queue') return arn('sqs', id);
      if (type === 'AWS::KMS::Key') return arn('kms', `key/${ref(id)}`);
      if (type === 'AWS::EMRServerless::Application')
        return arn('emr-serverless', `/applications/${getAtt(id, 'ApplicationId')}`);
    }
    if (type === 'AWS::EMRServerless::Application' && attribute === 'ApplicationId') return `${id}-app-id`;
    throw new Error(`cannot resolve Fn::GetAtt ${id}.${attribute} (${type}); add a known value`);
  };
  const resolve = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const v = value as Record<string, unknown>;
    if ('Ref' in v) return ref(String(v.Ref));
    if ('Fn::GetAtt' in v) {
      const [id, attribute] = v['Fn::GetAtt'] as [string, string];
      return getAtt(id, attribute);
    }
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map(resolve).join(sep);
    }
    if ('Fn::Select' in v) {
      const [index, items] = v['Fn::Select'] as [number, unknown];
      const split = (items as Record<string, unknown>)['Fn::Split'] as [string, unknown] | undefined;
      const all = Array.isArray(items)
        ? items.map(resolve)
        : split
          ? resolve(split[1]).split(split[0])
          : [resolve(items)];
      return all[Number(index)] ?? '';
    }
    if ('Fn::Sub' in v) {
      const sub = v['Fn::Sub'];
      const [text, vars] = Array.isArray(sub)
        ? (sub as [string, Record<string, unknown>])
        : [String(sub), {}];
      return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
        if (name in vars) return resolve(vars[name]);
        const [id, attribute] = name.split('.');
        return attribute ? getAtt(id as string, attribute) : ref(id as string);
      });
    }
    throw new Error(`cannot resolve intrinsic ${JSON.stringify(value)}`);
  };
  return resolve;
}
