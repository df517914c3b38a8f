import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, InputError, UnavailableError } from '../errors.ts';
import type { ObjectInfo, ObjectStore } from './object-store.ts';

import { parseS3Uri } from './s3-uri.ts';

export { parseS3Uri, type S3Location } from './s3-uri.ts';

export type S3ObjectStoreOptions = {
  /** A ready client; when given, the connection options below are ignored. */
  client?: S3Client;
  region?: string;
  /** Endpoint of an S3-compatible server (moto, LocalStack, MinIO); AWS's own when unset. */
  endpoint?: string;
  /** Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  credentials?: S3ClientConfig['credentials'];
  /** Attempts per request by the SDK, including the first. */
  maxAttempts?: number;
  /** Multipart part size for putFile (>= 5 MiB; S3's minimum). Files smaller than one part go in one PUT. */
  partSizeBytes?: number;
  /** Parts uploaded at once; memory held is about partSize x queueSize. */
  uploadQueueSize?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
};

type AwsLikeError = {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
};

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'SlowDown', 'ThrottlingException']);

const statusOf = (error: AwsLikeError) => error.$metadata?.httpStatusCode;

/**
 * Whether a failure is the service or the network, not the request: a retry may succeed. An SDK error
 * without an HTTP status never reached a server.
 */
export function isTransientAwsError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as AwsLikeError;
  const status = statusOf(e);
  if (status !== undefined && status >= 500) return true;
  if (status === 429 || e.$retryable !== undefined) return true;
  if (e.name && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  return status === undefined && e.$metadata !== undefined;
}

/** An S3 bucket behind the ObjectStore interface: multipart uploads, conditional creates, ranged reads. */
export class S3ObjectStore implements ObjectStore {
  readonly client: S3Client;
  private readonly endpointLabel: string;
  private readonly partSizeBytes: number;
  private readonly uploadQueueSize: number;
  private readonly listPageSize: number;

  constructor(options: S3ObjectStoreOptions = {}) {
    this.client =
      options.client ??
      new S3Client({
        region: options.region,
        endpoint: options.endpoint,
        forcePathStyle: options.forcePathStyle,
        credentials: options.credentials,
        maxAttempts: options.maxAttempts,
        // S3-compatible servers (LocalStack, moto) echo an object's upload Content-MD5 on ranged reads,
        // which the SDK rejects as a checksum mismatch (a Parquet footer read fails); S3 never sends it.
        ...(options.endpoint ? { responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
      });
    const region = options.region ?? process.env.AWS_REGION ?? 'the default region';
    this.endpointLabel = options.endpoint ?? `the AWS S3 endpoint of ${region}`;
    this.partSizeBytes = Math.max(options.partSizeBytes ?? 8 * 1024 * 1024, 5 * 1024 * 1024);
    this.uploadQueueSize = options.uploadQueueSize ?? 4;
    this.listPageSize = options.listPageSize ?? 1000;
  }

  async put(uri: string, body: Uint8Array, options: { ifNoneMatch?: boolean } = {}): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
        }),
      );
      return true;
    } catch (error) {
      if (options.ifNoneMatch && this.lostCreate(error, uri)) return false;
      throw this.mapError(error, 'put', uri);
    }
  }

  /**
   * A conditional create's refusal: 412, the object exists (false: another writer won); 409, another
   * conditional write to the key is in flight and which one wins is not known yet, so the caller must
   * retry (and will then see 412 or succeed).
   */
  private lostCreate(error: unknown, uri: string): boolean {
    const status = statusOf(error as AwsLikeError);
    if (status === 412) return true;
    if (status === 409)
      throw new UnavailableError(
        `A concurrent conditional write to ${uri} was in progress; retry to learn which one won`,
        { uri, bucket: parseS3Uri(uri).bucket, endpoint: this.endpointLabel },
        { cause: error },
      );
    return false;
  }

  async putFile(uri: string, localPath: string): Promise<void> {
    try {
      await this.putStream(uri, createReadStream(localPath));
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT')
        throw new InputError(`Cannot upload ${localPath} to ${uri}: the local file does not exist`, {
          uri,
          localPath,
        });
      throw error;
    }
  }

  /**
   * A multipart upload fed by the stream: about partSize x (queueSize + 1) bytes are held at once, however
   * long the stream. With `ifNoneMatch`, the PutObject (one part) or CompleteMultipartUpload carries
   * `If-None-Match: *`, so S3 itself refuses to replace an existing object (412: false; 409: retry).
   */
  async putStream(uri: string, body: Readable, options: { ifNoneMatch?: boolean } = {}): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: body, IfNoneMatch: options.ifNoneMatch ? '*' : undefined },
      partSize: this.partSizeBytes,
      queueSize: this.uploadQueueSize,
      // A failed multipart upload is aborted so no invisible parts linger and get billed.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
      return true;
    } catch (error) {
      if (options.ifNoneMatch && this.lostCreate(error, uri)) return false;
      if ((error as { code?: string }).code === 'ENOENT') throw error;
      throw this.mapError(error, 'upload', uri);
    }
  }

  async get(uri: string): Promise<Uint8Array> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return await readBody(response.Body, uri);
    } catch (error) {
      throw this.mapError(error, 'get', uri);
    }
  }

  async getRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
      throw new InputError(`Invalid byte range [${start}, ${end}) for ${uri}: need 0 <= start <= end`, {
        uri,
        start,
        end,
      });
    }
    if (start === end) return new Uint8Array(0);
    const { bucket, key } = parseS3Uri(uri);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}` }),
      );
      return await readBody(response.Body, uri);
    } catch (error) {
      if (statusOf(error as AwsLikeError) === 416) {
        throw new InputError(`Byte range [${start}, ${end}) lies beyond the end of ${uri}`, {
          uri,
          start,
          end,
        });
      }
      throw this.mapError(error, 'get', uri);
    }
  }

  async head(uri: string): Promise<ObjectInfo | undefined> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { uri, size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) };
    } catch (error) {
      if (statusOf(error as AwsLikeError) === 404 && (error as AwsLikeError).name !== 'NoSuchBucket') {
        return undefined;
      }
      throw this.mapError(error, 'head', uri);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const { bucket, key } = parseS3Uri(prefix);
    let continuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.listPage(bucket, key, continuationToken);
      } catch (error) {
        throw this.mapError(error, 'list', prefix);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          uri: `s3://${bucket}/${object.Key}`,
          size: object.Size ?? 0,
          lastModified: object.LastModified ?? new Date(0),
        };
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      throw this.mapError(error, 'delete', uri);
    }
  }

  private listPage(bucket: string, prefix: string, continuationToken: string | undefined) {
    return this.client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ContinuationToken: continuationToken,
        MaxKeys: this.listPageSize,
      }),
    );
  }

  /** Turns an SDK failure into one of our errors, naming the object, its bucket and the endpoint. */
  private mapError(error: unknown, action: string, uri: string): Error {
    if (!(error instanceof Error)) return new Error(String(error));
    const e = error as AwsLikeError;
    const { bucket } = parseS3Uri(uri);
    const details = { uri, bucket, endpoint: this.endpointLabel, code: e.name };
    if (isTransientAwsError(error)) {
      const status = statusOf(e);
      const what = status ? `HTTP ${status} ${e.name ?? ''}`.trim() : (e.code ?? e.name ?? 'network error');
      return new UnavailableError(
        `S3 ${action} of ${uri} failed (${what}: ${e.message}); bucket "${bucket}" at ${this.endpointLabel} ` +
          'is unreachable or overloaded. Check the endpoint and network, then retry.',
        details,
        { cause: error },
      );
    }
    if (e.name === 'NoSuchBucket') {
      return new ConfigError(
        `S3 bucket "${bucket}" does not exist at ${this.endpointLabel} (while trying to ${action} ${uri}). ` +
          'Create it or fix the warehouse/staging URI.',
        details,
        { cause: error },
      );
    }
    const status = statusOf(e);
    if (status === 404 || e.name === 'NoSuchKey') {
      return new InputError(
        `S3 object ${uri} does not exist (${action} failed with ${e.name ?? '404'})`,
        details,
        {
          cause: error,
        },
      );
    }
    if (status === 403 || status === 401) {
      return new ConfigError(
        `S3 refused to ${action} ${uri} (HTTP ${status} ${e.name ?? ''}) at ${this.endpointLabel}: check ` +
          'the credentials and that the IAM policy allows this action on the bucket.',
        details,
        { cause: error },
      );
    }
    return error;
  }
}

async function readBody(body: unknown, uri: string): Promise<Uint8Array> {
  if (body && typeof (body as { transformToByteArray?: unknown }).transformToByteArray === 'function') {
    return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
  }
  throw new UnavailableError(`S3 returned no body for ${uri}`, { uri });
}
