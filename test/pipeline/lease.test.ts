import { describe, expect, it } from 'vitest';
import { LeaseError } from '../../src/errors.ts';
import { assertLeaseHeld } from '../../src/pipeline/lease.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import { fakeClock } from '../watermark/fake-clock.ts';

const TABLE = 'bronze_trades_binance';

/**
 * The fence before an Iceberg commit, and what it tells the person reading a failed execution: whose
 * token is current and whether anyone holds the table now (taken over, or given back).
 */
describe('lease fence before a commit', () => {
  const setup = async () => {
    const clock = fakeClock();
    const watermarks = createMemoryWatermarkStore({ clock: clock.now });
    await watermarks.ensureTables([{ table: TABLE, initialCursor: '2026-11-22T00:00:00Z' }]);
    const first = await watermarks.acquireLease(TABLE, 'cycle-a', 900);
    if (!first.acquired) throw new Error('expected the lease');
    return { clock, watermarks, token: first.token };
  };
  const refusal = (p: Promise<void>) =>
    p.then(
      () => undefined,
      (e: unknown) => e as LeaseError,
    );

  it('lets the current holder through', async () => {
    const { watermarks, token } = await setup();
    await expect(assertLeaseHeld(watermarks, TABLE, token)).resolves.toBeUndefined();
  });

  it('refuses a holder whose lease another cycle took over, naming the new token and holder', async () => {
    const { clock, watermarks, token } = await setup();
    clock.advance(901);
    const next = await watermarks.acquireLease(TABLE, 'cycle-b', 900);
    if (!next.acquired) throw new Error('expected the takeover');
    const error = await refusal(assertLeaseHeld(watermarks, TABLE, token));
    expect(error).toBeInstanceOf(LeaseError);
    expect(error?.message).toBe(
      `lease ${token} on ${TABLE} is no longer held (current token ${next.token}, held by cycle-b); another cycle took over, this batch stops here`,
    );
    expect(error?.details).toEqual({ table: TABLE, token, currentToken: next.token });
  });

  it('refuses a holder that gave its lease back, saying it was released', async () => {
    const { watermarks, token } = await setup();
    await watermarks.releaseLease(TABLE, token);
    const error = await refusal(assertLeaseHeld(watermarks, TABLE, token));
    expect(error).toBeInstanceOf(LeaseError);
    expect(error?.message).toBe(
      `lease ${token} on ${TABLE} is no longer held (current token ${token}, released); another cycle took over, this batch stops here`,
    );
    expect(error?.details).toEqual({ table: TABLE, token, currentToken: token });
  });

  it('refuses when the table has no watermark at all (a database restored from before the table was added)', async () => {
    const { token } = await setup();
    const restored = createMemoryWatermarkStore({ clock: fakeClock().now });
    await expect(assertLeaseHeld(restored, TABLE, token)).rejects.toThrow(
      `no watermark for table "${TABLE}"`,
    );
  });
});
