import { joinUri, type ObjectStore, parseS3Uri } from '../iceberg/object-store.ts';
import { PLAN_PREFIX } from '../orchestration/asl.ts';
import type { PipelineDeps } from './deps.ts';
import type { CycleHandoff, CyclePlan, PlanRef, TablePlan } from './events.ts';
import { planCycle } from './plan-cycle.ts';

/** The `Bucket` of a reference to a plan outside S3 (a local warehouse): its `Key` is then the URI. */
export const LOCAL_PLAN_BUCKET = 'local';
/** Skip details travel in state for every table: long ones (error messages) are cut to this. */
export const SKIP_DETAIL_CHARS = 200;

/** The folder of one cycle's plan objects. */
export function cyclePlanPrefix(warehouse: string, cycleId: string): string {
  const root = warehouse.startsWith('s3://') ? `s3://${parseS3Uri(warehouse).bucket}` : warehouse;
  return `${joinUri(root, PLAN_PREFIX, cycleId)}/`;
}

function refOf(uri: string): PlanRef {
  if (!uri.startsWith('s3://')) return { Bucket: LOCAL_PLAN_BUCKET, Key: uri };
  const { bucket, key } = parseS3Uri(uri);
  return { Bucket: bucket, Key: key };
}

function uriOf(ref: PlanRef): string {
  return ref.Bucket === LOCAL_PLAN_BUCKET ? ref.Key : `s3://${ref.Bucket}/${ref.Key}`;
}

/**
 * Keeps the plan out of Step Functions state: each table's batch specs (a JSON array) are written as one
 * object, keyed by cycle, table and lease token (a retried PlanCycle holds new leases, so it never
 * overwrites an object an iteration may read), and the state carries only references.
 */
export async function handOffPlan(
  deps: { store: ObjectStore; warehouse: string },
  plan: CyclePlan,
): Promise<CycleHandoff> {
  const prefix = cyclePlanPrefix(deps.warehouse, plan.cycleId);
  const layers = await Promise.all(
    plan.layers.map(async ({ layer, tables }) => ({
      layer,
      tables: await Promise.all(
        tables.map(async (t: TablePlan) => {
          const uri = `${prefix}${t.table}-${t.leaseToken}.json`;
          await deps.store.put(uri, new TextEncoder().encode(JSON.stringify(t.batches)));
          return {
            table: t.table,
            layer: t.layer,
            leaseToken: t.leaseToken,
            batchCount: t.batches.length,
            plan: refOf(uri),
          };
        }),
      ),
    })),
  );
  const skipped = plan.skipped.map((s) =>
    s.detail.length > SKIP_DETAIL_CHARS
      ? { ...s, detail: `${s.detail.slice(0, SKIP_DETAIL_CHARS - 1)}…` }
      : s,
  );
  return { ...plan, layers, skipped };
}

/** The PlanCycle step as the state machine runs it (Lambda and local runner): plan, then hand off. */
export async function planCycleStep(deps: PipelineDeps, raw: unknown): Promise<CycleHandoff> {
  return handOffPlan(deps, await planCycle(deps, raw));
}

/** The state machine's LoadTablePlan task where S3 is not the warehouse: GetObject's `{Body}` shape. */
export async function readPlanObject(store: ObjectStore, ref: PlanRef): Promise<{ Body: string }> {
  return { Body: new TextDecoder().decode(await store.get(uriOf(ref))) };
}

/** Removes one cycle's plan objects (locally; on S3 the staging lifecycle rule expires them). */
export async function removeCyclePlans(
  store: ObjectStore,
  warehouse: string,
  cycleId: string,
): Promise<void> {
  const uris: string[] = [];
  for await (const o of store.list(cyclePlanPrefix(warehouse, cycleId))) uris.push(o.uri);
  await Promise.all(uris.map((uri) => store.delete(uri)));
}
