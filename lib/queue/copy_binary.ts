/**
 * The bytes of PostgreSQL's binary COPY format for `omni_kube.response_piece (request_id bigint,
 * seq int, piece bytea)`: header, tuples and trailer, so that a body's chunks go to the server as
 * they came off the network, with no decoding or escaping.
 *
 * @module
 */

/** The start of a COPY in binary format: signature, flags, no header extension. */
export const COPY_BINARY_HEADER: Uint8Array = Uint8Array.of(
  ...new TextEncoder().encode("PGCOPY\n"),
  0xff,
  0x0d,
  0x0a,
  0x00,
  ...new Uint8Array(8),
);

/** The end of a COPY in binary format: a field count of -1. */
export const COPY_BINARY_TRAILER: Uint8Array = Uint8Array.of(0xff, 0xff);

/**
 * A tuple of (request_id bigint, seq int, piece bytea) up to the piece's bytes, which follow it
 * as they are: sending them apart from this header spares a copy of each piece.
 */
export function pieceHeader(id: number, seq: number, length: number): Uint8Array {
  const header = new DataView(new ArrayBuffer(2 + 4 + 8 + 4 + 4 + 4));
  header.setInt16(0, 3);
  header.setInt32(2, 8);
  header.setBigInt64(6, BigInt(id));
  header.setInt32(14, 4);
  header.setInt32(18, seq);
  header.setInt32(22, length);
  return new Uint8Array(header.buffer);
}
