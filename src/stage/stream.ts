import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import { parquetMetadata } from 'hyparquet';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { StagingTarget } from './targets.ts';

export type StreamedFile = { rows: number; bytes: number };

const PART = /^part-\d+\.parquet$/;

/**
 * Removes earlier attempts' part files, so the batch's prefix (which belongs to this batch alone) holds
 * only this attempt's files. On S3 this needs the object store; without one, leftovers stay, and the
 * returned file list (always authoritative) simply does not name them.
 */
export async function clearParts(target: StagingTarget, objects: ObjectStore | undefined): Promise<void> {
  if (target.kind === 'file') {
    await mkdir(target.dir, { recursive: true });
    for (const name of await readdir(target.dir))
      if (PART.test(name)) await rm(join(target.dir, name), { force: true });
    return;
  }
  if (!objects) return;
  const stale: string[] = [];
  for await (const object of objects.list(target.prefix))
    if (PART.test(object.uri.slice(target.prefix.length))) stale.push(object.uri);
  for (const uri of stale) await objects.delete(uri);
}

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
 * Streams one `SELECT ... FORMAT Parquet` from ClickHouse to `<target><name>`: straight to the file for
 * local staging, through a temporary file and a multipart upload for S3. Memory stays at a few stream
 * chunks. Returns undefined (and leaves no file) when the query had no rows.
 */
export async function streamFile(
  client: ClickHouseClient,
  query: string,
  target: StagingTarget,
  name: string,
  objects: ObjectStore | undefined,
): Promise<StreamedFile | undefined> {
  const scratch = target.kind === 's3' ? await mkdtemp(join(tmpdir(), 'k2-stage-')) : undefined;
  const path = target.kind === 'file' ? `${target.dir}${name}` : join(scratch as string, name);
  try {
    const result = await client.exec({ query });
    await pipeline(result.stream, createWriteStream(path));
    const file = await parquetRows(path);
    if (file.rows === 0) {
      await rm(path, { force: true });
      return undefined;
    }
    if (target.kind === 's3') await (objects as ObjectStore).putFile(`${target.prefix}${name}`, path);
    return file;
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
