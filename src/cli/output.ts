/** Rendering for people (aligned text tables, a progress bar) and for scripts (`--json`). */

export type Cell = string | number | boolean | null | undefined;

export function formatTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) =>
    row.map((cell) => (cell === null || cell === undefined ? '-' : String(cell))),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n');
}

/** A one-line progress bar redrawn in place on a terminal; silent when output is not a TTY. */
export function progressBar(stream: NodeJS.WriteStream, label: string) {
  const draw = (done: number, total: number, note = '') => {
    if (!stream.isTTY) return;
    const width = 30;
    const ratio = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(ratio * width);
    stream.write(
      `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(ratio * 100)}% ${note}`.padEnd(
        100,
      ),
    );
  };
  return {
    update: draw,
    done: () => {
      if (stream.isTTY) stream.write('\n');
    },
  };
}

export function minutesAgo(iso: string | null | undefined, now: Date): number | null {
  if (!iso) return null;
  return Math.round(((now.getTime() - Date.parse(iso)) / 60_000) * 10) / 10;
}

export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** JSON with bigint as decimal strings (snapshot ids). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2);
}
