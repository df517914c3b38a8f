/**
 * Files of the warehouse and the staging area, addressed by absolute URI: `file:///abs/path` or
 * `s3://bucket/key`. One interface so the committer, maintenance and tests run the same on a laptop
 * folder, S3, or in memory.
 */
import type { Readable } from 'node:stream';

export type ObjectInfo = { uri: string; size: number; lastModified: Date };

export interface ObjectStore {
  /** Writes the whole object. With `ifNoneMatch`, refuses (returns false) when it already exists. */
  put(uri: string, body: Uint8Array, options?: { ifNoneMatch?: boolean }): Promise<boolean>;
  /** Uploads a local file (multipart on S3 for large files). */
  putFile(uri: string, localPath: string): Promise<void>;
  /**
   * Writes a stream of unknown length, holding only a few parts of it in memory (multipart on S3). With
   * `ifNoneMatch`, refuses (returns false) when the object already exists, and never replaces it.
   */
  putStream(uri: string, body: Readable, options?: { ifNoneMatch?: boolean }): Promise<boolean>;
  get(uri: string): Promise<Uint8Array>;
  /** Bytes [start, end) of an object; Parquet footers are read this way without fetching the file. */
  getRange(uri: string, start: number, end: number): Promise<Uint8Array>;
  head(uri: string): Promise<ObjectInfo | undefined>;
  /** Every object whose URI starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(uri: string): Promise<void>;
}

/** Joins a base URI and relative parts with single slashes. */
export function joinUri(base: string, ...parts: string[]): string {
  return [base.replace(/\/+$/, ''), ...parts.map((p) => p.replace(/^\/+|\/+$/g, ''))]
    .filter(Boolean)
    .join('/');
}
