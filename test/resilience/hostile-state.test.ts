import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditTables } from '../../src/audit/audit.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { cli } from '../cli/support.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, MINUTE, stateOf } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * Hostile state gets a clear error and loses nothing (QUALITY.md): a catalog pointing at garbage or at
 * another table's metadata, schema drift in ClickHouse, a watermark set ahead of the data. The table at
 * fault fails alone; the others go on; nothing is partly committed.
 */
describe('hostile state', () => {
  const fed = useFedRig({ name: 'hostile-state', seed: 42, rowsPerHour: 1500, hours: 3 });
  const { clock } = fed;
  /** A quarter later, with the trades of that quarter: one more cycle. */
  const nextCycle = async (deps: PipelineDeps) => {
    clock.advance(CYCLE_MS);
    await fed.feed();
    return runCycle(deps, {});
  };
  beforeAll(async () => {
    await runCycle(fed.rig.deps(), {});
    clock.advance(CYCLE_MS);
    await fed.feed();
  });

  it('a catalog pointing at garbage: that table fails with a clear error, the others go on, nothing committed', async () => {
    const deps = fed.rig.deps();
    const kraken = deps.config.tables.find((t) => t.name === 'bronze_trades_kraken')
      ?.target as OffloadConfig['tables'][number]['target'];
    const good = (await deps.catalog.currentMetadataLocation(kraken)) as string;
    const garbage = good.replace(/[^/]+$/, '99999-garbage.metadata.json');
    await deps.store.put(garbage, new TextEncoder().encode('{"format-version": 2, "location": '));
    await deps.catalog.swapMetadataLocation(kraken, good, garbage);
    const cursor = (await deps.watermarks.get('bronze_trades_kraken')).cursor;

    const result = await nextCycle(deps);
    const outcomes = result.passes.flatMap((p) => p.tables);
    expect(outcomes.filter((t) => t.status === 'failed').map((t) => t.table)).toEqual([
      'bronze_trades_kraken',
    ]);
    expect(outcomes.find((t) => t.table === 'bronze_trades_binance')?.status).toBe('succeeded');
    const w = await deps.watermarks.get('bronze_trades_kraken');
    expect(w.lastError?.name).toBe('InvalidMetadataError');
    expect(w.lastError?.message).toContain('99999-garbage.metadata.json');
    expect(w.cursor).toBe(cursor);
    expect(await deps.catalog.currentMetadataLocation(kraken)).toBe(garbage);

    // Put right by hand, the next cycle catches up with nothing lost or doubled.
    await deps.catalog.swapMetadataLocation(kraken, garbage, good);
    await nextCycle(deps);
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it("a catalog pointing at another table's metadata is refused, nothing committed to either table", async () => {
    const deps = fed.rig.deps();
    const target = (name: string) =>
      deps.config.tables.find((t) => t.name === name)?.target as OffloadConfig['tables'][number]['target'];
    const own = (await deps.catalog.currentMetadataLocation(target('bronze_trades_kraken'))) as string;
    const binance = (await deps.catalog.currentMetadataLocation(target('bronze_trades_binance'))) as string;
    await deps.catalog.swapMetadataLocation(target('bronze_trades_kraken'), own, binance);
    const before = await deps.watermarks.get('bronze_trades_kraken');

    const result = await nextCycle(deps);
    const outcomes = result.passes.flatMap((p) => p.tables);
    expect(outcomes.filter((t) => t.status === 'failed').map((t) => t.table)).toEqual([
      'bronze_trades_kraken',
    ]);
    const w = await deps.watermarks.get('bronze_trades_kraken');
    expect(w.lastError?.name).toBe('InvalidMetadataError');
    expect(w.lastError?.message).toMatch(/bronze_trades_binance/);
    expect(w.cursor).toBe(before.cursor);
    expect(await deps.catalog.currentMetadataLocation(target('bronze_trades_kraken'))).toBe(binance);
    // Binance's table got binance's batch and nothing of kraken's.
    const binanceVerdict = (await verifyAll(deps)).verdicts.find((v) => v.table === 'bronze_trades_binance');
    expect(
      binanceVerdict && [
        binanceVerdict.extra.length,
        binanceVerdict.duplicated.length,
        binanceVerdict.missing.length,
      ],
    ).toEqual([0, 0, 0]);

    await deps.catalog.swapMetadataLocation(target('bronze_trades_kraken'), binance, own);
    await nextCycle(deps);
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it('schema drift (a column added in one table, retyped in another): those fail, the others go on, nothing partly committed', async () => {
    const deps = fed.rig.deps();
    await fed.rig.clickhouse.command({
      query: `ALTER TABLE k2.bronze_trades_kraken ADD COLUMN venue String DEFAULT 'x'`,
    });
    await fed.rig.clickhouse.command({
      query: 'ALTER TABLE k2.bronze_trades_coinbase MODIFY COLUMN kafka_partition UInt32',
    });
    const before = await stateOf(fed.rig);
    const result = await nextCycle(deps);
    const outcomes = result.passes.flatMap((p) => p.tables);
    expect(
      outcomes
        .filter((t) => t.status === 'failed')
        .map((t) => t.table)
        .sort(),
    ).toEqual(['bronze_trades_coinbase', 'bronze_trades_kraken']);
    expect(outcomes.find((t) => t.table === 'bronze_trades_binance')).toMatchObject({ status: 'succeeded' });
    expect((outcomes.find((t) => t.table === 'bronze_trades_binance')?.rows ?? 0) > 0).toBe(true);
    const after = await stateOf(fed.rig);
    for (const name of ['bronze_trades_kraken', 'bronze_trades_coinbase']) {
      const w = await deps.watermarks.get(name);
      expect(w.lastError?.name, name).toBe('SchemaDriftError');
      expect(w.lastError?.message, name).toMatch(
        name === 'bronze_trades_kraken' ? /venue/ : /kafka_partition/,
      );
      const i = deps.config.tables.findIndex((t) => t.name === name);
      expect(after.metadata[i], name).toBe(before.metadata[i]);
      // Cursor and version as they were (the lease token moves: the table was leased, then released).
      expect(after.watermarks[i]?.slice(0, 3), name).toEqual(before.watermarks[i]?.slice(0, 3));
    }

    // Drift undone: the next cycle offloads what waited, nothing lost, nothing twice.
    await fed.rig.clickhouse.command({ query: 'ALTER TABLE k2.bronze_trades_kraken DROP COLUMN venue' });
    await fed.rig.clickhouse.command({
      query: 'ALTER TABLE k2.bronze_trades_coinbase MODIFY COLUMN kafka_partition UInt16',
    });
    await nextCycle(deps);
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it('a watermark set ahead of ClickHouse data: refused without --force; forced, the gap shows in the audit trail and the count audit, Iceberg loses nothing it had', async () => {
    const deps = fed.rig.deps();
    await nextCycle(deps);
    const held = (await verifyAll(deps)).verdicts.find((v) => v.table === 'bronze_trades_kraken');
    const old = (await deps.watermarks.get('bronze_trades_kraken')).cursor;
    clock.advance(2 * CYCLE_MS);
    await fed.feed();
    const ahead = new Date(Date.parse(old) + 20 * MINUTE).toISOString();
    // The operator's path: the CLI, on the same Postgres, warehouse and hot tier.
    const env = {
      ...process.env,
      DATABASE_URL: fed.databaseUrl,
      K2_HOME: fed.rig.dir,
      WAREHOUSE: join(fed.rig.dir, 'warehouse'),
    };
    const set = ['watermark', 'set', '--table', 'bronze_trades_kraken', '--to', ahead];
    const refused = await cli(set, env, clock.now);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refused: it would skip \d+ rows that ClickHouse holds in/);
    expect((await deps.watermarks.get('bronze_trades_kraken')).cursor).toBe(old);
    const forced = await cli(
      [...set, '--force', '--reason', 'INC-7 bad feed', '--actor', 'oncall'],
      env,
      clock.now,
    );
    expect(forced.code, forced.stderr).toBe(0);
    const [audit] = await deps.watermarks.audit({ table: 'bronze_trades_kraken', limit: 1 });
    expect(audit).toMatchObject({
      oldCursor: old,
      newCursor: ahead,
      backwards: false,
      actor: 'oncall',
      reason: 'INC-7 bad feed',
      skippedRows: expect.any(Number),
    });

    await runCycle(deps, {});
    const verdict = (await verifyAll(deps)).verdicts.find((v) => v.table === 'bronze_trades_kraken');
    // Exactly the rows of the skipped range are missing; every row Iceberg had is still there, once.
    const [skipped] = (await (
      await fed.rig.clickhouse.query({
        query: `SELECT toString(count()) AS n FROM k2.bronze_trades_kraken
                WHERE ingestion_timestamp >= parseDateTime64BestEffort('${old}', 6, 'UTC')
                  AND ingestion_timestamp < parseDateTime64BestEffort('${ahead}', 6, 'UTC')`,
        format: 'JSONEachRow',
      })
    ).json()) as Array<{ n: string }>;
    const gap = Number(skipped?.n);
    expect(gap).toBeGreaterThan(0);
    expect(verdict?.missing.length).toBe(gap);
    expect(verdict?.duplicated).toEqual([]);
    expect(verdict?.extra).toEqual([]);
    expect(verdict?.icebergRows).toBeGreaterThan(held?.icebergRows ?? 0);
    // The daily count audit shows the same hole, hour by hour, as the audited skip it is (who, why),
    // not as a mismatch; nothing doubled.
    const report = await auditTables(deps, {
      hours: 6,
      tables: ['bronze_trades_kraken'],
      reader: fed.rig.clickhouse,
    });
    const totals = report.tables[0]?.totals;
    expect(report.ok).toBe(true);
    expect(totals?.skippedKeys).toBe(gap);
    expect([totals?.missingKeys, totals?.duplicateKeys, totals?.extraKeys]).toEqual([0, 0, 0]);
    expect(report.tables[0]?.skips).toEqual([
      expect.objectContaining({
        from: old,
        to: ahead,
        actor: 'oncall',
        reason: 'INC-7 bad feed',
        skippedKeys: gap,
      }),
    ]);
  });
});
