/** A clock tests move by hand, so lease expiry and timestamps are exact and instant. */
export type FakeClock = { now: () => Date; advance: (seconds: number) => void; iso: () => string };

export function fakeClock(start = '2026-11-22T03:00:00.000Z'): FakeClock {
  let t = Date.parse(start);
  return {
    now: () => new Date(t),
    advance: (seconds) => {
      t += seconds * 1000;
    },
    iso: () => new Date(t).toISOString(),
  };
}
