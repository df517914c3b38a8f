import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { snappyUncompress } from 'hyparquet';
import { ByteReader, ByteWriter } from './binary.ts';
import { decodeDatum, encodeDatum } from './datum.ts';
import { type AvroSchema, resolveSchema } from './schema.ts';

/**
 * Avro object container files (Avro 1.11 spec, "Object Container Files"): a header with the schema JSON
 * and string metadata, then blocks of records each followed by the 16-byte sync marker.
 * We write `null` or `deflate`; we also read `snappy`, which some Iceberg writers use for manifests.
 */
export const AVRO_CODECS = ['null', 'deflate'] as const;
export type AvroCodec = (typeof AVRO_CODECS)[number];

const MAGIC = new Uint8Array([0x4f, 0x62, 0x6a, 0x01]);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export type ContainerWriteOptions = {
  schema: AvroSchema;
  records: Iterable<unknown>;
  codec?: AvroCodec;
  /** Extra header entries; Iceberg puts its schema, partition spec and format version here. */
  metadata?: Record<string, string>;
  /** 16 bytes. Defaults to a digest of the content, so equal input gives byte-identical files. */
  syncMarker?: Uint8Array;
  recordsPerBlock?: number;
};

export type Container = {
  schema: AvroSchema;
  codec: string;
  metadata: Record<string, string>;
  records: unknown[];
};

function writeHeaderMap(out: ByteWriter, entries: Array<[string, Uint8Array]>) {
  out.long(entries.length);
  for (const [k, v] of entries) {
    out.string(k);
    out.bytes(v);
  }
  out.long(0);
}

export function writeContainer(options: ContainerWriteOptions): Uint8Array {
  const codec = options.codec ?? 'deflate';
  if (!(AVRO_CODECS as readonly string[]).includes(codec))
    throw new Error(`Avro codec ${JSON.stringify(codec)} is not supported for writing (use null or deflate)`);
  const resolved = resolveSchema(options.schema);
  const perBlock = options.recordsPerBlock ?? 4096;

  const blocks: Array<{ count: number; data: Uint8Array }> = [];
  let current = new ByteWriter();
  let count = 0;
  const flush = () => {
    if (count === 0) return;
    const raw = current.toBytes();
    blocks.push({ count, data: codec === 'deflate' ? new Uint8Array(deflateRawSync(raw)) : raw });
    current = new ByteWriter();
    count = 0;
  };
  let index = 0;
  for (const record of options.records) {
    encodeDatum(resolved, record, current, `record ${index++}`);
    if (++count >= perBlock) flush();
  }
  flush();

  const meta: Array<[string, Uint8Array]> = [
    ['avro.schema', utf8.encode(JSON.stringify(options.schema))],
    ['avro.codec', utf8.encode(codec)],
    ...Object.entries(options.metadata ?? {}).map(([k, v]): [string, Uint8Array] => [k, utf8.encode(v)]),
  ];
  let sync = options.syncMarker;
  if (!sync) {
    const hash = createHash('sha256');
    for (const [k, v] of meta) hash.update(k).update(v);
    for (const b of blocks) hash.update(b.data);
    sync = new Uint8Array(hash.digest().subarray(0, 16));
  }
  if (sync.length !== 16) throw new Error(`Avro sync marker must be 16 bytes, got ${sync.length}`);

  const out = new ByteWriter();
  out.raw(MAGIC);
  writeHeaderMap(out, meta);
  out.raw(sync);
  for (const b of blocks) {
    out.long(b.count);
    out.bytes(b.data);
    out.raw(sync);
  }
  return out.toBytes();
}

function decompress(codec: string, data: Uint8Array): Uint8Array {
  if (codec === 'null') return data;
  if (codec === 'deflate') return new Uint8Array(inflateRawSync(data));
  if (codec === 'snappy') {
    // Avro's snappy blocks end with a 4-byte CRC32 of the uncompressed data.
    const body = data.subarray(0, data.length - 4);
    const reader = new ByteReader(body);
    let length = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = reader.byte();
      length += (b & 0x7f) * shift;
      if ((b & 0x80) === 0) break;
    }
    const output = new Uint8Array(length);
    snappyUncompress(body, output);
    return output;
  }
  throw new Error(`Avro codec ${JSON.stringify(codec)} is not supported (null, deflate and snappy are)`);
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Reads a whole container file. Throws with the reason when the bytes are not one. */
export function readContainer(bytes: Uint8Array): Container {
  if (bytes.length < 4 || !equalBytes(bytes.subarray(0, 4), MAGIC))
    throw new Error('not an Avro object container file (bad magic)');
  const input = new ByteReader(bytes);
  input.raw(4);
  const metadata: Record<string, string> = {};
  input.blocks(() => {
    const key = input.string();
    metadata[key] = fromUtf8.decode(input.bytes());
  });
  const sync = input.raw(16).slice();
  const schemaJson = metadata['avro.schema'];
  if (schemaJson === undefined) throw new Error('Avro container header has no avro.schema');
  const schema = JSON.parse(schemaJson) as AvroSchema;
  const codec = metadata['avro.codec'] ?? 'null';
  delete metadata['avro.schema'];
  delete metadata['avro.codec'];
  const resolved = resolveSchema(schema);
  const records: unknown[] = [];
  while (input.remaining > 0) {
    const count = input.safeLong();
    const block = new ByteReader(decompress(codec, input.bytes()));
    for (let i = 0; i < count; i++) records.push(decodeDatum(resolved, block));
    if (block.remaining !== 0)
      throw new Error(`Avro block has ${block.remaining} bytes left after ${count} records`);
    if (!equalBytes(input.raw(16), sync)) throw new Error('Avro block is not followed by the sync marker');
  }
  return { schema, codec, metadata, records };
}
