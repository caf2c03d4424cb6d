/**
 * The bytes of PostgreSQL's binary COPY format, for tables whose values the worker has as bytes off
 * the network: `omni_kube.response_piece (request_id bigint, seq int, piece bytea)`, and a single
 * `jsonb` column. Header, tuples and trailer, so that the bytes go to the server as they came, with
 * no decoding or escaping.
 *
 * @module
 */
import type { Writable } from "node:stream";
import { once } from "node:events";
import { untilAborted } from "./kube/limits.ts";

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

/** Bytes before a `jsonb` tuple's JSON text: field count, length, jsonb's version byte (1). */
const JSONB_TUPLE_HEADER_BYTES = 2 + 4 + 1;

/**
 * Tuples of one `jsonb` column each, one per JSON text in `texts` (UTF-8 bytes), as one buffer.
 * (jsonb's binary form is a version byte, 1, then the text.)
 */
export function jsonbTuples(texts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const text of texts) size += JSONB_TUPLE_HEADER_BYTES + text.length;
  const tuples = new Uint8Array(size);
  const view = new DataView(tuples.buffer);
  let at = 0;
  for (const text of texts) {
    view.setInt16(at, 1);
    view.setInt32(at + 2, text.length + 1);
    view.setUint8(at + 6, 1);
    tuples.set(text, at + JSONB_TUPLE_HEADER_BYTES);
    at += JSONB_TUPLE_HEADER_BYTES + text.length;
  }
  return tuples;
}

/**
 * A binary COPY FROM STDIN under way on a postgres.js connection (`query.writable()`): the header
 * is sent at once, the trailer at the end. Writes wait only when postgres.js holds more than its
 * buffer's worth (Node stream back-pressure). The connection must run nothing else until it ends.
 */
export class BinaryCopy {
  #failure: Error | undefined;
  /** Settles once postgres.js has sent the COPY's end (CopyDone) and taken the connection out of it. */
  readonly #endSent = Promise.withResolvers<void>();

  private constructor(readonly stream: Writable) {
    stream.on("error", (error) => this.#failure ??= error);
    // postgres.js sends the end in the stream's `final`, after the last queued write; no event
    // says when, and a query sent before it would be refused (and, in a transaction, roll it back).
    const final = stream._final?.bind(stream);
    stream._final = (callback) => {
      final ? final(callback) : callback();
      this.#endSent.resolve();
    };
  }

  /** Starts the COPY that `writable` (a postgres.js query's `.writable()`) opens. */
  static async open(writable: Promise<Writable>): Promise<BinaryCopy> {
    const copy = new BinaryCopy(await writable);
    try {
      await copy.write(COPY_BINARY_HEADER);
    } catch (error) {
      copy.fail(error);
      throw error;
    }
    return copy;
  }

  /** Sends bytes of tuples; fails with the COPY's error if it has failed. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (!this.stream.write(bytes)) await once(this.stream, "drain");
  }

  /**
   * Sends the trailer and ends the COPY; settles once the server has taken it. `signal` bounds
   * that wait (postgres.js never reports a connection lost after the end of a COPY was sent); if
   * it aborts, the COPY is failed, which ends it unless its end has already been sent.
   */
  async end(signal?: AbortSignal): Promise<void> {
    try {
      await this.write(COPY_BINARY_TRAILER);
      await untilAborted(
        new Promise<void>((resolve, reject) =>
          this.stream.end((error?: Error | null) => error ? reject(error) : resolve())
        ),
        signal,
      );
    } catch (error) {
      this.fail(error);
      throw error;
    }
  }

  /**
   * Ends the COPY as {@linkcode end} does, then runs `next`, a statement on the same connection,
   * which the server runs once the COPY is over. postgres.js tells no one of a row the server
   * refuses after the COPY's end was sent (neither the end nor the query settles): `next` then
   * fails (25P02: the transaction is aborted), and this rejects with {@linkcode CopyRefused}.
   * `signal` bounds the whole wait.
   */
  async endThen(next: () => Promise<unknown>, signal: AbortSignal): Promise<void> {
    let endFailure: unknown;
    const ended = this.end(signal).catch((error) => endFailure = error ?? new Error("COPY failed"));
    await untilAborted(Promise.race([this.#endSent.promise, ended]), signal);
    if (endFailure) throw endFailure;
    try {
      await untilAborted(next(), signal);
    } catch (error) {
      await sleep(0);
      if (endFailure) throw endFailure;
      this.fail(error);
      throw (error as { code?: string }).code === IN_FAILED_TRANSACTION
        ? new CopyRefused(error)
        : error;
    }
    await ended;
    if (endFailure) throw endFailure;
  }

  /** Sends CopyFail: the server discards every tuple of this COPY. */
  fail(reason: unknown): void {
    this.stream.destroy(reason instanceof Error ? reason : new Error(String(reason)));
  }
}

/** The server refused the COPY after its end was sent; postgres.js reported only the aftermath. */
export class CopyRefused extends Error {
  constructor(cause: unknown) {
    super(
      "PostgreSQL refused a row of the COPY after its end was sent; the server's log names the row and why",
      { cause },
    );
    this.name = "CopyRefused";
  }
}

/** SQLSTATE of a statement sent in a transaction that an error aborted. */
const IN_FAILED_TRANSACTION = "25P02";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
