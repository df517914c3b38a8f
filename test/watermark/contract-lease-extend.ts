import { beforeEach, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import type { WatermarkStore } from '../../src/watermark/types.ts';
import { type ContractContext, T0, T1 } from './contract.ts';
import type { FakeClock } from './fake-clock.ts';

/** Contract cases: the heartbeat of a long job extends its lease, and only its own. */
export function leaseExtensionCases(ctx: ContractContext) {
  const { lease, batchInput } = ctx;
  let store: WatermarkStore;
  let clock: FakeClock;
  beforeEach(() => {
    ({ store, clock } = ctx.current());
  });

  it('extends a held lease so that nobody takes the table while its job runs', async () => {
    const token = await lease('cycle-a', 60);
    clock.advance(50);
    expect(await store.extendLease('trades', token, 60)).toEqual({
      extended: true,
      expiresAt: '2026-11-22T03:01:50.000Z',
    });
    clock.advance(50); // past the first expiry, inside the extended one
    expect(await store.acquireLease('trades', 'cycle-b', 60)).toMatchObject({
      acquired: false,
      holder: 'cycle-a',
    });
    expect((await store.get('trades')).lease).toMatchObject({
      holder: 'cycle-a',
      token,
      expiresAt: '2026-11-22T03:01:50.000Z',
    });
  });

  it('never shortens a lease', async () => {
    const token = await lease('cycle-a', 600);
    expect(await store.extendLease('trades', token, 60)).toEqual({
      extended: true,
      expiresAt: '2026-11-22T03:10:00.000Z',
    });
  });

  it('extends nothing for a stale or released token, and says who holds the table', async () => {
    const old = await lease('cycle-a', 60);
    clock.advance(61);
    const taken = await lease('cycle-b', 60);
    expect(await store.extendLease('trades', old, 600)).toEqual({
      extended: false,
      holder: 'cycle-b',
      token: taken,
    });
    expect((await store.get('trades')).lease?.expiresAt).toBe('2026-11-22T03:02:01.000Z');
    await store.releaseLease('trades', taken);
    expect(await store.extendLease('trades', taken, 600)).toEqual({
      extended: false,
      holder: null,
      token: taken,
    });
    expect((await store.get('trades')).lease).toBeNull();
  });

  it('keeps the fencing at the watermark commit: a holder whose lease was taken over cannot advance', async () => {
    const old = await lease('cycle-a', 60);
    clock.advance(61);
    await lease('cycle-b', 60);
    await store.extendLease('trades', old, 600);
    await expect(store.advance(batchInput(T0, T1, old))).rejects.toMatchObject({ name: 'LeaseError' });
    expect((await store.get('trades')).cursor).toBe(T0);
  });

  it('refuses a malformed token, ttl or table by name', async () => {
    const token = await lease();
    const malformed = store.extendLease('trades', 'abc', 60);
    await expect(malformed).rejects.toThrow(InputError);
    await expect(malformed).rejects.toThrow(/^token "abc" is not a lease token/);
    await expect(store.releaseLease('trades', 'abc')).rejects.toThrow(/^token "abc" is not a lease token/);
    expect((await store.get('trades')).lease?.token).toBe(token);
    await expect(store.extendLease('trades', token, 0)).rejects.toThrow(InputError);
    await expect(store.extendLease('nope', token, 60)).rejects.toThrow(InputError);
  });
}
