import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError, isRetryable, UnavailableError } from '../../src/errors.ts';
import { LocalObjectStore } from '../../src/iceberg/local-store.ts';
import { parseS3Uri, S3ObjectStore } from '../../src/iceberg/s3-store.ts';
import { createObjectStore } from '../../src/iceberg/stores.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';

const SUITE = 'S3ObjectStore against moto';
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

describe('parseS3Uri', () => {
  it('splits bucket and key, and names a value that is not an S3 URI', () => {
    expect(parseS3Uri('s3://warehouse/cold/t/metadata/v1.metadata.json')).toEqual({
      bucket: 'warehouse',
      key: 'cold/t/metadata/v1.metadata.json',
    });
    expect(parseS3Uri('s3://warehouse')).toEqual({ bucket: 'warehouse', key: '' });
    expect(() => parseS3Uri('file:///tmp/x')).toThrow(/"file:\/\/\/tmp\/x" is not an S3 URI/);
  });
});

describe('createObjectStore', () => {
  it('refuses a scheme it has no store for, naming the URI and what it accepts', async () => {
    await expect(createObjectStore('gs://bucket/wh')).rejects.toThrow(
      /Unsupported storage URI "gs:\/\/bucket\/wh": expected/,
    );
    await expect(createObjectStore('s3a://bucket/wh')).rejects.toThrow(ConfigError);
    await expect(createObjectStore('s3a://bucket/wh')).rejects.toThrow(/Write it as s3:\/\/bucket\/wh/);
    await expect(createObjectStore('/tmp/wh')).rejects.toThrow(/For a local folder write file:\/\/\/tmp\/wh/);
    expect(await createObjectStore('file:///tmp/wh')).toBeInstanceOf(LocalObjectStore);
  });
});

describe.skipIf(skipMoto(motoAvailability(), SUITE))(SUITE, () => {
  let moto: Moto;
  let store: S3ObjectStore;
  let dir: string;
  const bucket = `k2-${randomBytes(4).toString('hex')}`;
  const uri = (key: string) => `s3://${bucket}/${key}`;

  beforeAll(async () => {
    moto = await startMoto();
    store = new S3ObjectStore({ ...moto.clientConfig, partSizeBytes: 5 * 1024 * 1024 });
    await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
    dir = await mkdtemp(join(tmpdir(), 'k2-s3-'));
  });
  afterAll(async () => {
    await moto?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes, reads, heads and reads a byte range of an object', async () => {
    const body = bytes('0123456789PAR1');
    expect(await store.put(uri('a/file.bin'), body)).toBe(true);
    expect(text(await store.get(uri('a/file.bin')))).toBe('0123456789PAR1');
    const info = await store.head(uri('a/file.bin'));
    expect(info?.size).toBe(14);
    expect(info?.uri).toBe(uri('a/file.bin'));
    // A Parquet footer is read as the last bytes of the file, without fetching the rest.
    expect(text(await store.getRange(uri('a/file.bin'), 10, 14))).toBe('PAR1');
    expect(text(await store.getRange(uri('a/file.bin'), 0, 3))).toBe('012');
    expect(await store.getRange(uri('a/file.bin'), 5, 5)).toHaveLength(0);
    expect(await store.head(uri('a/absent.bin'))).toBeUndefined();
  });

  it('refuses a conditional create when the object exists, and keeps the first content', async () => {
    expect(await store.put(uri('meta/v1.metadata.json'), bytes('first'), { ifNoneMatch: true })).toBe(true);
    expect(await store.put(uri('meta/v1.metadata.json'), bytes('second'), { ifNoneMatch: true })).toBe(false);
    expect(text(await store.get(uri('meta/v1.metadata.json')))).toBe('first');
    // An unconditional put still overwrites (a staging retry relies on this).
    expect(await store.put(uri('meta/v1.metadata.json'), bytes('third'))).toBe(true);
    expect(text(await store.get(uri('meta/v1.metadata.json')))).toBe('third');
  });

  it('uploads a large local file in parts and a small one whole, byte for byte', async () => {
    const large = randomBytes(12 * 1024 * 1024 + 123);
    await writeFile(join(dir, 'large.parquet'), large);
    await store.putFile(uri('staging/large.parquet'), join(dir, 'large.parquet'));
    expect(Buffer.from(await store.get(uri('staging/large.parquet'))).equals(large)).toBe(true);
    const head = await store.client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: 'staging/large.parquet' }),
    );
    // A multipart object's ETag ends in "-<number of parts>": 12 MiB in 5 MiB parts is 3 parts.
    expect(head.ETag).toMatch(/-3"?$/);

    await writeFile(join(dir, 'small.parquet'), bytes('small'));
    await store.putFile(uri('staging/small.parquet'), join(dir, 'small.parquet'));
    expect(text(await store.get(uri('staging/small.parquet')))).toBe('small');

    await expect(store.putFile(uri('staging/none.parquet'), join(dir, 'none.parquet'))).rejects.toThrow(
      /none\.parquet: the local file does not exist/,
    );
  });

  it('lists every object under a prefix across pages, and nothing beside it', async () => {
    const paged = new S3ObjectStore({ ...moto.clientConfig, listPageSize: 2 });
    const keys = Array.from({ length: 7 }, (_, i) => `list/t/part-${String(i).padStart(5, '0')}.parquet`);
    await Promise.all(keys.map((k) => paged.put(uri(k), bytes(k))));
    await paged.put(uri('list/t2/other.parquet'), bytes('x'));
    const listed: string[] = [];
    for await (const info of paged.list(uri('list/t/'))) listed.push(info.uri);
    expect(listed.sort()).toEqual(keys.map(uri).sort());
  });

  it('deletes an object, and deleting a missing one is not an error', async () => {
    await store.put(uri('del/x'), bytes('x'));
    await store.delete(uri('del/x'));
    expect(await store.head(uri('del/x'))).toBeUndefined();
    await store.delete(uri('del/x'));
  });

  it('is what createObjectStore gives for an s3:// warehouse', async () => {
    const chosen = await createObjectStore(uri('warehouse'), { s3: moto.clientConfig });
    expect(chosen).toBeInstanceOf(S3ObjectStore);
    expect(await chosen.put(uri('warehouse/x'), bytes('x'))).toBe(true);
    expect(text(await store.get(uri('warehouse/x')))).toBe('x');
  });

  it('names the URI when an object is missing, and the bucket when the bucket is', async () => {
    const missing = store.get(uri('nope/v9.metadata.json'));
    await expect(missing).rejects.toBeInstanceOf(InputError);
    await expect(missing).rejects.toThrow(`S3 object ${uri('nope/v9.metadata.json')} does not exist`);
    await expect(store.getRange(uri('nope/x'), 0, 4)).rejects.toBeInstanceOf(InputError);

    const noBucket = store.put('s3://k2-no-such-bucket/x', bytes('x'));
    await expect(noBucket).rejects.toBeInstanceOf(ConfigError);
    await expect(noBucket).rejects.toThrow(/bucket "k2-no-such-bucket" does not exist/);
  });
});

/**
 * Concurrent conditional creates, against a server we own that answers as S3 documents it: the first
 * create of a key wins, any later one gets 412, and a create racing one still in flight may get 409.
 * (moto decides a conditional write by a check and a put that other requests can run between, so under
 * load it lets two racing creates win: S3's atomicity cannot be tested on it.)
 */
describe('S3ObjectStore under concurrent conditional creates', () => {
  let server: Server;
  let endpoint: string;
  const objects = new Map<string, string>();
  /** Keys whose next conditional create is answered 409, as S3 does while another is in flight. */
  const inFlight = new Set<string>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const key = req.url?.split('?')[0] ?? '';
        const refuse = (status: number, code: string) => {
          res.writeHead(status, { 'content-type': 'application/xml' });
          res.end(`<Error><Code>${code}</Code><Message>${code}</Message></Error>`);
        };
        if (req.method !== 'PUT') return refuse(405, 'MethodNotAllowed');
        if (req.headers['if-none-match'] === '*') {
          if (inFlight.delete(key)) return refuse(409, 'ConditionalRequestConflict');
          if (objects.has(key)) return refuse(412, 'PreconditionFailed');
        }
        // Check and store in one step of the event loop: nothing runs between them.
        objects.set(key, Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { etag: '"e"' });
        res.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(() => server?.close());

  const store = () =>
    new S3ObjectStore({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: MOTO_CREDENTIALS,
      maxAttempts: 1,
    });

  it('reports exactly one of several concurrent creates as the winner, the others as lost', async () => {
    const s3 = store();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        s3.put('s3://k2-bucket/race/v2.metadata.json', bytes(`writer-${i}`), { ifNoneMatch: true }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const stored = objects.get('/k2-bucket/race/v2.metadata.json') ?? '';
    expect(stored).toContain(`writer-${results.indexOf(true)}`);
  });

  it('a create answered 409 (another in flight) is a retryable error, never taken as won or lost', async () => {
    inFlight.add('/k2-bucket/race/v3.metadata.json');
    const error = await store()
      .put('s3://k2-bucket/race/v3.metadata.json', bytes('mine'), { ifNoneMatch: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toBe(
      'A concurrent conditional write to s3://k2-bucket/race/v3.metadata.json was in progress; retry to learn which one won',
    );
    expect(objects.has('/k2-bucket/race/v3.metadata.json')).toBe(false);
    // The retry learns the outcome: here nobody else finished, so it wins.
    expect(
      await store().put('s3://k2-bucket/race/v3.metadata.json', bytes('mine'), { ifNoneMatch: true }),
    ).toBe(true);
  });

  it('the same for a streamed upload (a staged file, a manifest)', async () => {
    inFlight.add('/k2-bucket/race/m.avro');
    const error = await store()
      .putStream('s3://k2-bucket/race/m.avro', Readable.from([bytes('one')]), { ifNoneMatch: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(
      await store().putStream('s3://k2-bucket/race/m.avro', Readable.from([bytes('one')]), {
        ifNoneMatch: true,
      }),
    ).toBe(true);
    expect(
      await store().putStream('s3://k2-bucket/race/m.avro', Readable.from([bytes('two')]), {
        ifNoneMatch: true,
      }),
    ).toBe(false);
  });
});

describe('S3ObjectStore when S3 is unavailable', () => {
  let server: Server;
  let endpoint: string;

  beforeAll(async () => {
    // A server we own that answers every request like an overloaded S3.
    server = createServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end(
        '<Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>',
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(() => server?.close());

  const storeAt = (at: string) =>
    new S3ObjectStore({
      endpoint: at,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: MOTO_CREDENTIALS,
      maxAttempts: 1,
    });

  it('maps a 5xx answer to a retryable UnavailableError naming bucket and endpoint', async () => {
    const failure = storeAt(endpoint)
      .get('s3://k2-bucket/cold/x.parquet')
      .catch((e: unknown) => e);
    const error = await failure;
    expect(error).toBeInstanceOf(UnavailableError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain('bucket "k2-bucket"');
    expect((error as Error).message).toContain(endpoint);
  });

  it('maps a refused connection to a retryable UnavailableError naming bucket and endpoint', async () => {
    const closed = `http://127.0.0.1:1`;
    const error = await storeAt(closed)
      .put('s3://k2-bucket/x', bytes('x'), { ifNoneMatch: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/ECONNREFUSED|network/);
    expect((error as Error).message).toContain('bucket "k2-bucket" at http://127.0.0.1:1');
  });
});
