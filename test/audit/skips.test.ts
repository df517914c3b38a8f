import { describe, expect, it } from 'vitest';
import { auditedSkips, skipsWithin, splitBySkips } from '../../src/audit/skips.ts';
import type { AuditRecord } from '../../src/watermark/types.ts';

let id = 0;
const record = (oldCursor: string, newCursor: string, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  id: String(++id),
  table: 't',
  action: 'cursor',
  oldCursor,
  newCursor,
  backwards: newCursor < oldCursor,
  actor: 'alice',
  reason: 'INC-1',
  at: '2026-01-02T00:00:00.000Z',
  skippedRows: newCursor > oldCursor ? 10 : null,
  ...extra,
});
const T = (hh: string) => `2026-01-01T${hh}:00:00.000Z`;

describe('audited skips: ranges the watermark was moved past by hand', () => {
  it('a forward set is a skip; a later reset cuts it where the re-offload starts', () => {
    const set = record(T('01'), T('05'));
    const reset = record(T('05'), T('03'), { actor: 'bob', action: 'cursor' });
    // The store lists its trail newest first.
    expect(auditedSkips([set])).toEqual([
      { from: T('01'), to: T('05'), actor: 'alice', at: set.at, reason: 'INC-1' },
    ]);
    expect(auditedSkips([reset, set]).map((s) => [s.from, s.to])).toEqual([[T('01'), T('03')]]);
    // Rewound below the skip's start: nothing of it stays skipped.
    const rewind = record(T('03'), T('00'), { action: 'rewind' });
    expect(auditedSkips([rewind, reset, set])).toEqual([]);
    // A lease release moves nothing; a set that left no rows out (the first offload's start) skips nothing.
    expect(auditedSkips([record(T('05'), T('05'), { action: 'release' })])).toEqual([]);
    expect(auditedSkips([record(T('00'), T('01'), { actor: 'k2-offload', skippedRows: null })])).toEqual([]);
  });

  it('splits a range where skips begin and end, each part naming its skip', () => {
    const [skip] = auditedSkips([record(T('02'), T('04'))]);
    const parts = splitBySkips(Date.parse(T('01')), Date.parse(T('03')), skip ? [skip] : []);
    expect(parts).toEqual([
      { since: T('01'), until: T('02'), skip: null },
      { since: T('02'), until: T('03'), skip },
    ]);
    expect(splitBySkips(Date.parse(T('05')), Date.parse(T('06')), skip ? [skip] : [])).toEqual([
      { since: T('05'), until: T('06'), skip: null },
    ]);
  });
  it('reads the trail oldest first whatever order it is given in', () => {
    const set = record(T('01'), T('05'));
    const reset = record(T('05'), T('03'), { action: 'cursor' });
    const again = record(T('03'), T('06'));
    // Oldest first: skip [01, 05), cut at 03 by the reset, then [03, 06) skipped again.
    const want = [
      [T('01'), T('03')],
      [T('03'), T('06')],
    ];
    for (const trail of [
      [again, reset, set],
      [set, again, reset],
      [reset, set, again],
    ])
      expect(auditedSkips(trail).map((s) => [s.from, s.to])).toEqual(want);
  });

  it('a move back leaves skips below it whole and drops one starting exactly where it lands', () => {
    const early = record(T('01'), T('02'));
    const later = record(T('04'), T('06'));
    const back = record(T('06'), T('04'), { action: 'rewind' });
    // The rewind to 04 re-offloads [04, ...): the skip starting at 04 is gone, the one ending at 02 stays.
    expect(auditedSkips([back, later, early]).map((s) => [s.from, s.to])).toEqual([[T('01'), T('02')]]);
  });

  it('a record that moves nothing changes no skip', () => {
    const set = record(T('01'), T('05'));
    const still = record(T('03'), T('03'), { skippedRows: 0 });
    expect(auditedSkips([still, set]).map((s) => [s.from, s.to])).toEqual([[T('01'), T('05')]]);
  });

  it("a part ending exactly at a skip's end lies in that skip", () => {
    const [skip] = auditedSkips([record(T('02'), T('04'))]);
    expect(splitBySkips(Date.parse(T('01')), Date.parse(T('04')), skip ? [skip] : [])).toEqual([
      { since: T('01'), until: T('02'), skip: null },
      { since: T('02'), until: T('04'), skip },
    ]);
  });

  it('an audit lists the skips sharing some of its range, not those ending at its start or starting at its end', () => {
    const skips = auditedSkips([
      record(T('00'), T('02')),
      record(T('02'), T('03')),
      record(T('05'), T('06')),
      record(T('06'), T('08')),
    ]);
    const within = (from: string, to: string) =>
      skipsWithin(skips, Date.parse(from), Date.parse(to)).map((s) => [s.from, s.to]);
    expect(within(T('02'), T('06'))).toEqual([
      [T('02'), T('03')],
      [T('05'), T('06')],
    ]);
    expect(within('2026-01-01T01:59:59.999Z', '2026-01-01T06:00:00.001Z')).toEqual([
      [T('00'), T('02')],
      [T('02'), T('03')],
      [T('05'), T('06')],
      [T('06'), T('08')],
    ]);
    expect(within(T('03'), T('05'))).toEqual([]);
  });
});
