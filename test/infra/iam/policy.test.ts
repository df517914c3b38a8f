import { describe, expect, it } from 'vitest';
import {
  evaluate,
  type ResolvedStatement,
  resolveStatement,
  templateResolver,
  wildcardMatch,
} from './policy.ts';

const allow = (
  actions: string[],
  resources: string[],
  extra: Partial<ResolvedStatement> = {},
): ResolvedStatement => ({
  id: `allow ${actions.join(',')}`,
  effect: 'Allow',
  actions,
  resources,
  ...extra,
});

describe('the IAM policy evaluator of the contract test', () => {
  it('matches `*` and `?` wildcards, actions without regard to case', () => {
    expect(wildcardMatch('arn:aws:s3:::b/cold/*/data/*', 'arn:aws:s3:::b/cold/t/data/x/part-0.parquet')).toBe(
      true,
    );
    expect(wildcardMatch('arn:aws:s3:::b/cold/*/data/*', 'arn:aws:s3:::b/cold/t/metadata/v1.json')).toBe(
      false,
    );
    expect(wildcardMatch('glue:Get?able', 'glue:GetTable')).toBe(true);
    expect(wildcardMatch('S3:getobject', 's3:GetObject', true)).toBe(true);
  });

  it('denies by default and on an explicit Deny, and honours NotAction', () => {
    const req = { action: 's3:GetObject', resource: 'arn:aws:s3:::b/k' };
    expect(evaluate([], req).allowed).toBe(false);
    expect(evaluate([allow(['s3:*'], ['*'])], req).allowed).toBe(true);
    const deny: ResolvedStatement = { id: 'deny', effect: 'Deny', actions: ['s3:Get*'], resources: ['*'] };
    expect(evaluate([allow(['s3:*'], ['*']), deny], req)).toMatchObject({ allowed: false, deniedBy: deny });
    const notAction: ResolvedStatement = {
      id: 'na',
      effect: 'Allow',
      notActions: ['s3:Get*'],
      resources: ['*'],
    };
    expect(evaluate([notAction], req).allowed).toBe(false);
    expect(evaluate([notAction], { ...req, action: 's3:PutObject' }).allowed).toBe(true);
  });

  it('evaluates the condition keys it knows and refuses any other', () => {
    const pass = allow(['iam:PassRole'], ['arn:aws:iam::1:role/r'], {
      condition: { StringEquals: { 'iam:PassedToService': ['emr-serverless.amazonaws.com'] } },
    });
    const req = { action: 'iam:PassRole', resource: 'arn:aws:iam::1:role/r' };
    expect(
      evaluate([pass], { ...req, context: { 'iam:PassedToService': 'emr-serverless.amazonaws.com' } })
        .allowed,
    ).toBe(true);
    expect(
      evaluate([pass], { ...req, context: { 'iam:PassedToService': 'ec2.amazonaws.com' } }).allowed,
    ).toBe(false);
    expect(evaluate([pass], req).allowed).toBe(false);
    const unknown = allow(['s3:GetObject'], ['*'], {
      condition: { StringEquals: { 'aws:SourceVpce': ['vpce-1'] } },
    });
    expect(() => evaluate([unknown], { action: 's3:GetObject', resource: 'x' })).toThrow(
      /condition key aws:SourceVpce is not understood/,
    );
    const operator = allow(['s3:GetObject'], ['*'], {
      condition: { IpAddress: { 'aws:SourceIp': ['1.2.3.4'] } },
    });
    expect(() => evaluate([operator], { action: 's3:GetObject', resource: 'x' })).toThrow(
      /operator IpAddress/,
    );
  });

  it('resolves the intrinsics of a synthesized statement against known values', () => {
    const resolve = templateResolver(
      {
        Bucket: { Type: 'AWS::S3::Bucket' },
        Fn: { Type: 'AWS::Lambda::Function', Properties: { FunctionName: 'k2-offload-test-health' } },
      },
      { Bucket: { ref: 'k2-warehouse' } },
    );
    const s = resolveStatement(
      {
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: [
          { 'Fn::GetAtt': ['Fn', 'Arn'] },
          { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/cold/*']] },
          {
            'Fn::Join': [
              ':',
              [
                'arn',
                { Ref: 'AWS::Partition' },
                'glue',
                { Ref: 'AWS::Region' },
                { Ref: 'AWS::AccountId' },
                'catalog',
              ],
            ],
          },
        ],
      },
      resolve,
      'x',
    );
    expect(s.resources).toEqual([
      'arn:aws:lambda:us-east-1:123456789012:function:k2-offload-test-health',
      'arn:aws:s3:::k2-warehouse/cold/*',
      'arn:aws:glue:us-east-1:123456789012:catalog',
    ]);
  });
});
