/**
 * RecordIO framing as the Mesos HTTP APIs use it: each record is
 * `<decimal length>\n<payload>`. The decoder accepts input split at any byte
 * boundary and bounds the record size so a bad peer cannot exhaust memory.
 */
import { BerthError } from './errors.js';

export function encodeRecord(payload: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return Buffer.concat([Buffer.from(`${body.length}\n`), body]);
}

export class RecordIODecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1; // payload length of the record being read, -1 while reading its header

  constructor(private readonly maxRecordBytes = 64 << 20) {}

  /** Feeds bytes; returns every record completed by them, in order. */
  push(chunk: Uint8Array): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.buffered += chunk.length;
    }
    const out: Buffer[] = [];
    for (;;) {
      if (this.expected < 0) {
        const buf = this.flatten();
        const nl = buf.indexOf(10);
        if (nl < 0) {
          if (buf.length > 20) throw new BerthError('BAD_MESSAGE', 'RecordIO: record header longer than 20 bytes');
          return out;
        }
        const header = buf.subarray(0, nl).toString('ascii');
        if (!/^\d+$/.test(header)) throw new BerthError('BAD_MESSAGE', `RecordIO: bad record length '${header.slice(0, 20)}'`);
        const len = Number(header);
        if (len > this.maxRecordBytes) throw new BerthError('TOO_LARGE', `RecordIO: record of ${len} bytes exceeds ${this.maxRecordBytes}`);
        this.expected = len;
        this.chunks = [buf.subarray(nl + 1)];
        this.buffered = buf.length - nl - 1;
      }
      if (this.buffered < this.expected) return out;
      const buf = this.flatten();
      out.push(Buffer.from(buf.subarray(0, this.expected)));
      this.chunks = [buf.subarray(this.expected)];
      this.buffered = buf.length - this.expected;
      this.expected = -1;
    }
  }

  /** Bytes of an unfinished record (0 at a clean record boundary). */
  get pending(): number { return this.buffered; }

  private flatten(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}
