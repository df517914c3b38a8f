import { describe, expect, it } from 'vitest';
import { LAMBDA_ENV, readLambdaEnv } from '../../functions/shared/env.ts';
import {
  clickhouseUrlFromSecret,
  postgresConfigFromSecret,
  readSecretJson,
  type SecretsClientLike,
} from '../../functions/shared/secrets.ts';
import { ConfigError, UnavailableError } from '../../src/errors.ts';

const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:k2-offload-dev/postgres-AbCdEf';
const BASE = { WAREHOUSE: 's3://k2-warehouse', AWS_REGION: 'eu-west-1' };

const failure = (name: string, status?: number) =>
  Object.assign(new Error(`${name} happened`), {
    name,
    $metadata: status === undefined ? {} : { httpStatusCode: status },
  });
const secretsAnswering = (answer: () => unknown): SecretsClientLike => ({
  send: (async () => answer()) as SecretsClientLike['send'],
});

describe('function environment', () => {
  it('reads what the stack sets', () => {
    const env = readLambdaEnv({
      ...BASE,
      WAREHOUSE: 's3://k2-warehouse/cold-tier/',
      K2_POSTGRES_SECRET_ARN: ARN,
      K2_STAGE: 'prod',
      K2_CONFIG: '/var/task/tables.json',
    });
    expect(env).toMatchObject({
      warehouse: 's3://k2-warehouse/cold-tier',
      region: 'eu-west-1',
      catalog: 'glue',
      postgresSecretArn: ARN,
      configPath: '/var/task/tables.json',
      pgSchema: 'k2_offload',
      stage: 'prod',
    });
  });

  it.each([
    [{ AWS_REGION: 'eu-west-1' }, /environment variable WAREHOUSE: is not set; it must be s3:\/\/<bucket>/],
    [{ ...BASE, WAREHOUSE: '/tmp/warehouse' }, /WAREHOUSE: must be s3:\/\/.*, got "\/tmp\/warehouse"/],
    [{ WAREHOUSE: 's3://k2-warehouse' }, /environment variable AWS_REGION: is not set/],
    [{ ...BASE, K2_CATALOG: 'hive' }, /environment variable K2_CATALOG: .*got "hive"/],
    [
      { ...BASE, K2_POSTGRES_SECRET_ARN: 'postgres-secret' },
      /K2_POSTGRES_SECRET_ARN: must be a Secrets Manager secret ARN/,
    ],
    [{ ...BASE, K2_LEASE_SECONDS: '5' }, /K2_LEASE_SECONDS/],
    [{ ...BASE, K2_CYCLE_BUDGET_SECONDS: '0' }, /K2_CYCLE_BUDGET_SECONDS/],
    [
      { ...BASE, K2_CONFIG: '/var/task/t.json', K2_CONFIG_JSON: '{}' },
      /K2_CONFIG and K2_CONFIG_JSON are both set/,
    ],
  ])('refuses %j, naming the variable', (env, message) => {
    expect(() => readLambdaEnv(env)).toThrow(ConfigError);
    expect(() => readLambdaEnv(env)).toThrow(message);
  });

  it('refuses credentials in the environment and says where they go', () => {
    expect(() => readLambdaEnv({ ...BASE, DATABASE_URL: 'postgres://u:hunter2@db/k2' })).toThrow(
      /DATABASE_URL is set.*Secrets Manager.*K2_POSTGRES_SECRET_ARN/,
    );
    expect(() => readLambdaEnv({ ...BASE, DATABASE_URL: 'postgres://u:hunter2@db/k2' })).not.toThrow(
      /hunter2/,
    );
  });

  it('names every variable it reads in one list', () => {
    expect(Object.values(LAMBDA_ENV)).toContain('K2_CLICKHOUSE_SECRET_ARN');
    expect(new Set(Object.values(LAMBDA_ENV)).size).toBe(Object.values(LAMBDA_ENV).length);
  });
});

describe('connection secrets', () => {
  it('takes the RDS secret shape as it is stored', () => {
    const config = postgresConfigFromSecret(
      {
        engine: 'postgres',
        host: 'db.internal',
        port: 5433,
        username: 'k2',
        password: 'p@ss:/w',
        dbname: 'offload',
      },
      ARN,
    );
    expect(config).toEqual({
      host: 'db.internal',
      port: 5433,
      user: 'k2',
      password: 'p@ss:/w',
      database: 'offload',
      ssl: { rejectUnauthorized: true },
    });
    expect(postgresConfigFromSecret({ url: 'postgres://k2:pw@db:5432/offload' }, ARN)).toEqual({
      connectionString: 'postgres://k2:pw@db:5432/offload',
    });
    expect(
      postgresConfigFromSecret({ host: 'db', username: 'k2', password: 'x', sslmode: 'disable' }, ARN),
    ).toEqual({
      host: 'db',
      port: 5432,
      user: 'k2',
      password: 'x',
      database: 'postgres',
    });
  });

  it('builds a ClickHouse URL with the credentials encoded', () => {
    const url = clickhouseUrlFromSecret(
      { host: 'ch.internal', username: 'k2', password: 'a/b@c', database: 'k2' },
      ARN,
    );
    expect(url).toBe('https://k2:a%2Fb%40c@ch.internal:8443/k2');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe('a/b@c');
    expect(clickhouseUrlFromSecret({ host: 'ch', protocol: 'http' }, ARN)).toBe('http://ch:8123');
    expect(clickhouseUrlFromSecret({ url: 'https://u:p@ch:8443' }, ARN)).toBe('https://u:p@ch:8443');
  });

  it('refuses a wrong shape naming the fields present, never their values', () => {
    const attempt = () => postgresConfigFromSecret({ hostname: 'db', user: 'k2', password: 'hunter2' }, ARN);
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/present: hostname, user, password/);
    expect(attempt).not.toThrow(/hunter2/);
    expect(() => clickhouseUrlFromSecret({ url: 'tcp://ch:9000' }, ARN)).toThrow(
      /ClickHouse secret .* must be/,
    );
  });

  it('reads the secret JSON; a wrong ARN is a config error, a throttled call is retryable', async () => {
    expect(
      await readSecretJson(
        secretsAnswering(() => ({ SecretString: '{"url":"x"}' })),
        ARN,
        'V',
      ),
    ).toEqual({
      url: 'x',
    });
    const notFound = readSecretJson(
      secretsAnswering(() => {
        throw failure('ResourceNotFoundException', 400);
      }),
      ARN,
      'K2_POSTGRES_SECRET_ARN',
    );
    await expect(notFound).rejects.toThrow(ConfigError);
    await expect(notFound).rejects.toThrow(
      /K2_POSTGRES_SECRET_ARN: cannot read secret arn:aws:secretsmanager/,
    );
    const throttled = readSecretJson(
      secretsAnswering(() => {
        throw failure('ThrottlingException', 400);
      }),
      ARN,
      'V',
    );
    await expect(throttled).rejects.toThrow(UnavailableError);
    const plain = readSecretJson(
      secretsAnswering(() => ({ SecretString: 'hunter2' })),
      ARN,
      'V',
    );
    await expect(plain).rejects.toThrow(/must hold a JSON object/);
    await expect(plain).rejects.not.toThrow(/hunter2/);
  });
});
