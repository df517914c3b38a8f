import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ConfigError } from '../errors.ts';
import { checkSchemaName, DEFAULT_SCHEMA } from './rules.ts';

/**
 * Versioned schema migrations of the watermark store. Append only: a released migration is never edited,
 * a change is a new version. `sql` receives the quoted schema name.
 */
export type Migration = { version: number; name: string; sql: (schema: string) => string };

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'watermarks, run history, audit',
    sql: (s) => `
      CREATE TABLE ${s}.watermarks (
        table_name text PRIMARY KEY,
        cursor timestamptz NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        status text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'running', 'ok', 'failed')),
        last_batch_id text,
        last_success_at timestamptz,
        last_checked_at timestamptz,
        last_rows bigint,
        last_duration_ms bigint,
        consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
        last_error_name text,
        last_error_message text,
        lease_holder text,
        lease_token bigint NOT NULL DEFAULT 0,
        lease_expires_at timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        CHECK ((lease_holder IS NULL) = (lease_expires_at IS NULL))
      );

      CREATE TABLE ${s}.watermark_runs (
        id bigserial PRIMARY KEY,
        table_name text NOT NULL REFERENCES ${s}.watermarks (table_name),
        batch_id text,
        window_start timestamptz,
        window_end timestamptz,
        rows bigint,
        files integer,
        bytes bigint,
        duration_ms bigint,
        outcome text NOT NULL CHECK (outcome IN ('committed', 'reconciled', 'failed', 'noop')),
        error_name text,
        error_message text,
        note text,
        lease_token bigint,
        recorded_at timestamptz NOT NULL
      );
      CREATE INDEX watermark_runs_table_id ON ${s}.watermark_runs (table_name, id DESC);
      CREATE INDEX watermark_runs_batch ON ${s}.watermark_runs (table_name, batch_id)
        WHERE outcome IN ('committed', 'reconciled');
      CREATE INDEX watermark_runs_recorded_at ON ${s}.watermark_runs (recorded_at);

      CREATE TABLE ${s}.watermark_audit (
        id bigserial PRIMARY KEY,
        table_name text NOT NULL REFERENCES ${s}.watermarks (table_name),
        old_cursor timestamptz NOT NULL,
        new_cursor timestamptz NOT NULL,
        backwards boolean NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL,
        at timestamptz NOT NULL
      );
      CREATE INDEX watermark_audit_table_id ON ${s}.watermark_audit (table_name, id DESC);
    `,
  },
  {
    version: 2,
    name: 'forward-only cursor, append-only history and audit',
    // Defence in depth: also stops a hand-written UPDATE (the old runbooks had such recipes). The store's
    // reset sets the transaction-local flag and writes the audit row in the same transaction.
    sql: (s) => `
      CREATE FUNCTION ${s}.refuse_backwards_cursor() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NEW.cursor < OLD.cursor AND coalesce(current_setting('k2_offload.allow_backwards', true), '') <> 'on' THEN
          RAISE EXCEPTION 'watermark of % cannot move backwards from % to % outside an audited reset',
            OLD.table_name, OLD.cursor, NEW.cursor
            USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
      END
      $fn$;
      CREATE TRIGGER watermarks_forward_only BEFORE UPDATE OF cursor ON ${s}.watermarks
        FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_backwards_cursor();
      CREATE FUNCTION ${s}.refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        RAISE EXCEPTION '% is append-only: rows are never changed or deleted', TG_TABLE_NAME
          USING ERRCODE = 'check_violation';
      END
      $fn$;
      CREATE TRIGGER watermark_runs_append_only BEFORE UPDATE ON ${s}.watermark_runs
        FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_rewrite();
      CREATE TRIGGER watermark_audit_append_only BEFORE UPDATE OR DELETE ON ${s}.watermark_audit
        FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_rewrite();
    `,
  },
  {
    version: 3,
    name: 'lease holder process, catalog of the history, audit action',
    sql: (s) => `
      ALTER TABLE ${s}.watermarks
        ADD COLUMN lease_host text,
        ADD COLUMN lease_pid integer,
        ADD COLUMN lease_started_at timestamptz,
        ADD COLUMN iceberg_catalog text,
        ADD COLUMN iceberg_location text,
        ADD COLUMN last_marker_batch_id text;
      UPDATE ${s}.watermarks SET last_marker_batch_id = last_batch_id WHERE last_rows > 0;
      ALTER TABLE ${s}.watermark_audit
        ADD COLUMN action text NOT NULL DEFAULT 'cursor' CHECK (action IN ('cursor', 'rewind', 'release'));
    `,
  },
  {
    version: 4,
    name: 'hourly ledger of committed rows, last hourly check',
    // Self-contained (depends on version 1 only): versions are applied in order, whichever else exists.
    sql: (s) => `
      CREATE TABLE ${s}.hourly_ledger (
        table_name text NOT NULL REFERENCES ${s}.watermarks (table_name),
        batch_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('offload', 'repair')),
        window_start timestamptz NOT NULL,
        window_end timestamptz NOT NULL,
        hours jsonb NOT NULL,
        recorded_at timestamptz NOT NULL,
        PRIMARY KEY (table_name, batch_id)
      );
      CREATE INDEX hourly_ledger_window ON ${s}.hourly_ledger (table_name, window_end);
      CREATE TABLE ${s}.hourly_checks (
        table_name text PRIMARY KEY REFERENCES ${s}.watermarks (table_name),
        checked_at timestamptz NOT NULL,
        range_from timestamptz NOT NULL,
        range_to timestamptz NOT NULL,
        checked_hours integer NOT NULL,
        mismatches jsonb NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'rows an audited set skipped on purpose',
    // NULL for every earlier row: what those sets skipped was not recorded.
    sql: (s) => `ALTER TABLE ${s}.watermark_audit ADD COLUMN skipped_rows bigint CHECK (skipped_rows > 0);`,
  },
];

export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** One advisory-lock key per schema, so stores in different schemas of a database do not wait on each other. */
export function migrationLockKey(schema: string): string {
  const digest = createHash('sha256').update(`k2-offload migrations ${schema}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/**
 * Applies the migrations this build knows and the database lacks, in one transaction under a
 * transaction-scoped advisory lock: concurrent starters queue, and the later ones find nothing to do.
 * Returns the versions applied by this call.
 */
export async function applyMigrations(
  client: pg.ClientBase,
  schemaName: string = DEFAULT_SCHEMA,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  const schema = checkSchemaName(schemaName);
  const s = quoteIdent(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(schema)]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.k2_schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const applied = await client.query<{ version: number; name: string }>(
      `SELECT version, name FROM ${s}.k2_schema_migrations ORDER BY version`,
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const row of applied.rows) {
      if (!known.has(row.version))
        throw new ConfigError(
          `watermark schema ${schema} is at migration ${row.version} (${row.name}), newer than this build knows (up to ${Math.max(0, ...known.keys())}); deploy the newer build, or point it at another schema`,
          { schema, version: row.version },
        );
    }
    const done = new Set(applied.rows.map((r) => r.version));
    const pending = [...migrations].sort((a, b) => a.version - b.version).filter((m) => !done.has(m.version));
    for (const m of pending) {
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.k2_schema_migrations (version, name) VALUES ($1, $2)`, [
        m.version,
        m.name,
      ]);
    }
    await client.query('COMMIT');
    return pending.map((m) => m.version);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
