import type { SdkClient } from '../../../functions/shared/deps.ts';

/**
 * One authorization AWS makes for a call: the IAM action, the resource ARN, and the request context
 * values conditions may test (e.g. `iam:PassedToService`).
 */
export type Requirement = { action: string; resource: string; context?: Record<string, string> };

/** An AWS call a principal made (or a service made on its behalf), with what IAM checks for it. */
export type RecordedCall = {
  principal: string;
  /** `glue:GetTable` as the SDK named it (the command), before mapping to IAM actions. */
  call: string;
  requirements: Requirement[];
  /** The error the (emulated) service answered, if any. */
  error?: string;
};

const PARTITION = 'aws';
export const TEST_REGION = 'us-east-1';
export const TEST_ACCOUNT = '123456789012';

const SERVICE_OF_CLIENT: Record<string, string> = {
  S3Client: 's3',
  GlueClient: 'glue',
  SecretsManagerClient: 'secretsmanager',
  CloudWatchClient: 'cloudwatch',
  SFNClient: 'states',
};

type Input = Record<string, unknown>;
const str = (v: unknown) => String(v ?? '');

function s3Requirements(command: string, input: Input, notFound: boolean): Requirement[] {
  const bucket = `arn:${PARTITION}:s3:::${str(input.Bucket)}`;
  const object = (key: unknown) => `${bucket}/${str(key)}`;
  const on = (action: string, resource: string) => ({ action: `s3:${action}`, resource });
  // S3 answers 403 instead of 404 for a missing key unless the caller may list the bucket.
  const missing = notFound ? [on('ListBucket', bucket)] : [];
  switch (command) {
    case 'GetObject':
    case 'HeadObject':
      return [on('GetObject', object(input.Key)), ...missing];
    case 'PutObject':
    case 'CreateMultipartUpload':
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return [on('PutObject', object(input.Key))];
    case 'AbortMultipartUpload':
      return [on('AbortMultipartUpload', object(input.Key))];
    case 'ListParts':
      return [on('ListMultipartUploadParts', object(input.Key))];
    case 'DeleteObject':
      return [on('DeleteObject', object(input.Key))];
    case 'DeleteObjects':
      return ((input.Delete as { Objects?: { Key?: string }[] })?.Objects ?? []).map((o) =>
        on('DeleteObject', object(o.Key)),
      );
    case 'CopyObject': {
      const source = str(input.CopySource).replace(/^\//, '');
      return [on('PutObject', object(input.Key)), on('GetObject', `arn:${PARTITION}:s3:::${source}`)];
    }
    case 'ListObjectsV2':
    case 'ListObjects':
      return [{ ...on('ListBucket', bucket), context: { 's3:prefix': str(input.Prefix) } }];
    case 'HeadBucket':
      return [on('ListBucket', bucket)];
    case 'ListMultipartUploads':
      return [on('ListBucketMultipartUploads', bucket)];
    default:
      throw new Error(`IAM recorder: no mapping for s3:${command}; add it to test/infra/iam/record.ts`);
  }
}

/** Glue checks the catalog, the database and the table of a request (Glue's resource-level permissions). */
function glueRequirements(command: string, input: Input): Requirement[] {
  const arn = (resource: string) => `arn:${PARTITION}:glue:${TEST_REGION}:${TEST_ACCOUNT}:${resource}`;
  const database = str(input.DatabaseName ?? input.Name ?? (input.DatabaseInput as Input)?.Name);
  const onDatabase = (action: string) => [
    { action: `glue:${action}`, resource: arn('catalog') },
    { action: `glue:${action}`, resource: arn(`database/${database}`) },
  ];
  const onTable = (action: string, table: string) => [
    ...onDatabase(action),
    { action: `glue:${action}`, resource: arn(`table/${database}/${table}`) },
  ];
  switch (command) {
    case 'GetDatabase':
    case 'CreateDatabase':
      return onDatabase(command);
    case 'GetTable':
    case 'DeleteTable':
      return onTable(command, str(input.Name));
    case 'CreateTable':
    case 'UpdateTable':
      return onTable(command, str((input.TableInput as Input)?.Name));
    case 'GetTables':
      return onTable(command, '*');
    default:
      throw new Error(`IAM recorder: no mapping for glue:${command}; add it to test/infra/iam/record.ts`);
  }
}

/** The authorizations one SDK command needs. */
export function requirementsOf(
  service: string,
  command: string,
  input: Input,
  notFound = false,
): Requirement[] {
  if (service === 's3') return s3Requirements(command, input, notFound);
  if (service === 'glue') return glueRequirements(command, input);
  if (service === 'secretsmanager' && command === 'GetSecretValue')
    return [{ action: 'secretsmanager:GetSecretValue', resource: str(input.SecretId) }];
  throw new Error(`IAM recorder: no mapping for ${service}:${command}; add it to test/infra/iam/record.ts`);
}

const NOT_FOUND = new Set(['NotFound', 'NoSuchKey']);

/** Records every AWS SDK call made through the clients it is hooked into, per principal. */
export class CallRecorder {
  readonly calls: RecordedCall[] = [];

  /** A `LambdaDepsOptions.onClient` hook attributing the client's calls to `principal`. */
  hook(principal: string): (client: SdkClient) => void {
    return (client) => {
      const add = client.middlewareStack.add as unknown as (
        middleware: unknown,
        options: { step: string; name: string; override?: boolean },
      ) => void;
      add.call(
        client.middlewareStack,
        (next: (args: unknown) => Promise<unknown>, context: { clientName?: string; commandName?: string }) =>
          async (args: { input: Input }) => {
            const service = SERVICE_OF_CLIENT[context.clientName ?? ''] ?? str(context.clientName);
            const command = str(context.commandName).replace(/Command$/, '');
            const input = structuredClone(args.input);
            try {
              const result = await next(args);
              this.add(principal, service, command, input);
              return result;
            } catch (error) {
              const name = (error as { name?: string }).name ?? 'Error';
              this.add(principal, service, command, input, name);
              throw error;
            }
          },
        { step: 'initialize', name: 'k2IamCallRecorder', override: true },
      );
    };
  }

  private add(principal: string, service: string, command: string, input: Input, error?: string) {
    this.calls.push({
      principal,
      call: `${service}:${command}`,
      requirements: requirementsOf(service, command, input, error !== undefined && NOT_FOUND.has(error)),
      ...(error ? { error } : {}),
    });
  }

  /** A call made with the principal's role by a runtime rather than our code (Lambda's log delivery). */
  implicit(principal: string, call: string, requirements: Requirement[]) {
    this.calls.push({ principal, call, requirements });
  }

  of(principal: string): RecordedCall[] {
    return this.calls.filter((c) => c.principal === principal);
  }
}
