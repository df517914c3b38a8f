import { describe, expect, it } from 'vitest';
import { LeaseError } from '../../src/errors.ts';
import { assertAttemptFiles, attemptPrefix, batchFolder } from '../../src/stage/attempt.ts';

/**
 * Per-attempt staging folders and the commit's fence on them, without a rig: which folder an attempt
 * writes into, and which staged files a commit under a lease may take. A file the fence lets through
 * that a stalled or superseded attempt wrote is a row committed twice or a changed row committed.
 */
const LOCATION = 's3://lake/warehouse/cold.db/bronze_trades';
const BATCH = { table: 'bronze_trades', batchId: 'b-0001', leaseToken: '7' };
const FOLDER = batchFolder(LOCATION, BATCH.batchId);
const part = (attempt: string, n = 0) => `${FOLDER}${attempt}/part-${String(n).padStart(5, '0')}.parquet`;

const refusal = (files: string[], prefix = FOLDER) => {
  try {
    assertAttemptFiles(BATCH, prefix, files);
  } catch (error) {
    return error as LeaseError;
  }
  return undefined;
};

describe('staging attempt folders', () => {
  it('puts each attempt in a folder of its own below the batch folder, named for its lease', () => {
    expect(FOLDER).toBe(`${LOCATION}/data/b-0001/`);
    expect(attemptPrefix(FOLDER, '7', 'a1b2c3')).toBe(`${LOCATION}/data/b-0001/t7-a1b2c3/`);
    // The folder given without its slash: still one folder below it, never a sibling of it.
    expect(attemptPrefix(`${LOCATION}/data/b-0001`, '12', 'z9')).toBe(`${LOCATION}/data/b-0001/t12-z9/`);
  });

  it('refuses a lease token that is not a whole number, which could name a folder outside the batch', () => {
    for (const token of ['', 'x7', '7x', '7/../../b-0002', '1 2']) {
      expect(() => attemptPrefix(FOLDER, token, 'a1b2c3'), token).toThrow(LeaseError);
    }
    expect(attemptPrefix(FOLDER, '1234567890', 'a1b2c3')).toBe(`${FOLDER}t1234567890-a1b2c3/`);
  });

  it('refuses a nonce that is not lower-case letters and digits, naming both values', () => {
    for (const nonce of ['', 'A1', '../b-0002', 'a/b', 'x'.repeat(33)]) {
      expect(() => attemptPrefix(FOLDER, '7', nonce), nonce).toThrow(LeaseError);
    }
    let error: LeaseError | undefined;
    try {
      attemptPrefix(FOLDER, '7', '../b-0002');
    } catch (e) {
      error = e as LeaseError;
    }
    expect(error?.message).toBe(
      'staging attempt needs a numeric lease token and a lower-case alphanumeric nonce, got "7" and "../b-0002"',
    );
    expect(error?.details).toEqual({ leaseToken: '7', nonce: '../b-0002' });
  });
});

describe('the commit fence on staged files', () => {
  it('takes the part files of one attempt of this lease, in a table whose location has dots', () => {
    expect(refusal([part('t7-a1b2c3', 0), part('t7-a1b2c3', 1)])).toBeUndefined();
    // Given with or without the folder's slash, the fence is the same.
    expect(refusal([part('t7-a1b2c3')], FOLDER.slice(0, -1))).toBeUndefined();
  });

  it('refuses a file whose path only matches the folder with its dots read as any character', () => {
    const lookalike = part('t7-a1b2c3').replace('cold.db', 'coldXdb');
    expect(refusal([lookalike])).toBeInstanceOf(LeaseError);
  });

  it('refuses a file of another lease, naming the count, the lease and the first such file', () => {
    const other = part('t8-a1b2c3');
    const error = refusal([part('t7-a1b2c3'), other]);
    expect(error).toBeInstanceOf(LeaseError);
    expect(error?.message).toBe(
      `refusing to commit batch b-0001 of bronze_trades: 1 staged file(s) are not part files of an attempt of lease 7 under ${FOLDER} (first: ${other}); a stalled or superseded attempt's files are never committed. Stage the batch again under the current lease`,
    );
  });

  it('refuses the files of two attempts of the same lease mixed together, naming both attempts', () => {
    const error = refusal([part('t7-aaa'), part('t7-bbb', 1)]);
    expect(error?.message).toBe(
      `refusing to commit batch b-0001 of bronze_trades: the files come from 2 staging attempts (aaa, bbb), not one; a stalled or superseded attempt's files are never committed. Stage the batch again under the current lease`,
    );
  });

  it('lists at most five refused files in its details, whatever the count', () => {
    const foreign = Array.from({ length: 7 }, (_, i) => part('t6-old', i));
    const error = refusal(foreign);
    expect(error?.message).toContain('7 staged file(s) are not part files');
    expect(error?.details).toEqual({
      table: 'bronze_trades',
      batchId: 'b-0001',
      leaseToken: '7',
      foreign: foreign.slice(0, 5),
    });
  });
});
