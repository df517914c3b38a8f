import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../../src/postgres/embedded.ts';

/**
 * moto's server emulates S3, Glue, CloudWatch and EMR Serverless over HTTP. Each test file that needs it
 * starts its own on a free port (or reuses `MOTO_ENDPOINT` / `LOCALSTACK_ENDPOINT` when set), so files
 * run in parallel without sharing buckets or databases.
 */

/** Region and dummy credentials: the emulator signs nothing, but the SDK insists on having them. */
export const MOTO_REGION = 'us-east-1';
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;

export type MotoAvailability = { available: true } | { available: false; reason: string };

const externalEndpoint = () => process.env.MOTO_ENDPOINT || process.env.LOCALSTACK_ENDPOINT || undefined;

/** Whether an emulator can be had: an external endpoint is configured, or python3 can import moto. */
export function motoAvailability(): MotoAvailability {
  if (externalEndpoint()) return { available: true };
  const probe = spawnSync('python3', ['-c', 'import moto'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status === 0) return { available: true };
  const why = probe.error ? probe.error.message : probe.stderr.trim().split('\n').pop();
  return {
    available: false,
    reason: `moto is not importable by python3 (${why}); install it with "pip install 'moto[server]'" or set MOTO_ENDPOINT`,
  };
}

/**
 * Use as `describe.skipIf(skipMoto(m))(...)`. On a laptop without moto the suite is skipped with the
 * reason printed; in CI (`CI` set) a missing moto is an error, so these suites can never silently stop
 * running there.
 */
export function skipMoto(availability: MotoAvailability, suite: string): boolean {
  if (availability.available) return false;
  if (process.env.CI)
    throw new Error(`${suite}: ${availability.reason}; CI must run the AWS-protocol suites`);
  console.warn(`[skipped] ${suite}: ${availability.reason}`);
  return true;
}

export type Moto = {
  endpoint: string;
  /** Client config for any AWS SDK v3 client pointed at the emulator. */
  clientConfig: {
    endpoint: string;
    region: string;
    credentials: typeof MOTO_CREDENTIALS;
    forcePathStyle: true;
  };
  stop(): Promise<void>;
};

async function waitUntilAnswering(endpoint: string, child: ChildProcess | undefined, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`moto server exited with code ${child.exitCode} before answering on ${endpoint}`);
    }
    try {
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      return;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`moto server did not answer on ${endpoint} within ${timeoutMs} ms: ${String(lastError)}`);
}

function configFor(endpoint: string): Moto['clientConfig'] {
  return { endpoint, region: MOTO_REGION, credentials: MOTO_CREDENTIALS, forcePathStyle: true };
}

/** Starts a private moto server (or reuses the configured external one) and waits until it answers. */
export async function startMoto(): Promise<Moto> {
  const external = externalEndpoint();
  if (external) {
    await waitUntilAnswering(external, undefined, 10_000);
    return { endpoint: external, clientConfig: configFor(external), stop: async () => {} };
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  try {
    // A bound against a hang: the server's start-up (Python imports) is slow on a busy machine.
    await waitUntilAnswering(endpoint, child, 90_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return {
    endpoint,
    clientConfig: configFor(endpoint),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
