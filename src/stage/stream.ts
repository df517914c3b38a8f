import { createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import { parquetMetadata } from 'hyparquet';
import { StagingMismatchError } from '../errors.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import { readParquetFooter } from '../iceberg/parquet-footer.ts';
import type { StagingTarget } from './targets.ts';

export type StreamedFile = { rows: number; bytes: number };

/**
 * Readies a target for an attempt's files: a local folder is created. Nothing is ever removed: the
 * folder belongs to this attempt alone, and its files are written create-only.
 */
export async function prepareTarget(target: StagingTarget): Promise<void> {
  if (target.kind === 'file') await mkdir(target.dir, { recursive: true });
}

const exists = (uri: string, cause?: unknown) =>
  new StagingMismatchError(
    `staged file ${uri} already exists; an attempt's files are written once, so another writer used this attempt's folder. Stage the batch again`,
    { uri },
    { cause },
  );

/** Row count from the Parquet footer alone (the last 8 bytes give its length). */
async function parquetRows(path: string): Promise<{ rows: number; bytes: number }> {
  const { size } = await stat(path);
  if (size < 12) return { rows: 0, bytes: size };
  const handle = await open(path, 'r');
  try {
    const tail = Buffer.alloc(8);
    await handle.read(tail, 0, 8, size - 8);
    const footerLength = tail.readUInt32LE(0) + 8;
    const footer = Buffer.alloc(footerLength);
    await handle.read(footer, 0, footerLength, size - footerLength);
    const metadata = parquetMetadata(
      footer.buffer.slice(footer.byteOffset, footer.byteOffset + footerLength),
    );
    return { rows: Number(metadata.num_rows), bytes: size };
  } finally {
    await handle.close();
  }
}

/**
 * Streams one `SELECT ... FORMAT Parquet` from ClickHouse to `<target><name>`, create-only: straight to a
 * new local file (`wx`), or to S3 through a multipart upload fed by the stream (no temporary file; memory
 * is a few parts) with `If-None-Match: *`. Row count and size come from the written file's footer.
 * Returns undefined (and leaves no file) when the query had no rows.
 */
export async function streamFile(
  client: ClickHouseClient,
  query: string,
  target: StagingTarget,
  name: string,
  objects: ObjectStore | undefined,
): Promise<StreamedFile | undefined> {
  const result = await client.exec({ query });
  if (target.kind === 'file') {
    const path = `${target.dir}${name}`;
    try {
      await pipeline(result.stream, createWriteStream(path, { flags: 'wx' }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw exists(`${target.prefix}${name}`, error);
      throw error;
    }
    const file = await parquetRows(path);
    if (file.rows === 0) await rm(path, { force: true });
    return file.rows === 0 ? undefined : file;
  }
  const store = objects as ObjectStore;
  const uri = `${target.prefix}${name}`;
  if (!(await store.putStream(uri, result.stream, { ifNoneMatch: true }))) throw exists(uri);
  const { metadata, size } = await readParquetFooter(store, uri);
  const rows = Number(metadata.num_rows);
  // An empty result is this attempt's own file, unreferenced and never returned: nothing else knows it.
  if (rows === 0) await store.delete(uri);
  return rows === 0 ? undefined : { rows, bytes: size };
}
