import { Readable } from 'node:stream';
import avsc from 'avsc';

/**
 * Avro containers read by avsc, a reader that shares no code with ours: what another engine would see
 * of the manifests and manifest lists we write.
 */

// avsc reads longs as JS numbers and refuses values above 2^53 (snapshot ids): read them as bigint.
const bigLong = avsc.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(n);
    return buf;
  },
  fromJSON: BigInt,
  toJSON: Number,
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

/** An avsc type for a schema, its longs as bigint. */
export const withBigLongs = (schema: unknown) =>
  avsc.Type.forSchema(schema as avsc.Schema, { registry: { long: bigLong } });

/** A container's records and its header metadata (`avro.schema`, `avro.codec`, our key-values). */
export async function readWithAvsc(
  bytes: Uint8Array,
): Promise<{ records: Array<Record<string, unknown>>; meta: Record<string, Buffer> }> {
  const decoder = new avsc.streams.BlockDecoder({ parseHook: withBigLongs });
  const records: Array<Record<string, unknown>> = [];
  let meta: Record<string, Buffer> = {};
  decoder.on('metadata', (_type: unknown, _codec: string, header: { meta: Record<string, Buffer> }) => {
    meta = header.meta;
  });
  await new Promise<void>((resolve, reject) => {
    decoder
      .on('data', (r: Record<string, unknown>) => records.push(r))
      .on('end', resolve)
      .on('error', reject);
    Readable.from([Buffer.from(bytes)]).pipe(decoder);
  });
  return { records, meta };
}
