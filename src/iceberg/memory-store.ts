import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { InputError } from '../errors.ts';
import type { ObjectInfo, ObjectStore } from './object-store.ts';

/** An object store in a Map: for tests and for dry runs. `clock` stamps lastModified. */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, { body: Uint8Array; lastModified: Date }>();

  constructor(private readonly clock: () => Date = () => new Date()) {}

  async put(uri: string, body: Uint8Array, options?: { ifNoneMatch?: boolean }): Promise<boolean> {
    if (options?.ifNoneMatch && this.objects.has(uri)) return false;
    this.objects.set(uri, { body: body.slice(), lastModified: this.clock() });
    return true;
  }

  async putFile(uri: string, localPath: string): Promise<void> {
    await this.put(uri, new Uint8Array(await readFile(localPath)));
  }

  async putStream(uri: string, body: Readable, options?: { ifNoneMatch?: boolean }): Promise<boolean> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) chunks.push(chunk as Uint8Array);
    return this.put(uri, new Uint8Array(Buffer.concat(chunks)), options);
  }

  private object(uri: string) {
    const o = this.objects.get(uri);
    if (!o) throw new InputError(`object ${uri} does not exist`, { uri });
    return o;
  }

  async get(uri: string): Promise<Uint8Array> {
    return this.object(uri).body.slice();
  }

  async getRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    return this.object(uri).body.slice(start, end);
  }

  async head(uri: string): Promise<ObjectInfo | undefined> {
    const o = this.objects.get(uri);
    return o && { uri, size: o.body.length, lastModified: o.lastModified };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [uri, o] of [...this.objects])
      if (uri.startsWith(prefix)) yield { uri, size: o.body.length, lastModified: o.lastModified };
  }

  async delete(uri: string): Promise<void> {
    this.objects.delete(uri);
  }
}
