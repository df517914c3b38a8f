import { existsSync, statSync } from 'node:fs';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UnavailableError } from '../errors.ts';

/** The folder the embedded state lives in (`K2_HOME`), as git's `.git`: here or in a parent folder. */
export const HOME_NAME = '.k2';

/**
 * The nearest `.k2` folder from `cwd` upwards, so a command run from a subfolder (`docs/`) uses the
 * state of the checkout instead of silently starting an empty one. Undefined when there is none.
 */
export function findHome(cwd: string): string | undefined {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, HOME_NAME);
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export type HomeHolder = { pid: number; host: string; command: string; startedAt: string };

const LOCK = 'in-use.json';

/** A holder that is provably gone: on this host, and its process no longer exists. */
function isGone(holder: HomeHolder): boolean {
  if (holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

const describeHolder = (h: HomeHolder) =>
  `k2-offload ${h.command} (pid ${h.pid} on ${h.host}, since ${h.startedAt})`;

/**
 * The embedded engines (chDB, the embedded Postgres) serve one process at a time. The holder is written
 * to `<home>/in-use.json`, created exclusively; a holder whose process is gone is taken over. With `wait`
 * (read-only commands) the caller is told once and waits; otherwise it is refused, naming the holder.
 */
export async function lockHome(
  home: string,
  command: string,
  options: { wait: boolean; onWait?: (message: string) => void; pollMs?: number; now?: () => Date },
): Promise<() => Promise<void>> {
  const path = join(home, LOCK);
  const me: HomeHolder = {
    pid: process.pid,
    host: hostname(),
    command,
    startedAt: (options.now ?? (() => new Date()))().toISOString(),
  };
  let told = false;
  for (;;) {
    try {
      // Written whole, then linked into place: link() fails if the lock exists, and a reader never
      // sees a half-written holder.
      const draft = `${path}.${process.pid}`;
      await writeFile(draft, JSON.stringify(me));
      try {
        await link(draft, path);
      } finally {
        await unlink(draft).catch(() => undefined);
      }
      return async () => {
        const current = await readHolder(path);
        if (current?.pid === me.pid && current.host === me.host) await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readHolder(path);
    if (!holder) continue;
    // This process holds it already (the demo locks before resetting, then opens): nothing to add.
    if (holder.pid === me.pid && holder.host === me.host) return async () => {};
    if (isGone(holder)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    const message = `the embedded ClickHouse and Postgres in ${home} are in use by ${describeHolder(holder)}; embedded mode runs one command at a time`;
    if (!options.wait)
      throw new UnavailableError(
        `${message}: wait for it to finish (read-only commands such as status wait by themselves), or set CLICKHOUSE_URL and DATABASE_URL to servers`,
        { home, holder },
      );
    if (!told) options.onWait?.(`${message}; waiting for it to finish (Ctrl-C to give up)...`);
    told = true;
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}

async function readHolder(path: string): Promise<HomeHolder | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as HomeHolder;
  } catch {
    // Removed since: the next round takes it.
    return undefined;
  }
}
