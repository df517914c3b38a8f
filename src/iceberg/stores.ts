import { ConfigError } from '../errors.ts';
import { LocalObjectStore } from './local-store.ts';
import type { ObjectStore } from './object-store.ts';
import type { S3ObjectStoreOptions } from './s3-store.ts';

export type ObjectStoreOptions = {
  /** Connection options for `s3://` URIs (endpoint, forcePathStyle, credentials, part size...). */
  s3?: S3ObjectStoreOptions;
};

export const SUPPORTED_SCHEMES = ['file', 's3'] as const;

/**
 * The object store for a warehouse or staging URI, chosen by its scheme: `file:///abs/path` is a local
 * folder, `s3://bucket/prefix` a bucket. Create one per URI and reuse it: each S3 store holds its own
 * client and connection pool. The S3 SDK is loaded only for an S3 store: a local run starts faster and
 * holds about 35 MB less without it.
 */
export async function createObjectStore(uri: string, options: ObjectStoreOptions = {}): Promise<ObjectStore> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    const { S3ObjectStore } = await import('./s3-store.ts');
    return new S3ObjectStore(options.s3);
  }
  if (scheme === 'file') return new LocalObjectStore();
  let hint = '';
  if (scheme === 's3a' || scheme === 's3n') hint = ` Write it as s3://${uri.slice(scheme.length + 3)}.`;
  else if (uri.startsWith('/')) hint = ` For a local folder write file://${uri}.`;
  throw new ConfigError(
    `Unsupported storage URI "${uri}": expected one of ${SUPPORTED_SCHEMES.map((s) => `${s}://`).join(', ')}.${hint}`,
    { uri, scheme },
  );
}
