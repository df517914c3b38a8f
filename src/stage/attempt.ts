import { randomBytes } from 'node:crypto';
import { LeaseError } from '../errors.ts';
import { joinUri } from '../iceberg/object-store.ts';

/**
 * Where staged files live. A batch's folder is `<table location>/data/<batchId>/` (inside the data
 * folder: our committer adopts the staged files as the table's data files). Each staging attempt writes
 * into a folder of its own below it, `t<lease token>-<nonce>/`, and never deletes or overwrites a file:
 * a stalled attempt that resumes after another cycle committed the batch, or a timed-out invocation that
 * keeps running while Step Functions retries it, writes only files no snapshot refers to. Orphan removal
 * collects those after its grace period.
 */
export function batchFolder(tableLocation: string, batchId: string): string {
  return `${joinUri(tableLocation, 'data', batchId)}/`;
}

/** A fresh per-invocation nonce: 12 hex characters (48 random bits). */
export function newAttemptNonce(): string {
  return randomBytes(6).toString('hex');
}

const NONCE = /^[0-9a-z]{1,32}$/;

/** The folder one attempt writes into: `<batch folder>t<leaseToken>-<nonce>/`. */
export function attemptPrefix(batchStagingPrefix: string, leaseToken: string, nonce: string): string {
  if (!NONCE.test(nonce) || !/^[0-9]+$/.test(leaseToken))
    throw new LeaseError(
      `staging attempt needs a numeric lease token and a lower-case alphanumeric nonce, got ${JSON.stringify(leaseToken)} and ${JSON.stringify(nonce)}`,
      { leaseToken, nonce },
    );
  return `${batchStagingPrefix.replace(/\/?$/, '/')}t${leaseToken}-${nonce}/`;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The commit's fence on files: every staged file must be a part file of one single attempt of this
 * batch under this lease (`<batch folder>t<leaseToken>-<nonce>/part-NNNNN.parquet`). A file of another
 * lease, of another batch, outside the batch folder, or two attempts mixed together are refused: those
 * come from a holder that lost its lease, or from a listing that picked up a stalled attempt's files.
 */
export function assertAttemptFiles(
  batch: { table: string; batchId: string; leaseToken: string },
  batchStagingPrefix: string,
  uris: readonly string[],
): void {
  const folder = batchStagingPrefix.replace(/\/?$/, '/');
  const part = new RegExp(
    `^${escapeRegExp(folder)}t${escapeRegExp(batch.leaseToken)}-([0-9a-z]+)/part-\\d{5,}\\.parquet$`,
  );
  const attempts = new Set<string>();
  const foreign: string[] = [];
  for (const uri of uris) {
    const match = part.exec(uri);
    if (match) attempts.add(match[1] as string);
    else foreign.push(uri);
  }
  if (foreign.length > 0 || attempts.size > 1)
    throw new LeaseError(
      `refusing to commit batch ${batch.batchId} of ${batch.table}: ${
        foreign.length > 0
          ? `${foreign.length} staged file(s) are not part files of an attempt of lease ${batch.leaseToken} under ${folder} (first: ${foreign[0]})`
          : `the files come from ${attempts.size} staging attempts (${[...attempts].join(', ')}), not one`
      }; a stalled or superseded attempt's files are never committed. Stage the batch again under the current lease`,
      {
        table: batch.table,
        batchId: batch.batchId,
        leaseToken: batch.leaseToken,
        foreign: foreign.slice(0, 5),
      },
    );
}
