import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, LeaseError, UnavailableError, WatermarkConflictError } from '../../src/errors.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { freePort } from '../../src/postgres/embedded.ts';
import { applyMigrations, MIGRATIONS } from '../../src/watermark/migrations.ts';
import { createPostgresWatermarkStore, type WatermarkStore } from '../../src/watermark/store.ts';
import { freshDatabase } from '../support/pg.ts';
import { watermarkStoreContract } from '../watermark/contract.ts';

let db: { url: string; drop: () => Promise<void> };
const pools: pg.Pool[] = [];
let schemas = 0;

const newPool = () => {
  // A connection the store fails to give back fails the next test within seconds instead of hanging it.
  const pool = new pg.Pool({ connectionString: db.url, max: 4, connectionTimeoutMillis: 10_000 });
  pools.push(pool);
  return pool;
};

beforeAll(async () => {
  db = await freshDatabase('k2wm');
});
afterAll(async () => {
  // A pool still lending a connection never ends: give up waiting, the forced drop closes it anyway.
  const ended = Promise.all(pools.map((p) => p.end()));
  await Promise.race([ended, new Promise((done) => setTimeout(done, 5_000))]);
  await db?.drop();
});

// Each contract test gets its own schema, which also exercises the configurable schema name.
watermarkStoreContract('postgres', async (clock, process) => {
  const store = createPostgresWatermarkStore(pools[0] ?? newPool(), {
    schema: `contract_${++schemas}`,
    clock,
    process,
  });
  await store.migrate();
  return store;
});

describe('Postgres watermark store', () => {
  const T0 = '2026-11-22T00:00:00.000Z';
  const T1 = '2026-11-22T00:15:00.000Z';
  const T2 = '2026-11-22T00:30:00.000Z';

  /** Two stores on two pools (two sets of connections), as two processes would have. */
  async function twoProcesses(schema: string) {
    const a = createPostgresWatermarkStore(newPool(), { schema });
    const b = createPostgresWatermarkStore(newPool(), { schema });
    await Promise.all([a.migrate(), b.migrate()]);
    await a.ensureTables([{ table: 'trades', initialCursor: T0 }]);
    return { a, b };
  }
  /**
   * Runs the calls while a third connection holds the watermark row locked, then lets go: every call is
   * then genuinely waiting on the same row at once, rather than racing by luck of scheduling.
   */
  async function released<T>(schema: string, calls: Array<() => Promise<T>>) {
    const gate = new pg.Client({ connectionString: db.url });
    await gate.connect();
    try {
      await gate.query('BEGIN');
      await gate.query(`SELECT 1 FROM ${schema}.watermarks WHERE table_name = 'trades' FOR UPDATE`);
      const running = Promise.allSettled(calls.map((call) => call()));
      let waiting = 0;
      // Ends as soon as every call waits; the deadline only bounds a hang (within the test's 60 s).
      for (const deadline = Date.now() + 50_000; waiting < calls.length && Date.now() < deadline; ) {
        await new Promise((ok) => setTimeout(ok, 20));
        // Activity views are snapshotted once per transaction; the gate is inside one.
        await gate.query('SELECT pg_stat_clear_snapshot()');
        const blocked = await gate.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        waiting = blocked.rows[0].n;
      }
      await gate.query('COMMIT');
      return { settled: await running, waiting };
    } finally {
      await gate.end();
    }
  }
  /**
   * A store whose every statement is preceded by `before(sql)`: another process's write lands exactly
   * between two statements of the store's, where a race would put it only by chance.
   */
  function interleaved(schema: string, before: (sql: string) => Promise<void>) {
    const pool = newPool();
    const query = pool.query.bind(pool) as (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;
    Object.assign(pool, {
      query: async (sql: string, params?: unknown[]) => {
        await before(sql);
        return query(sql, params);
      },
    });
    return createPostgresWatermarkStore(pool, { schema });
  }
  const TAKE = /^UPDATE \S+ SET lease_token = lease_token \+ 1/;
  const WHO_HOLDS = /^SELECT lease_holder, lease_expires_at FROM/;
  const COMPARE_AND_SET = /^WITH up AS \(\s+UPDATE/;
  const RE_READ = /^SELECT cursor, version::text, last_batch_id/;

  const committed = (store: WatermarkStore, start: string, end: string, leaseToken: string) =>
    store.advance({
      ...makeBatch('trades', start, end),
      leaseToken,
      rows: 10,
      files: 1,
      bytes: 100,
      durationMs: 5,
      outcome: 'committed',
    });

  it('applies migrations once, even when two processes start at the same moment', async () => {
    const clients = [
      new pg.Client({ connectionString: db.url }),
      new pg.Client({ connectionString: db.url }),
    ];
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const first = await Promise.all(clients.map((c) => applyMigrations(c, 'racing_start')));
      const all = MIGRATIONS.map((m) => m.version);
      expect(first.map((v) => v.length).sort()).toEqual([0, all.length]);
      expect(await applyMigrations(clients[0]!, 'racing_start')).toEqual([]);
      const rows = await clients[0]!.query(
        'SELECT version FROM racing_start.k2_schema_migrations ORDER BY 1',
      );
      expect(rows.rows.map((r) => r.version)).toEqual(all);
      // Stores in two pools, migrating concurrently again: still a no-op.
      const { a } = await twoProcesses('racing_start');
      expect((await a.list()).map((w) => w.table)).toEqual(['trades']);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('survives the server dropping an idle connection (a restart, a failover): the next query opens another', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pools.push(pool);
    const store = createPostgresWatermarkStore(pool, { schema: 'idle_drop' });
    await store.migrate();
    // pg reports a connection the server dropped while idle as an 'error' event on the pool: with no
    // listener, Node ends the process.
    expect(() =>
      pool.emit('error', new Error('terminating connection due to administrator command')),
    ).not.toThrow();
    expect(await store.list()).toEqual([]);
    // A pool that already has a listener of its caller's keeps just that one.
    const own = new pg.Pool({ connectionString: db.url, max: 1 });
    pools.push(own);
    own.on('error', () => {});
    createPostgresWatermarkStore(own, { schema: 'idle_drop' });
    expect(own.listenerCount('error')).toBe(1);
  });

  it('applies migrations in version order, whatever order the build lists them in', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const second = { version: 2, name: 'add b', sql: (s: string) => `ALTER TABLE ${s}.t ADD COLUMN b int` };
      const first = { version: 1, name: 'create t', sql: (s: string) => `CREATE TABLE ${s}.t (a int)` };
      expect(await applyMigrations(client, 'ordered', [second, first])).toEqual([1, 2]);
      const columns = await client.query(
        `SELECT column_name FROM information_schema.columns WHERE table_schema = 'ordered' AND table_name = 't' ORDER BY ordinal_position`,
      );
      expect(columns.rows.map((r) => r.column_name)).toEqual(['a', 'b']);
      // A migration that fails leaves nothing half applied, and the connection usable (rolled back).
      const broken = {
        version: 3,
        name: 'broken',
        sql: (s: string) => `ALTER TABLE ${s}.missing ADD COLUMN c int`,
      };
      await expect(applyMigrations(client, 'ordered', [first, second, broken])).rejects.toThrow(/missing/);
      expect((await client.query('SELECT max(version) AS v FROM ordered.k2_schema_migrations')).rows).toEqual(
        [{ v: 2 }],
      );
    } finally {
      await client.end();
    }
  });

  it('refuses a database migrated by a newer build, and a schema name that is not an identifier', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await applyMigrations(client, 'from_future');
      await client.query(
        `INSERT INTO from_future.k2_schema_migrations (version, name) VALUES (999, 'later')`,
      );
      const refused = applyMigrations(client, 'from_future');
      await expect(refused).rejects.toThrow(
        `watermark schema from_future is at migration 999 (later), newer than this build knows (up to ${Math.max(...MIGRATIONS.map((m) => m.version))}); deploy the newer build, or point it at another schema`,
      );
      await expect(refused).rejects.toMatchObject({ details: { schema: 'from_future', version: 999 } });
      expect(() => createPostgresWatermarkStore(newPool(), { schema: 'x; DROP TABLE y' })).toThrow(
        ConfigError,
      );
      const unmigrated = createPostgresWatermarkStore(newPool(), { schema: 'never_migrated' });
      await expect(unmigrated.list()).rejects.toThrow(/do not exist in schema never_migrated.*migrate\(\)/);
      await expect(unmigrated.list()).rejects.toMatchObject({ details: { schema: 'never_migrated' } });
    } finally {
      await client.end();
    }
  });

  it('lets exactly one of two racing commits of the same batch advance; the other is a replay', async () => {
    const { a, b } = await twoProcesses('race_same');
    const lease = await a.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    const { settled, waiting } = await released('race_same', [
      () => committed(a, T0, T1, lease.token),
      () => committed(b, T0, T1, lease.token),
    ]);
    expect(waiting).toBe(2);
    const results = settled.map((s) => (s.status === 'fulfilled' ? s.value.result : s.reason));
    expect(results.sort()).toEqual(['advanced', 'replayed']);
    expect((await a.get('trades')).version).toBe(1);
    expect((await a.history()).filter((r) => r.outcome === 'committed')).toHaveLength(1);
  });

  it('lets exactly one of two racing commits of different batches advance; the other conflicts', async () => {
    const { a, b } = await twoProcesses('race_diff');
    const lease = await a.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    const { settled, waiting } = await released('race_diff', [
      () => committed(a, T0, T1, lease.token),
      () => committed(b, T0, T2, lease.token),
    ]);
    expect(waiting).toBe(2);
    const won = settled.filter((s) => s.status === 'fulfilled');
    const lost = settled.filter((s) => s.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(WatermarkConflictError);
    expect(await a.history()).toHaveLength(1);
  });

  it('grants a contested lease to exactly one of many concurrent cycles', async () => {
    const { a, b } = await twoProcesses('race_lease');
    const { settled, waiting } = await released(
      'race_lease',
      Array.from({ length: 8 }, (_, i) => () => (i % 2 ? a : b).acquireLease('trades', `cycle-${i}`, 300)),
    );
    expect(waiting).toBe(8);
    const attempts = settled.map((s) => (s.status === 'fulfilled' ? s.value : { acquired: 'error' }));
    expect(attempts.filter((r) => r.acquired === true)).toHaveLength(1);
    expect(attempts.filter((r) => r.acquired === false)).toHaveLength(7);
    expect((await a.get('trades')).leaseToken).toBe('1');
  });

  it('enforces forward-only cursors and append-only audit in the database itself', async () => {
    const { a } = await twoProcesses('guarded');
    const lease = await a.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    await committed(a, T0, T1, lease.token);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await expect(client.query(`UPDATE guarded.watermarks SET cursor = $1`, [T0])).rejects.toThrow(
        /cannot move backwards/,
      );
      await expect(client.query('UPDATE guarded.watermark_runs SET rows = 0')).rejects.toThrow(/append-only/);
      await expect(client.query('DELETE FROM guarded.watermark_audit')).resolves.toBeDefined();
      await a.releaseLease('trades', lease.token);
      await a.setCursor({
        table: 'trades',
        cursor: T0,
        actor: 'ops',
        reason: 'restore',
        allowBackwards: true,
      });
      await expect(client.query('DELETE FROM guarded.watermark_audit')).rejects.toThrow(/append-only/);
      expect((await a.get('trades')).cursor).toBe(T0);
    } finally {
      await client.end();
    }
  });

  it('takes a lease given back between its refused take and the re-read of who holds it', async () => {
    const { a: other } = await twoProcesses('lease_given_back');
    const held = await other.acquireLease('trades', 'cycle-a', 300);
    if (!held.acquired) throw new Error('lease');
    let givenBack = false;
    const store = interleaved('lease_given_back', async (sql) => {
      if (givenBack || !WHO_HOLDS.test(sql)) return;
      givenBack = true;
      await other.releaseLease('trades', held.token);
    });
    expect(await store.acquireLease('trades', 'cycle-b', 300)).toMatchObject({ acquired: true, token: '2' });
    expect((await store.get('trades')).lease?.holder).toBe('cycle-b');
  });

  it('refuses a table another cycle holds after a single try: a live lease is not retried', async () => {
    const { a: other } = await twoProcesses('lease_held');
    await other.acquireLease('trades', 'cycle-a', 300);
    let takes = 0;
    const store = interleaved('lease_held', async (sql) => {
      if (TAKE.test(sql)) takes++;
    });
    expect(await store.acquireLease('trades', 'cycle-b', 300)).toMatchObject({
      acquired: false,
      holder: 'cycle-a',
    });
    expect(takes).toBe(1);
  });

  it('gives up a lease that changes hands between its statements at every try, rather than chasing it', async () => {
    const { a: other } = await twoProcesses('lease_churn');
    let takes = 0;
    let token = '';
    const store = interleaved('lease_churn', async (sql) => {
      if (TAKE.test(sql)) {
        if (++takes > 10) throw new Error('still trying after 10 takes');
        const got = await other.acquireLease('trades', 'cycle-a', 300);
        if (got.acquired) token = got.token;
      } else if (WHO_HOLDS.test(sql)) await other.releaseLease('trades', token);
    });
    expect(await store.acquireLease('trades', 'cycle-b', 300)).toMatchObject({
      acquired: false,
      holder: '(unknown)',
    });
    expect(takes).toBe(4);
  });

  it('advances a batch whose predecessor in the same pass lands between its compare-and-set and the re-read', async () => {
    const { a: other } = await twoProcesses('late_predecessor');
    const lease = await other.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    let landed = false;
    const store = interleaved('late_predecessor', async (sql) => {
      if (landed || !RE_READ.test(sql)) return;
      landed = true;
      await committed(other, T0, T1, lease.token);
    });
    expect(await committed(store, T1, T2, lease.token)).toEqual({ result: 'advanced', version: 2 });
    expect((await store.get('trades')).cursor).toBe(T2);
  });

  it('refuses a batch that does not start at the cursor after a single compare-and-set: nothing to retry', async () => {
    const { a: other } = await twoProcesses('off_cursor');
    const lease = await other.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    let tries = 0;
    const store = interleaved('off_cursor', async (sql) => {
      if (COMPARE_AND_SET.test(sql)) tries++;
    });
    await expect(committed(store, T1, T2, lease.token)).rejects.toThrow(WatermarkConflictError);
    expect(tries).toBe(1);
  });

  it('leaves no transaction open when a change is refused: the table is not left locked, the connection is reused', async () => {
    // One connection, so a connection not given back fails the next call within seconds.
    const opsPool = new pg.Pool({ connectionString: db.url, max: 1, connectionTimeoutMillis: 5_000 });
    // A cycle that waits on a row lock gives up rather than hang the test.
    const cyclePool = new pg.Pool({ connectionString: db.url, statement_timeout: 5_000 });
    pools.push(opsPool, cyclePool);
    const ops = createPostgresWatermarkStore(opsPool, { schema: 'refused_tx' });
    await ops.migrate();
    await ops.ensureTables([{ table: 'trades', initialCursor: T0 }]);
    const cycle = createPostgresWatermarkStore(cyclePool, { schema: 'refused_tx' });
    const lease = await cycle.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    const move = () =>
      ops.setCursor({
        table: 'trades',
        cursor: T1,
        actor: 'ops',
        reason: 'skip a bad hour',
        allowBackwards: false,
      });
    const backend = async () => (await opsPool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const before = await backend();
    await expect(move()).rejects.toThrow(LeaseError);
    await expect(move()).rejects.toThrow(LeaseError);
    expect(await backend()).toBe(before);
    expect(await cycle.releaseLease('trades', lease.token)).toEqual({ released: true });
    expect(await move()).toMatchObject({ changed: true, previousCursor: T0 });
    expect((await cycle.get('trades')).cursor).toBe(T1);
  });

  it('reports an unreachable server as retryable, naming the host and never the password', async () => {
    const port = await freePort();
    const pool = new pg.Pool({
      connectionString: `postgres://k2:s3cret-pw@127.0.0.1:${port}/k2`,
      connectionTimeoutMillis: 2000,
    });
    pools.push(pool);
    const store = createPostgresWatermarkStore(pool);
    for (const call of [
      () => store.migrate(),
      () => store.list(),
      () => store.recordNoop({ table: 't', leaseToken: '1', reason: 'r' }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).retryable).toBe(true);
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
      expect(JSON.stringify((err as UnavailableError).toJSON())).not.toContain('s3cret-pw');
    }
  });

  it('advances 50 consecutive batches in order, one history row each (timing printed)', async () => {
    const { a } = await twoProcesses('timing');
    const lease = await a.acquireLease('trades', 'cycle-1', 300);
    if (!lease.acquired) throw new Error('lease');
    const times: number[] = [];
    let cursor = Date.parse(T0);
    for (let i = 0; i < 50; i++) {
      const start = performance.now();
      await committed(
        a,
        new Date(cursor).toISOString(),
        new Date(cursor + 60_000).toISOString(),
        lease.token,
      );
      times.push(performance.now() - start);
      cursor += 60_000;
    }
    times.sort((x, y) => x - y);
    const p50 = times[25]!;
    const p95 = times[47]!;
    console.log(`watermark advance: p50 ${p50.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms`);
    expect((await a.get('trades')).version).toBe(50);
    expect(await a.history({ limit: 1000 })).toHaveLength(50);
  });
});
