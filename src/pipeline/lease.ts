import { LeaseError } from '../errors.ts';
import type { WatermarkStore } from '../watermark/store.ts';

/**
 * Fencing before a write that the watermark store cannot refuse by itself (an Iceberg commit): the
 * caller's token must still be the table's current, unreleased lease.
 */
export async function assertLeaseHeld(
  watermarks: WatermarkStore,
  table: string,
  token: string,
): Promise<void> {
  // A table without a watermark (a database restored from before it was added) is refused by get().
  const w = await watermarks.get(table);
  if (w.leaseToken !== token || w.lease?.token !== token)
    throw new LeaseError(
      `lease ${token} on ${table} is no longer held (current token ${w.leaseToken}, ${w.lease ? `held by ${w.lease.holder}` : 'released'}); another cycle took over, this batch stops here`,
      { table, token, currentToken: w.leaseToken },
    );
}
