/**
 * Avro's binary primitives: zig-zag varints, little-endian IEEE floats, length-prefixed bytes.
 * Longs are written from `number` or `bigint` and always read back as `bigint`, so 64-bit ids survive.
 */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_LONG = -(2n ** 63n);
const MAX_LONG = 2n ** 63n - 1n;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class ByteWriter {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(extra: number) {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number) {
    this.ensure(1);
    this.buf[this.length++] = b;
  }

  raw(bytes: Uint8Array) {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** A zig-zag varint; `number` inputs must be safe integers, larger values come as `bigint`. */
  long(value: number | bigint) {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new RangeError(`Avro long: ${value} is not a safe integer`);
      // Arithmetic rather than bit operators: JS bit operators truncate to 32 bits.
      let n = value >= 0 ? value * 2 : -value * 2 - 1;
      while (n >= 0x80) {
        this.byte((n % 0x80) | 0x80);
        n = Math.floor(n / 0x80);
      }
      this.byte(n);
      return;
    }
    if (value < MIN_LONG || value > MAX_LONG) throw new RangeError(`Avro long: ${value} is outside 64 bits`);
    let n = value >= 0n ? value << 1n : (-value << 1n) - 1n;
    while (n >= 0x80n) {
      this.byte(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.byte(Number(n));
  }

  int(value: number) {
    if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
      throw new RangeError(`Avro int: ${value} is not a 32-bit integer`);
    this.long(value);
  }

  float(value: number) {
    this.ensure(4);
    this.view.setFloat32(this.length, value, true);
    this.length += 4;
  }

  double(value: number) {
    this.ensure(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  bytes(value: Uint8Array) {
    this.long(value.length);
    this.raw(value);
  }

  string(value: string) {
    this.bytes(encoder.encode(value));
  }

  toBytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export class ByteReader {
  private readonly view: DataView;
  pos = 0;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining() {
    return this.buf.length - this.pos;
  }

  private need(n: number) {
    if (this.pos + n > this.buf.length)
      throw new RangeError(
        `Avro data ends early: need ${n} bytes at offset ${this.pos} of ${this.buf.length}`,
      );
  }

  byte(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  long(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
      if (shift > 63n) throw new RangeError('Avro varint is longer than 10 bytes');
    }
    return result & 1n ? -(result >> 1n) - 1n : result >> 1n;
  }

  /** A long that callers use as a length or count: must fit a safe integer. */
  safeLong(): number {
    const v = this.long();
    if (v > MAX_SAFE || v < -MAX_SAFE) throw new RangeError(`Avro count ${v} is too large`);
    return Number(v);
  }

  /**
   * Reads the blocks of an Avro array or map, calling `item` once per element. A block is a count
   * (negative when the block's byte size follows, which we do not need); a zero count ends them.
   */
  blocks(item: () => void): void {
    for (let n = this.safeLong(); n !== 0; n = this.safeLong()) {
      if (n < 0) {
        n = -n;
        this.safeLong();
      }
      for (let i = 0; i < n; i++) item();
    }
  }

  int(): number {
    let result = 0;
    let factor = 1;
    for (let i = 0; ; i++) {
      const b = this.byte();
      result += (b & 0x7f) * factor;
      if ((b & 0x80) === 0) break;
      factor *= 0x80;
      if (i >= 4) throw new RangeError('Avro int varint is longer than 5 bytes');
    }
    const value = result % 2 === 1 ? -(result + 1) / 2 : result / 2;
    if (value < -(2 ** 31) || value >= 2 ** 31) throw new RangeError(`Avro int ${value} is outside 32 bits`);
    return value;
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bytes(): Uint8Array {
    const n = this.safeLong();
    if (n < 0) throw new RangeError(`Avro bytes length ${n} is negative`);
    return this.raw(n);
  }

  string(): string {
    return decoder.decode(this.bytes());
  }
}
