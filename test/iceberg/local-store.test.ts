import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { fileUri, LocalObjectStore, localPath } from '../../src/iceberg/local-store.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import type { ObjectStore } from '../../src/iceberg/object-store.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k2-local-store-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

// The same contract for both stores we own.
const stores: Array<[string, () => { store: ObjectStore; base: () => string }]> = [
  [
    'local',
    () => ({
      store: new LocalObjectStore(),
      base: () => fileUri(join(dir, `w${Math.random().toString(36).slice(2)}`)),
    }),
  ],
  [
    'memory',
    () => ({
      store: new MemoryObjectStore(),
      base: () => `mem://bucket/w${Math.random().toString(36).slice(2)}`,
    }),
  ],
];

describe.each(stores)('%s object store', (_name, make) => {
  it('writes, reads whole and ranged, heads and deletes', async () => {
    const { store, base } = make();
    const uri = `${base()}/a/b/c.bin`;
    expect(await store.head(uri)).toBeUndefined();
    expect(await store.put(uri, bytes('hello world'))).toBe(true);
    expect(text(await store.get(uri))).toBe('hello world');
    expect(text(await store.getRange(uri, 6, 11))).toBe('world');
    expect((await store.head(uri))?.size).toBe(11);
    expect(await store.put(uri, bytes('replaced'))).toBe(true);
    expect(text(await store.get(uri))).toBe('replaced');
    await store.delete(uri);
    await store.delete(uri); // deleting twice is fine
    expect(await store.head(uri)).toBeUndefined();
    await expect(store.get(uri)).rejects.toBeInstanceOf(InputError);
  });

  it('with ifNoneMatch, exactly one of many concurrent writers creates the object', async () => {
    const { store, base } = make();
    const uri = `${base()}/metadata/00001.metadata.json`;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.put(uri, bytes(`writer ${i}`), { ifNoneMatch: true })),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(text(await store.get(uri))).toBe(`writer ${results.indexOf(true)}`);
  });

  it('writes a stream, and with ifNoneMatch never replaces an existing object', async () => {
    const { store, base } = make();
    const uri = `${base()}/data/t1-a/part-00000.parquet`;
    const chunks = () => Readable.from([Buffer.from('first '), Buffer.from('attempt')]);
    expect(await store.putStream(uri, chunks(), { ifNoneMatch: true })).toBe(true);
    expect(await store.putStream(uri, Readable.from([Buffer.from('later')]), { ifNoneMatch: true })).toBe(
      false,
    );
    expect(text(await store.get(uri))).toBe('first attempt');
  });

  it('lists by prefix, including a prefix that ends inside a name', async () => {
    const { store, base } = make();
    const root = base();
    for (const k of [
      'metadata/v1.metadata.json',
      'metadata/v2.metadata.json',
      'metadata/snap-1.avro',
      'data/x/y.parquet',
    ])
      await store.put(`${root}/${k}`, bytes(k));
    const list = async (prefix: string) => {
      const out: string[] = [];
      for await (const o of store.list(prefix)) out.push(o.uri.slice(root.length + 1));
      return out.sort();
    };
    expect(await list(`${root}/metadata/v`)).toEqual([
      'metadata/v1.metadata.json',
      'metadata/v2.metadata.json',
    ]);
    expect(await list(`${root}/`)).toHaveLength(4);
    expect(await list(`${root}/nothing/`)).toEqual([]);
  });
});

describe('local object store on disk', () => {
  it('leaves no temp files behind and maps file:// URIs to paths', async () => {
    const store = new LocalObjectStore();
    const folder = join(dir, 'clean');
    const uri = fileUri(join(folder, 'f.json'));
    expect(localPath(uri)).toBe(join(folder, 'f.json'));
    await store.put(uri, bytes('1'));
    await store.put(uri, bytes('2'), { ifNoneMatch: true });
    const source = join(dir, 'source.bin');
    await writeFile(source, 'uploaded');
    await store.putFile(fileUri(join(folder, 'g.bin')), source);
    expect((await readdir(folder)).sort()).toEqual(['f.json', 'g.bin']);
    expect(text(await store.get(fileUri(join(folder, 'g.bin'))))).toBe('uploaded');
  });

  it('refuses URIs that are not file://', () => {
    expect(() => localPath('s3://bucket/key')).toThrow(
      's3://bucket/key is not a file:// URI; the local store holds file:///absolute/paths only',
    );
  });
});
