import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertReachable,
  describeClickHouse,
  errorReason,
  isEmbedded,
  openClickHouse,
  queryRows,
  redactUrl,
} from '../../src/clickhouse/client.ts';
import { ConfigError, UnavailableError } from '../../src/errors.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k2-client-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('embedded ClickHouse (chDB)', () => {
  it('shares one engine per data directory and closes it with its last user', async () => {
    const a = openClickHouse({ dataDir: join(dir, 'one') });
    const b = openClickHouse({ dataDir: join(dir, 'one') });
    expect(b).toBe(a);
    expect(isEmbedded(a)).toBe(true);
    await a.close();
    expect(await queryRows(b, 'SELECT {x:String} AS x, {n:UInt8} + 1 AS n', { x: "it's", n: 1 })).toEqual([
      { x: "it's", n: 2 },
    ]);
    await b.close();
    await expect(b.query({ query: 'SELECT 1' })).rejects.toThrow(/closed/);
  });

  it('closed while a statement runs (a signal), ends that statement first and refuses those not yet started', async () => {
    const client = openClickHouse({ dataDir: join(dir, 'closing') });
    const ended: string[] = [];
    const running = client
      .command({
        query: `CREATE TABLE counted ENGINE = Memory AS
                SELECT count() AS n FROM numbers(60000000) WHERE sipHash64(number) % 7 = 1`,
      })
      .then(() => ended.push('running statement'));
    const queued = queryRows(client, 'SELECT 1 AS x');
    await new Promise((ok) => setTimeout(ok, 50));
    const closed = client.close().then(() => ended.push('engine closed'));
    await expect(queued).rejects.toThrow('this process is stopping');
    await closed;
    expect(ended).toEqual(['running statement', 'engine closed']);
    await running;
    await expect(client.query({ query: 'SELECT 1' })).rejects.toThrow(/closed/);
  });

  it('refuses a second data directory while one is open, naming both and the ways out', async () => {
    const open = openClickHouse({ dataDir: join(dir, 'two') });
    try {
      const attempt = () => openClickHouse({ dataDir: join(dir, 'three') });
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(`already open on ${join(dir, 'two')}`);
      expect(attempt).toThrow(/CLICKHOUSE_URL/);
    } finally {
      await open.close();
    }
    const next = openClickHouse({ dataDir: join(dir, 'three') });
    await assertReachable(next);
    await next.close();
  });

  it('gives the query after a failed one its own result, not the output the failure left behind', async () => {
    const client = openClickHouse({ dataDir: join(dir, 'four') });
    try {
      const failing = client.exec({
        query: `SELECT number FROM numbers(1000000) WHERE throwIf(number = 999999, 'late failure') = 0 FORMAT Parquet`,
      });
      await expect(failing).rejects.toThrow(/late failure/);
      expect(await queryRows(client, 'SELECT 1 AS x')).toEqual([{ x: 1 }]);
    } finally {
      await client.close();
    }
  });
});

describe('remote ClickHouse', () => {
  it('reports an unreachable server as UnavailableError with its URL and never its password', async () => {
    const client = openClickHouse({ url: 'http://offload:s3cret@127.0.0.1:1/k2', dataDir: dir });
    expect(isEmbedded(client)).toBe(false);
    expect(describeClickHouse(client)).not.toContain('s3cret');
    const error = await assertReachable(client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).retryable).toBe(true);
    expect((error as Error).message).toContain('http://offload@127.0.0.1:1/k2');
    expect(JSON.stringify(error)).not.toContain('s3cret');
    await client.close();
  });

  it('says why a connect failed when every address failed (an AggregateError has no message of its own)', async () => {
    const timeout = (address: string) =>
      Object.assign(new Error(`connect ETIMEDOUT ${address}`), { code: 'ETIMEDOUT' });
    const client = {
      ping: async () => {
        throw new AggregateError([timeout('192.0.2.1:8123'), timeout('[2001:db8::1]:8123')], '');
      },
    } as unknown as Parameters<typeof assertReachable>[0];
    const error = await assertReachable(client).catch((e: unknown) => e);
    expect((error as Error).message).toContain(
      ': connect ETIMEDOUT 192.0.2.1:8123; connect ETIMEDOUT [2001:db8::1]:8123. Check that the server is up',
    );
    expect(errorReason(Object.assign(new Error(''), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
  });

  it('refuses a malformed or non-HTTP URL without echoing the password', () => {
    expect(() => openClickHouse({ url: 'tcp://u:pw@host:9000', dataDir: dir })).toThrow(
      /must use http or https/,
    );
    expect(() => openClickHouse({ url: 'not a url', dataDir: dir })).toThrow(ConfigError);
    expect(redactUrl('https://u:pw@h:8443/?password=pw&x=1')).toBe('https://u@h:8443/?x=1');
  });
});
