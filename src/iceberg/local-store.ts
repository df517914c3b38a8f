import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import {
  copyFile,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InputError, UnavailableError } from '../errors.ts';
import type { ObjectInfo, ObjectStore } from './object-store.ts';

/** `file:///abs/path` for a local path (the form Iceberg metadata and our stores use). */
export const fileUri = (path: string) => pathToFileURL(path).href;

/** The local path of a `file://` URI; refuses other schemes. */
export function localPath(uri: string): string {
  if (!uri.startsWith('file://'))
    throw new InputError(`${uri} is not a file:// URI; the local store holds file:///absolute/paths only`, {
      uri,
    });
  return fileURLToPath(uri);
}

const TEMP_MARK = '.tmp-';
const isTemp = (name: string) => name.startsWith('.') && name.includes(TEMP_MARK);
const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * The warehouse on a local disk. Writes are atomic (a temp file renamed into place, so readers never see
 * half a file); `ifNoneMatch` creates with a hard link, which fails when the name exists, so exactly one
 * of two concurrent writers of a name succeeds, as S3's `If-None-Match: *` does.
 */
export class LocalObjectStore implements ObjectStore {
  private async temp(path: string): Promise<string> {
    await mkdir(dirname(path), { recursive: true });
    return join(dirname(path), `.${randomBytes(6).toString('hex')}${TEMP_MARK}${Date.now()}`);
  }

  private missing(uri: string, action: string, error: unknown): Error {
    if (code(error) === 'ENOENT') return new InputError(`object ${uri} does not exist (${action})`, { uri });
    return new UnavailableError(
      `local store: ${action} ${uri} failed: ${(error as Error).message}`,
      { uri },
      { cause: error },
    );
  }

  async put(uri: string, body: Uint8Array, options?: { ifNoneMatch?: boolean }): Promise<boolean> {
    const path = localPath(uri);
    const tmp = await this.temp(path);
    await writeFile(tmp, body);
    return this.publish(tmp, path, options?.ifNoneMatch ?? false);
  }

  private async publish(tmp: string, path: string, exclusive: boolean): Promise<boolean> {
    if (!exclusive) {
      await rename(tmp, path);
      return true;
    }
    try {
      await link(tmp, path);
      return true;
    } catch (error) {
      if (code(error) === 'EEXIST') return false;
      throw error;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async putFile(uri: string, source: string): Promise<void> {
    const path = localPath(uri);
    const tmp = await this.temp(path);
    await copyFile(source, tmp);
    await this.publish(tmp, path, false);
  }

  async putStream(uri: string, body: Readable, options?: { ifNoneMatch?: boolean }): Promise<boolean> {
    const path = localPath(uri);
    const tmp = await this.temp(path);
    try {
      await pipeline(body, createWriteStream(tmp));
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    return this.publish(tmp, path, options?.ifNoneMatch ?? false);
  }

  async get(uri: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(localPath(uri)));
    } catch (error) {
      throw this.missing(uri, 'get', error);
    }
  }

  async getRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(localPath(uri), 'r');
      const length = Math.max(0, end - start);
      const buffer = new Uint8Array(length);
      const { bytesRead } = await handle.read(buffer, 0, length, start);
      return buffer.subarray(0, bytesRead);
    } catch (error) {
      throw this.missing(uri, 'getRange', error);
    } finally {
      await handle?.close();
    }
  }

  async head(uri: string): Promise<ObjectInfo | undefined> {
    try {
      const s = await stat(localPath(uri));
      return s.isFile() ? { uri, size: s.size, lastModified: s.mtime } : undefined;
    } catch (error) {
      if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return undefined;
      throw this.missing(uri, 'head', error);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // The prefix may end inside a file name: walk from its directory and filter.
    const base = localPath(prefix.endsWith('/') ? prefix : prefix.slice(0, prefix.lastIndexOf('/') + 1));
    const walk = async function* (dir: string): AsyncGenerator<ObjectInfo> {
      let entries: Array<import('node:fs').Dirent>;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return;
        throw error;
      }
      for (const e of entries) {
        const path = join(dir, e.name);
        if (e.isDirectory()) yield* walk(path);
        else if (e.isFile() && !isTemp(e.name)) {
          const uri = fileUri(path);
          if (!uri.startsWith(prefix)) continue;
          const s = await stat(path).catch(() => undefined);
          if (s) yield { uri, size: s.size, lastModified: s.mtime };
        }
      }
    };
    yield* walk(base);
  }

  async delete(uri: string): Promise<void> {
    try {
      await unlink(localPath(uri));
    } catch (error) {
      if (code(error) !== 'ENOENT') throw this.missing(uri, 'delete', error);
    }
  }
}
