import type { ObjectInfo, ObjectStore } from '../../../src/iceberg/object-store.ts';

/** The smallest ObjectStore that keeps the interface's promises (atomic conditional create included). */
export class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, { body: Uint8Array; lastModified: Date }>();

  async put(uri: string, body: Uint8Array, options: { ifNoneMatch?: boolean } = {}) {
    await Promise.resolve();
    if (options.ifNoneMatch && this.objects.has(uri)) return false;
    this.objects.set(uri, { body: body.slice(), lastModified: new Date() });
    return true;
  }

  async putFile(): Promise<void> {
    throw new Error('MemoryStore has no local files');
  }

  async get(uri: string) {
    await Promise.resolve();
    const object = this.objects.get(uri);
    if (!object) throw new Error(`${uri} does not exist`);
    return object.body.slice();
  }

  async getRange(uri: string, start: number, end: number) {
    return (await this.get(uri)).slice(start, end);
  }

  async head(uri: string): Promise<ObjectInfo | undefined> {
    const object = this.objects.get(uri);
    return object ? { uri, size: object.body.length, lastModified: object.lastModified } : undefined;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [uri, object] of [...this.objects]) {
      if (uri.startsWith(prefix)) yield { uri, size: object.body.length, lastModified: object.lastModified };
    }
  }

  async delete(uri: string) {
    this.objects.delete(uri);
  }
}
