import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../src/errors.ts';

/**
 * Everything that differs between deployments (dev, prod...), validated once at synth. Nothing secret
 * lives here: credentials are Secrets Manager ARNs, read by the functions at run time.
 *
 * Source, first found: `--context stageConfig=path/to/stage.json`, else the `k2-offload` object of the
 * CDK context (cdk.json). Unknown keys are refused, so a typo does not silently fall back to a default.
 */
const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/,
    'must be a Secrets Manager secret ARN',
  );

const kmsKeyArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/,
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
  );

const subscription = z.discriminatedUnion('protocol', [
  z.strictObject({ protocol: z.literal('email'), endpoint: z.email() }),
  /** e.g. a PagerDuty CloudWatch integration URL */
  z.strictObject({ protocol: z.literal('https'), endpoint: z.url({ protocol: /^https$/ }) }),
]);

const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653,
] as const;

export const stageConfigSchema = z.strictObject({
  /** Short name, part of every resource name: several stages can share an account. */
  stage: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{0,15}$/,
      'must be lower case letters, digits or -, starting with a letter, at most 16',
    )
    .default('dev'),
  account: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
    .optional(),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1')
    .optional(),
  /** EventBridge schedule expression of the offload cycle. */
  schedule: z
    .string()
    .regex(
      /^(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))$/,
      'must be rate(N minutes|hours) or cron(...)',
    )
    .default('rate(15 minutes)'),
  /** A production stage: its schedule runs by default. */
  production: z.boolean().default(false),
  /**
   * Whether the schedule starts cycles; by default only in a production stage, so a dev stage deployed
   * for a try costs nothing until switched on (cycles can still be started from the console or CLI).
   */
  scheduleEnabled: z.boolean().optional(),
  /** Execution timeout; defaults to the schedule period minus one minute, so cycles never pile up. */
  executionTimeoutMinutes: z.number().int().positive().optional(),
  /** Table config JSON (see src/config/schema.ts), relative to the project root; the ten default tables when absent. */
  tablesConfig: z.string().min(1).optional(),
  /** Where the functions reach ClickHouse and Postgres; without it they run outside any VPC. */
  vpc: z
    .strictObject({
      vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'must be a VPC id such as vpc-0abc...'),
      subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id')).min(1),
      availabilityZones: z.array(z.string().min(1)).min(1),
      securityGroupIds: z
        .array(z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id'))
        .default([]),
      /**
       * `endpoints` (default): the stack adds the VPC endpoints the functions call (S3 gateway, Secrets
       * Manager and Glue interface endpoints), for subnets without internet access. `nat`: the subnets
       * reach AWS APIs through a NAT gateway the operator provides; no endpoint is created.
       */
      egress: z.enum(['endpoints', 'nat']).default('endpoints'),
      /** Route table of each subnet, in order: the S3 gateway endpoint is added to them (egress `endpoints`). */
      routeTableIds: z.array(z.string().regex(/^rtb-[0-9a-f]+$/, 'must be a route table id')).default([]),
    })
    .optional(),
  /** Customer managed KMS keys, when the bucket or the secrets use one: the functions get kms:Decrypt on them. */
  encryption: z
    .strictObject({ bucketKeyArn: kmsKeyArn.optional(), secretsKeyArn: kmsKeyArn.optional() })
    .default({}),
  /** JSON secrets with a `url` key; created empty (fill them after deploy) when absent. */
  secrets: z
    .strictObject({ clickhouseArn: secretArn.optional(), postgresArn: secretArn.optional() })
    .default({}),
  warehouse: z
    .strictObject({
      /** An existing bucket; when absent the stack creates one (encrypted, private, SSL only). */
      bucketName: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name')
        .optional(),
      /** Staged Parquet is garbage once committed; the created bucket expires `staging/` after this. */
      stagingExpirationDays: z.number().int().positive().default(7),
    })
    .default({ stagingExpirationDays: 7 }),
  /** Glue database holding the Iceberg tables: every table's target namespace must be this name. */
  glueDatabase: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,254}$/, 'must be a lower case Glue database name')
    .default('cold'),
  createGlueDatabase: z.boolean().default(true),
  /** Tables of one layer offloaded at the same time. */
  maxConcurrency: z.number().int().min(1).max(40).default(4),
  /** Plan passes of one execution (catch-up loops), on top of the execution timeout. */
  maxPasses: z.number().int().min(1).max(100).default(20),
  emr: z
    .strictObject({
      releaseLabel: z
        .string()
        .regex(/^emr-7\.\d+\.\d+$/, 'must be an EMR 7.x release label such as emr-7.5.0')
        .default('emr-7.5.0'),
      maxCpu: z
        .string()
        .regex(/^\d+ vCPU$/, 'must look like "16 vCPU"')
        .default('16 vCPU'),
      maxMemory: z
        .string()
        .regex(/^\d+ GB$/, 'must look like "64 GB"')
        .default('64 GB'),
      idleTimeoutMinutes: z.number().int().min(1).max(10080).default(15),
      /** A Spark job ends inside the execution timeout, so inside its table's lease (checked at synth). */
      jobTimeoutMinutes: z.number().int().min(1).max(720).default(10),
    })
    .default({
      releaseLabel: 'emr-7.5.0',
      maxCpu: '16 vCPU',
      maxMemory: '64 GB',
      idleTimeoutMinutes: 15,
      jobTimeoutMinutes: 10,
    }),
  alarms: z
    .strictObject({
      lagCriticalMinutes: z.number().positive().default(30),
      lagWarningMinutes: z.number().positive().default(20),
      cycleCriticalSeconds: z.number().positive().default(600),
      cycleWarningSeconds: z.number().positive().default(300),
      consecutiveFailures: z.number().int().positive().default(3),
      watermarkStaleSeconds: z.number().positive().default(3600),
      schedulerSilenceMinutes: z.number().int().positive().default(30),
      ttlHeadroomHours: z.number().positive().default(24),
      successRatePercent: z.number().min(0).max(100).default(95),
      throughputRowsPerSecond: z.number().positive().default(10_000),
    })
    .default({
      lagCriticalMinutes: 30,
      lagWarningMinutes: 20,
      cycleCriticalSeconds: 600,
      cycleWarningSeconds: 300,
      consecutiveFailures: 3,
      watermarkStaleSeconds: 3600,
      schedulerSilenceMinutes: 30,
      ttlHeadroomHours: 24,
      successRatePercent: 95,
      throughputRowsPerSecond: 10_000,
    }),
  /** `page`: the composite incident alarm (on-call); `warn`: warning-level alarms (a team inbox). */
  notifications: z
    .strictObject({ page: z.array(subscription).default([]), warn: z.array(subscription).default([]) })
    .default({ page: [], warn: [] }),
  logRetentionDays: z
    .number()
    .refine((n) => (LOG_RETENTION_DAYS as readonly number[]).includes(n), {
      message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
    })
    .default(30),
});

export type StageConfig = z.infer<typeof stageConfigSchema>;
export type StageConfigInput = z.input<typeof stageConfigSchema>;

/** Whether the cycle schedule is switched on: as configured, else only in a production stage. */
export function scheduleEnabled(config: StageConfig): boolean {
  return config.scheduleEnabled ?? config.production;
}

/** Minutes between two scheduled cycles; undefined for cron expressions. */
export function schedulePeriodMinutes(schedule: string): number | undefined {
  const m = /^rate\((\d+) (minute|minutes|hour|hours)\)$/.exec(schedule);
  if (!m) return undefined;
  return Number(m[1]) * (m[2]?.startsWith('hour') ? 60 : 1);
}

/** The execution timeout: below the schedule period, so one cycle ends before the next starts. */
export function executionTimeoutMinutes(config: StageConfig): number {
  const period = schedulePeriodMinutes(config.schedule);
  if (config.executionTimeoutMinutes !== undefined) {
    if (period !== undefined && config.executionTimeoutMinutes >= period)
      throw new ConfigError(
        `stage config: executionTimeoutMinutes ${config.executionTimeoutMinutes} must be below the schedule period of ${period} minutes (${config.schedule})`,
        { field: 'executionTimeoutMinutes', value: config.executionTimeoutMinutes },
      );
    return config.executionTimeoutMinutes;
  }
  if (period === undefined)
    throw new ConfigError(
      `stage config: schedule ${config.schedule} is a cron expression; set executionTimeoutMinutes below its period`,
      { field: 'executionTimeoutMinutes' },
    );
  if (period < 2)
    throw new ConfigError(
      `stage config: schedule ${config.schedule} leaves no time for a cycle; use 2 minutes or more`,
      {
        field: 'schedule',
        value: config.schedule,
      },
    );
  return period - 1;
}

export function parseStageConfig(raw: unknown, source = 'stage config'): StageConfig {
  const parsed = stageConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const path = issue.path.map(String).join('.') || '(root)';
      const keys = 'keys' in issue && Array.isArray(issue.keys) ? ` (${issue.keys.join(', ')})` : '';
      return `${source}: ${path}: ${issue.message}${keys}`;
    });
    throw new ConfigError(lines.join('\n'), { source });
  }
  const config = parsed.data;
  if (config.alarms.lagWarningMinutes >= config.alarms.lagCriticalMinutes)
    throw new ConfigError(`${source}: alarms.lagWarningMinutes must be below alarms.lagCriticalMinutes`, {
      field: 'alarms.lagWarningMinutes',
    });
  if (config.alarms.cycleWarningSeconds >= config.alarms.cycleCriticalSeconds)
    throw new ConfigError(`${source}: alarms.cycleWarningSeconds must be below alarms.cycleCriticalSeconds`, {
      field: 'alarms.cycleWarningSeconds',
    });
  if (config.vpc?.egress === 'endpoints' && config.vpc.routeTableIds.length !== config.vpc.subnetIds.length)
    throw new ConfigError(
      `${source}: vpc.routeTableIds must name the route table of each of the ${config.vpc.subnetIds.length} subnets (got ${config.vpc.routeTableIds.length}) for the S3 gateway endpoint; or set vpc.egress to "nat" when the subnets reach AWS APIs through a NAT gateway`,
      { field: 'vpc.routeTableIds' },
    );
  executionTimeoutMinutes(config);
  return config;
}

/** Reads the stage config from CDK context: a file named by `stageConfig`, or the `k2-offload` object. */
export function loadStageConfig(context: (key: string) => unknown): StageConfig {
  const file = context('stageConfig');
  if (typeof file === 'string' && file.length > 0) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`cannot read stage config ${file}: ${(error as Error).message}`, { path: file });
    }
    return parseStageConfig(raw, file);
  }
  return parseStageConfig(context('k2-offload'), 'cdk.json context k2-offload');
}
