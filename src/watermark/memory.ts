import { toInstant } from '../plan/batch.ts';
import { memoryHourlyMethods } from './memory-hourly.ts';
import {
  backwardsRefused,
  checkHolder,
  checkTableName,
  checkToken,
  checkTtl,
  conflict,
  expiryOf,
  leaseHeld,
  normalizeAdvance,
  normalizeBinding,
  normalizeFailure,
  normalizeForceRelease,
  normalizeHistoryQuery,
  normalizeLimit,
  normalizeNoop,
  normalizeReconcile,
  normalizeSetCursor,
  releaseReason,
  staleLease,
  unknownTable,
} from './rules.ts';
import type { AuditRecord, HolderProcess, RunRecord, Watermark, WatermarkStore } from './types.ts';

type Row = Omit<Watermark, 'lease' | 'leaseToken'> & {
  token: bigint;
  holder: string | null;
  expiresAt: string | null;
  holderProcess: HolderProcess | null;
  startedAt: string | null;
};

const ms = (instant: string) => Date.parse(instant);

/**
 * The watermark store in memory, with the semantics of the Postgres store: every method mutates
 * synchronously between awaits, which makes each one atomic the way a row lock makes it atomic there.
 * For unit tests of other modules and the demo; state is lost with the process.
 */
export function createMemoryWatermarkStore(
  options: { clock?: () => Date; process?: HolderProcess } = {},
): WatermarkStore {
  const clock = options.clock ?? (() => new Date());
  const me = options.process ?? { host: 'memory', pid: process.pid };
  const rows = new Map<string, Row>();
  const runs: RunRecord[] = [];
  const audits: AuditRecord[] = [];
  let nextId = 1n;

  const now = () => clock().toISOString();
  const rowOf = (table: string): Row => {
    const row = rows.get(checkTableName(table));
    if (!row) throw unknownTable(table, [...rows.keys()].sort());
    return row;
  };
  const view = (row: Row): Watermark => {
    const { token, holder, expiresAt, lastError, holderProcess, startedAt, iceberg, ...rest } = row;
    return {
      ...rest,
      lastError: lastError ? { ...lastError } : null,
      lease:
        holder !== null && expiresAt !== null
          ? {
              holder,
              token: token.toString(),
              expiresAt,
              host: holderProcess?.host ?? null,
              pid: holderProcess?.pid ?? null,
              startedAt,
            }
          : null,
      leaseToken: token.toString(),
      iceberg: iceberg ? { ...iceberg } : null,
    };
  };
  const isHeld = (row: Row, token: string) => row.holder !== null && row.token === BigInt(token);
  const release = (row: Row) => {
    row.holder = null;
    row.expiresAt = null;
    if (row.status === 'running') row.status = 'idle';
  };
  const addRun = (run: Omit<RunRecord, 'id' | 'recordedAt'>) => {
    runs.push({ ...run, id: (nextId++).toString(), recordedAt: now() });
  };
  const succeeded = (table: string, batchId: string) =>
    runs.some(
      (r) =>
        r.table === table &&
        r.batchId === batchId &&
        (r.outcome === 'committed' || r.outcome === 'reconciled'),
    );

  const { forgetFrom, ...hourly } = memoryHourlyMethods(clock, rowOf);
  return {
    ...hourly,

    async migrate() {},

    async now() {
      return now();
    },

    async ensureTables(tables) {
      const checked = tables.map((t) => ({
        table: checkTableName(t.table),
        cursor: toInstant(t.initialCursor, 'initialCursor'),
      }));
      const created: string[] = [];
      for (const { table, cursor } of checked) {
        if (rows.has(table)) continue;
        rows.set(table, {
          table,
          cursor,
          version: 0,
          status: 'idle',
          lastBatchId: null,
          lastMarkerBatchId: null,
          lastSuccessAt: null,
          lastCheckedAt: null,
          lastRows: null,
          lastDurationMs: null,
          consecutiveFailures: 0,
          lastError: null,
          token: 0n,
          holder: null,
          expiresAt: null,
          holderProcess: null,
          startedAt: null,
          iceberg: null,
        });
        created.push(table);
      }
      return { created };
    },

    async get(table) {
      return view(rowOf(table));
    },

    async list() {
      return [...rows.values()].sort((a, b) => (a.table < b.table ? -1 : 1)).map(view);
    },

    async acquireLease(table, holder, ttlSeconds) {
      const who = checkHolder(holder);
      const ttl = checkTtl(ttlSeconds);
      const row = rowOf(table);
      const at = clock();
      const free = row.holder === null || row.expiresAt === null || ms(row.expiresAt) <= at.getTime();
      if (!free && row.holder !== who)
        return { acquired: false, holder: row.holder!, expiresAt: row.expiresAt! };
      row.token += 1n;
      if (row.holder !== who || row.startedAt === null) row.startedAt = at.toISOString();
      row.holder = who;
      row.holderProcess = { ...me };
      row.expiresAt = expiryOf(at, ttl);
      row.status = 'running';
      return { acquired: true, token: row.token.toString(), expiresAt: row.expiresAt };
    },

    async extendLease(table, token, ttlSeconds) {
      const t = checkToken(token, 'token');
      const ttl = checkTtl(ttlSeconds);
      const row = rowOf(table);
      if (!isHeld(row, t)) return { extended: false, holder: row.holder, token: row.token.toString() };
      const until = expiryOf(clock(), ttl);
      if (row.expiresAt === null || ms(until) > ms(row.expiresAt)) row.expiresAt = until;
      return { extended: true, expiresAt: row.expiresAt ?? until };
    },

    async releaseLease(table, token) {
      const t = checkToken(token, 'token');
      const row = rowOf(table);
      if (!isHeld(row, t)) return { released: false };
      release(row);
      return { released: true };
    },

    async releaseOwnLeases() {
      const mine = [...rows.values()].filter(
        (r) => r.holder !== null && r.holderProcess?.host === me.host && r.holderProcess.pid === me.pid,
      );
      for (const row of mine) release(row);
      return { tables: mine.map((r) => r.table).sort() };
    },

    async forceRelease(input) {
      const f = normalizeForceRelease(input);
      const row = rowOf(f.table);
      const lease = view(row).lease;
      if (!lease) return { released: false, lease: null };
      row.token += 1n;
      release(row);
      audits.push({
        id: (nextId++).toString(),
        table: f.table,
        action: 'release',
        oldCursor: row.cursor,
        newCursor: row.cursor,
        backwards: false,
        actor: f.actor,
        reason: releaseReason(f.reason, lease),
        at: now(),
        skippedRows: null,
      });
      return { released: true, lease };
    },

    async bindCatalog(table, binding) {
      rowOf(table).iceberg = normalizeBinding(binding);
    },

    async advance(input) {
      const b = normalizeAdvance(input);
      const row = rowOf(b.table);
      if (isHeld(row, b.leaseToken) && row.cursor === b.windowStart) {
        const at = now();
        Object.assign(row, {
          cursor: b.windowEnd,
          version: row.version + 1,
          status: 'ok',
          lastBatchId: b.batchId,
          lastMarkerBatchId: b.rows > 0 ? b.batchId : row.lastMarkerBatchId,
          lastSuccessAt: at,
          lastCheckedAt: at,
          lastRows: b.rows,
          lastDurationMs: b.durationMs,
          consecutiveFailures: 0,
          lastError: null,
        });
        if (b.releaseLease) release(row);
        addRun({
          table: b.table,
          batchId: b.batchId,
          windowStart: b.windowStart,
          windowEnd: b.windowEnd,
          rows: b.rows,
          files: b.files,
          bytes: b.bytes,
          durationMs: b.durationMs,
          outcome: b.outcome,
          error: null,
          note: null,
          leaseToken: b.leaseToken,
        });
        return { result: 'advanced', version: row.version };
      }
      if ((row.cursor === b.windowEnd && row.lastBatchId === b.batchId) || succeeded(b.table, b.batchId))
        return { result: 'replayed', version: row.version };
      if (!isHeld(row, b.leaseToken))
        throw staleLease(b.table, b.leaseToken, row.token.toString(), row.holder);
      throw conflict(b.table, b, row.cursor);
    },

    async reconcile(input) {
      const r = normalizeReconcile(input);
      const row = rowOf(r.table);
      const previousCursor = row.cursor;
      if (ms(row.cursor) >= ms(r.windowEnd)) return { result: 'unchanged', previousCursor };
      if (!isHeld(row, r.leaseToken))
        throw staleLease(r.table, r.leaseToken, row.token.toString(), row.holder);
      const at = now();
      Object.assign(row, {
        cursor: r.windowEnd,
        version: row.version + 1,
        status: 'ok',
        lastBatchId: r.batchId,
        lastMarkerBatchId: r.batchId,
        lastSuccessAt: at,
        lastCheckedAt: at,
        lastRows: r.rows,
        lastDurationMs: null,
        consecutiveFailures: 0,
        lastError: null,
      });
      addRun({
        table: r.table,
        batchId: r.batchId,
        windowStart: previousCursor,
        windowEnd: r.windowEnd,
        rows: r.rows,
        files: null,
        bytes: null,
        durationMs: null,
        outcome: 'reconciled',
        error: null,
        note: r.note,
        leaseToken: r.leaseToken,
      });
      return { result: 'reconciled', previousCursor };
    },

    async recordFailure(input) {
      const f = normalizeFailure(input);
      const row = rowOf(f.table);
      addRun({
        table: f.table,
        batchId: f.batchId,
        windowStart: f.windowStart,
        windowEnd: f.windowEnd,
        rows: null,
        files: null,
        bytes: null,
        durationMs: f.durationMs,
        outcome: 'failed',
        error: f.error,
        note: null,
        leaseToken: f.leaseToken,
      });
      const counted = f.leaseToken === null || row.token === BigInt(f.leaseToken);
      if (counted) {
        row.consecutiveFailures += 1;
        row.status = 'failed';
        row.lastError = f.error;
        row.lastCheckedAt = now();
        if (row.holder !== null && f.leaseToken !== null) release(row);
      }
      return { counted, consecutiveFailures: row.consecutiveFailures };
    },

    async recordNoop(input) {
      const n = normalizeNoop(input);
      const row = rowOf(n.table);
      addRun({
        table: n.table,
        batchId: null,
        windowStart: null,
        windowEnd: null,
        rows: 0,
        files: null,
        bytes: null,
        durationMs: null,
        outcome: 'noop',
        error: null,
        note: n.reason,
        leaseToken: n.leaseToken,
      });
      if (row.token !== BigInt(n.leaseToken)) return { recorded: false };
      row.lastCheckedAt = now();
      row.status = row.consecutiveFailures > 0 ? 'failed' : 'ok';
      release(row);
      return { recorded: true };
    },

    async setCursor(input) {
      const s = normalizeSetCursor(input);
      const row = rowOf(s.table);
      const at = clock();
      if (row.holder !== null && row.expiresAt !== null && ms(row.expiresAt) > at.getTime())
        throw leaseHeld(s.table, row.holder, row.expiresAt);
      const previousCursor = row.cursor;
      if (ms(s.cursor) === ms(previousCursor))
        return { changed: false, previousCursor, version: row.version };
      const backwards = ms(s.cursor) < ms(previousCursor);
      if (backwards && !s.allowBackwards) throw backwardsRefused(s.table, previousCursor, s.cursor);
      if (backwards) forgetFrom(s.table, s.cursor);
      Object.assign(row, {
        cursor: s.cursor,
        version: row.version + 1,
        lastBatchId: s.lastBatchId,
        lastMarkerBatchId: s.lastBatchId,
        status: 'idle',
      });
      // A new token fences out any holder whose lease expired while it was still working.
      row.token += 1n;
      row.holder = null;
      row.expiresAt = null;
      audits.push({
        id: (nextId++).toString(),
        table: s.table,
        action: s.action,
        oldCursor: previousCursor,
        newCursor: s.cursor,
        backwards,
        actor: s.actor,
        reason: s.reason,
        at: at.toISOString(),
        skippedRows: backwards ? null : s.skippedRows,
      });
      return { changed: true, previousCursor, version: row.version };
    },

    async history(query = {}) {
      const q = normalizeHistoryQuery(query);
      if (q.table !== null) rowOf(q.table);
      return runs
        .filter(
          (r) =>
            (q.table === null || r.table === q.table) &&
            (q.since === null || ms(r.recordedAt) >= ms(q.since)),
        )
        .reverse()
        .slice(0, q.limit)
        .map((r) => ({ ...r, error: r.error ? { ...r.error } : null }));
    },

    async audit(query = {}) {
      const table = query.table === undefined ? null : checkTableName(query.table);
      const limit = normalizeLimit(query.limit);
      if (table !== null) rowOf(table);
      return audits
        .filter((a) => table === null || a.table === table)
        .reverse()
        .slice(0, limit)
        .map((a) => ({ ...a }));
    },
  };
}
