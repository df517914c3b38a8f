import { hostname } from 'node:os';
import { loadConfig, tableByName } from '../../config/load.ts';
import { InputError, LeaseError } from '../../errors.ts';
import { defaultTableLocation } from '../../iceberg/new-table.ts';
import { loadTable, newestMarker } from '../../iceberg/table.ts';
import { sourceNow } from '../../pipeline/deps.ts';
import { firstOffloadStart } from '../../pipeline/first-offload.ts';
import { describeHolder } from '../../pipeline/health.ts';
import { catalogLabel } from '../../pipeline/history.ts';
import { targetOf } from '../../pipeline/plan-cycle.ts';
import type { Lease } from '../../watermark/types.ts';
import { type Parsed, requireOpt } from '../args.ts';
import { actorOf, type Context, withRuntime } from '../context.ts';

const reasonOf = (args: Parsed, command: string) =>
  requireOpt(args, command, 'reason', 'why, for the audit trail');

/**
 * `watermark rewind`: moves the watermark back to the newest batch Iceberg holds, after the catalog
 * moved back (a restore, a rollback) or to start over in a new catalog. The rows between are offloaded
 * again, once: Iceberg does not hold them. Audited; refused while a cycle holds the lease, and when
 * Iceberg is not behind (nothing would be re-offloaded that Iceberg lacks).
 */
export async function rewindWatermark(args: Parsed, ctx: Context): Promise<number> {
  const name = requireOpt(args, 'watermark rewind', 'table', 'the table whose watermark moves back');
  const reason = reasonOf(args, 'watermark rewind');
  const actor = actorOf(args, ctx.io.env);
  const table = tableByName(await loadConfig(ctx.configPath), name);
  const done = await withRuntime(ctx, async (rt) => {
    await rt.watermarks.ensureTables([{ table: table.name, initialCursor: table.initialCursor }]);
    const w = await rt.watermarks.get(name);
    const ident = targetOf(table);
    const exists = (await rt.catalog.currentMetadataLocation(ident)) !== undefined;
    const marker = exists ? newestMarker((await loadTable(rt, ident)).metadata) : undefined;
    // No marker at all: back to where a first offload starts (the oldest row ClickHouse still has).
    const start = marker
      ? undefined
      : await firstOffloadStart(rt, table, undefined, (await sourceNow(rt)).getTime());
    const to = marker?.windowEnd ?? start?.cursor ?? new Date(table.initialCursor).toISOString();
    if (Date.parse(to) >= Date.parse(w.cursor))
      throw new InputError(
        `watermark rewind of ${name} refused: Iceberg is not behind, its newest batch ends at ${to} and the watermark is at ${w.cursor}; nothing was changed (moving back below what Iceberg holds is a reset)`,
        { table: name, to, cursor: w.cursor },
      );
    const result = await rt.watermarks.setCursor({
      table: name,
      cursor: to,
      actor,
      reason,
      allowBackwards: true,
      action: 'rewind',
      lastBatchId: marker?.batchId ?? null,
    });
    const location = defaultTableLocation(rt.warehouse, ident);
    await rt.watermarks.bindCatalog(name, { catalog: catalogLabel(rt.catalog), location });
    return {
      table: name,
      action: 'rewind' as const,
      previousCursor: result.previousCursor,
      cursor: to,
      icebergBatchId: marker?.batchId ?? null,
      actor,
      reason,
    };
  });
  ctx.emit(done);
  ctx.say(
    `${name}: watermark rewound ${done.previousCursor} -> ${done.cursor} (${done.icebergBatchId ? `Iceberg's newest batch ${done.icebergBatchId}` : 'Iceberg holds no batch'}; by ${actor}: ${reason}). The next cycle offloads [${done.cursor}, ${done.previousCursor}) again.`,
  );
  return 0;
}

/** Whether the lease's holder is a live process on this very host (then releasing it would be wrong). */
export function holderAlive(lease: Lease, host = hostname()): boolean {
  if (lease.host !== host || lease.pid === null) return false;
  try {
    process.kill(lease.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `watermark release`: frees a lease whose holder died (a killed run, a lost host), audited, with a new
 * token that fences the holder out should it come back. Refused while the holder provably runs here.
 */
export async function releaseWatermarkLease(args: Parsed, ctx: Context): Promise<number> {
  const name = requireOpt(args, 'watermark release', 'table', 'the table whose lease is released');
  const reason = reasonOf(args, 'watermark release');
  const actor = actorOf(args, ctx.io.env);
  const table = tableByName(await loadConfig(ctx.configPath), name);
  const done = await withRuntime(ctx, async (rt) => {
    const { lease } = await rt.watermarks.get(table.name);
    if (lease && holderAlive(lease))
      throw new LeaseError(
        `watermark release of ${name} refused: its holder ${describeHolder(lease)} is alive on this host; stop it (kill -INT ${lease.pid}: it releases its leases as it exits) or let it finish`,
        { table: name, holder: lease.holder, pid: lease.pid },
      );
    const result = await rt.watermarks.forceRelease({ table: name, actor, reason });
    return { table: name, action: 'release' as const, ...result, actor, reason };
  });
  ctx.emit(done);
  ctx.say(
    done.lease
      ? `${name}: released the lease of ${describeHolder(done.lease)} (token ${done.lease.token}, expiring ${done.lease.expiresAt}; by ${actor}: ${reason})`
      : `${name}: no lease is held; nothing to release`,
  );
  return 0;
}
