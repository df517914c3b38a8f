import { staleLease } from '../watermark/rules.ts';
import type { PipelineDeps } from './deps.ts';
import { heartbeatSchema } from './events.ts';
import { parseEvent } from './parse.ts';

/**
 * ExtendLease, the heartbeat while a table's Spark job runs: the lease lives another `leaseSeconds`
 * from now, as long as this cycle still holds it. A lease another cycle took over is a LeaseError:
 * the table's pass stops here (its watermark step would be fenced out anyway), and the job, if it
 * commits, commits its batch once, which the next plan reconciles.
 */
export async function extendLease(deps: PipelineDeps, raw: unknown): Promise<{ expiresAt: string }> {
  const beat = parseEvent(heartbeatSchema, raw, 'ExtendLease input');
  const result = await deps.watermarks.extendLease(beat.table, beat.leaseToken, deps.leaseSeconds);
  if (!result.extended) throw staleLease(beat.table, beat.leaseToken, result.token, result.holder);
  deps.log({ event: 'lease-extended', table: beat.table, token: beat.leaseToken, until: result.expiresAt });
  return { expiresAt: result.expiresAt };
}
