import { describe, expect, it } from 'vitest';
import { formatTable, progressBar, wrapText } from '../../src/cli/output.ts';

const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

describe('tables and progress for a terminal', () => {
  const headers = ['table', 'status', 'last error'];
  const rows = [
    ['bronze_trades_binance', 'failed', `UnavailableError: ${'Postgres is down; '.repeat(12)}retry later`],
    ['silver_trades', 'ok', null],
  ];

  it('fits a table into the width given, clipping the widest column with an ellipsis', () => {
    const text = formatTable(headers, rows, 80);
    expect(widest(text)).toBeLessThanOrEqual(80);
    expect(text).toContain('bronze_trades_binance  failed');
    expect(text).toMatch(/UnavailableError: Postgres is down.*…$/m);
    // Without a width (--wide, or output to a file) every cell is whole.
    expect(formatTable(headers, rows)).toContain('retry later');
  });

  it('keeps a multi-line error on its row', () => {
    const text = formatTable(headers, [['t', 'failed', 'first line\n  second line']]);
    expect(text.split('\n')).toHaveLength(3);
    expect(text).toContain('first line / second line');
  });

  it('wraps a long line at spaces, giving a word longer than the line (a path) a line of its own', () => {
    const path = `file:///tmp/${'x'.repeat(60)}/metadata.json`;
    const text = wrapText(`  t: the catalog points at ${path}, which is elsewhere; point it back`, 40);
    expect(text.split('\n')).toEqual([
      '  t: the catalog points at',
      `    ${path},`,
      '    which is elsewhere; point it back',
    ]);
  });

  it('redraws a bar no wider than the terminal, with rows, rows/s and the time left', () => {
    const written: string[] = [];
    const stream = {
      isTTY: true,
      columns: 80,
      write: (s: string) => written.push(s),
    } as unknown as NodeJS.WriteStream;
    let now = 0;
    const bar = progressBar(stream, 'bronze_trades_binance', () => now);
    now = 10_000;
    bar.update(25, 100, { rows: 2_000_000, note: '2026-12-01T00:00:00.000Z' });
    const line = (written.at(-1) as string).slice(1);
    expect(line.length).toBeLessThan(80);
    expect(line).toContain('25% 2.0M rows 200k rows/s ETA 30s');
    now = 20_000;
    bar.update(100, 100, { rows: 8_000_000 });
    expect((written.at(-1) as string).slice(1).length).toBeLessThan(80);
  });
});
