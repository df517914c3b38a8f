/** Rendering for people (aligned text tables, a progress bar) and for scripts (`--json`). */

import { shorten } from '../errors.ts';

export type Cell = string | number | boolean | null | undefined;

/**
 * How wide tables may be: the terminal's width on a terminal (`COLUMNS` when piped), none with `--wide`.
 * Set once per command by the CLI, read by every table it prints.
 */
let outputWidth: number | undefined;

export function setOutputWidth(width: number | undefined): void {
  outputWidth = width !== undefined && Number.isFinite(width) && width >= 20 ? Math.floor(width) : undefined;
}

/** The width a command's output should fit: the terminal's columns, else `COLUMNS`, else none. */
export function terminalWidth(stream: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv) {
  if (stream.isTTY && stream.columns) return stream.columns;
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns > 0 ? columns : undefined;
}

const GAP = 2;
/** A long text column (a note, an error) is clipped to this first, before any column is hidden. */
const TEXT_COLUMN = 24;

/** Text on one line: a multi-line error must not break a table's rows or a list's lines. */
export const singleLine = (text: string) => text.replace(/\s*\n\s*/g, ' / ');

const oneLine = (cell: Cell) => (cell === null || cell === undefined ? '-' : singleLine(String(cell)));

const clip = shorten;

const totalWidth = (widths: number[]) => widths.reduce((a, w) => a + w, 0) + GAP * (widths.length - 1);

/**
 * Which columns to show, how wide, to fit `maxWidth`: long text columns are clipped first (to
 * TEXT_COLUMN), then columns are hidden from the right, the first (the row's name) never; the last
 * shown is clipped if still needed. Without a width everything is whole.
 */
function fitColumns(headers: string[], natural: number[], maxWidth: number | undefined) {
  const widths = [...natural];
  const shown = headers.map((_, i) => i);
  if (maxWidth === undefined) return { shown, widths };
  const current = () => totalWidth(shown.map((i) => widths[i] as number));
  for (const i of [...shown].sort((a, b) => (natural[b] as number) - (natural[a] as number))) {
    if (current() <= maxWidth) break;
    const floor = Math.max(TEXT_COLUMN, (headers[i] as string).length);
    widths[i] = Math.max(
      Math.min(widths[i] as number, floor),
      (widths[i] as number) - (current() - maxWidth),
    );
  }
  while (current() > maxWidth && shown.length > 2) shown.pop();
  const last = shown.at(-1) as number;
  if (current() > maxWidth) widths[last] = Math.max(4, (widths[last] as number) - (current() - maxWidth));
  return { shown, widths };
}

export function formatTable(headers: string[], rows: Cell[][], maxWidth = outputWidth): string {
  const text = rows.map((row) => headers.map((_, i) => oneLine(row[i])));
  const natural = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const { shown, widths } = fitColumns(headers, natural, maxWidth);
  const line = (cells: string[]) =>
    shown
      .map((i) => clip(cells[i] ?? '', widths[i] as number).padEnd(widths[i] as number))
      .join(' '.repeat(GAP))
      .trimEnd();
  const hidden = headers.filter((_, i) => !shown.includes(i));
  return [
    line(headers),
    line(widths.map((w) => '-'.repeat(w))),
    ...text.map(line),
    ...(hidden.length > 0 ? [`(not shown: ${hidden.join(', ')}; --wide shows every column)`] : []),
  ].join('\n');
}

/**
 * Text wrapped at spaces to `width`, each continuation indented like its line plus two spaces, so a
 * long problem line stays readable on a narrow terminal. A word longer than the line (a path, a URL)
 * gets a line of its own, whole.
 */
export function wrapText(text: string, width = outputWidth): string {
  if (width === undefined) return text;
  return text
    .split('\n')
    .map((line) => {
      if (line.length <= width) return line;
      const indent = `${/^\s*/.exec(line)?.[0] ?? ''}  `;
      const out: string[] = [];
      let rest = line;
      while (rest.length > width) {
        let cut = rest.lastIndexOf(' ', width);
        if (cut <= indent.length) cut = rest.indexOf(' ', indent.length);
        if (cut < 0) break;
        out.push(rest.slice(0, cut).trimEnd());
        rest = indent + rest.slice(cut + 1).trimStart();
      }
      out.push(rest);
      return out.join('\n');
    })
    .join('\n');
}

/** `1m05s`, `2h03m`: how long until done, on a progress line. */
function eta(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const compact = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : String(Math.round(n));

/**
 * A one-line progress bar redrawn in place on a terminal, no wider than the terminal: percent, rows,
 * rows/s and time left. Silent when output is not a TTY. `now` is the wall clock (display only).
 */
export function progressBar(stream: NodeJS.WriteStream, label: string, now: () => number = Date.now) {
  const started = now();
  let drawn = 0;
  const draw = (done: number, total: number, progress: { rows?: number; note?: string } = {}) => {
    if (!stream.isTTY) return;
    const columns = Math.max(40, (stream.columns || 80) - 1);
    const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
    const elapsed = now() - started;
    const rows = progress.rows ?? 0;
    const facts = [
      `${Math.round(ratio * 100)}%`,
      ...(rows > 0 ? [`${compact(rows)} rows`] : []),
      ...(rows > 0 && elapsed > 0 ? [`${compact((rows * 1000) / elapsed)} rows/s`] : []),
      ...(ratio > 0 && ratio < 1 && elapsed > 0 ? [`ETA ${eta((elapsed * (1 - ratio)) / ratio)}`] : []),
      ...(progress.note ? [progress.note] : []),
    ].join(' ');
    const barWidth = Math.max(10, Math.min(30, columns - label.length - facts.length - 4));
    const filled = Math.round(ratio * barWidth);
    const text = clip(`${label} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${facts}`, columns);
    // Blank out what a longer earlier line left, never past the terminal's edge (that would wrap).
    stream.write(`\r${text}${' '.repeat(Math.max(0, drawn - text.length))}`);
    drawn = text.length;
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
