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

/** Writes the header of a `jsonb` tuple whose JSON text is `textBytes` long at `at` of `view`. */
function writeJsonbTupleHeader(view: DataView, at: number, textBytes: number): void {
  view.setInt16(at, 1);
  view.setInt32(at + 2, textBytes + 1);
  view.setUint8(at + 6, 1);
}

/** What each of the two buffers of a {@linkcode JsonbTupleWriter} holds. */
const TUPLE_BUFFER_BYTES = 64 * 1024;

/**
 * Tuples of one `jsonb` column, sent to a {@linkcode BinaryCopy} through two buffers of a fixed
 * size that take turns: one fills while postgres.js takes the other. However many objects a list
 * has, they pass through the same two buffers, and nothing is allocated per object. (jsonb's
 * binary form is a version byte, 1, then the text.)
 */
export class JsonbTupleWriter {
  readonly #buffers: Uint8Array[];
  readonly #views: DataView[];
  /** Per buffer, its send while postgres.js has not yet taken its bytes. */
  readonly #sending: (Promise<void> | undefined)[] = [undefined, undefined];
  #filling = 0;
  #at = 0;

  constructor(readonly copy: BinaryCopy, bufferBytes: number = TUPLE_BUFFER_BYTES) {
    this.#buffers = [new Uint8Array(bufferBytes), new Uint8Array(bufferBytes)];
    this.#views = this.#buffers.map((buffer) => new DataView(buffer.buffer));
  }

  /**
   * Adds a tuple of `text`, a JSON text's UTF-8 bytes. They are copied before this returns,
   * unless it returns a promise (the next buffer is still on its way): then they are copied
   * before it settles, and the caller keeps them as they are and adds nothing until then. Fails
   * with the COPY's error once it has failed.
   */
  add(text: Uint8Array): Promise<void> | undefined {
    const size = JSONB_TUPLE_HEADER_BYTES + text.length;
    if (this.#at + size > this.#buffers[this.#filling].length) {
      this.#send();
      const busy = this.#sending[this.#filling];
      if (busy || size > this.#buffers[this.#filling].length) return this.#addWhenFree(text, busy);
    }
    this.#put(text);
    return undefined;
  }

  /** Sends what is gathered; settles once postgres.js has taken every byte added. */
  async flush(): Promise<void> {
    this.#send();
    await Promise.all(this.#sending);
  }

  async #addWhenFree(text: Uint8Array, busy: Promise<void> | undefined): Promise<void> {
    await busy;
    if (JSONB_TUPLE_HEADER_BYTES + text.length <= this.#buffers[this.#filling].length) {
      return this.#put(text);
    }
    // Larger than a buffer: its header, then the text itself, which is the caller's until taken.
    const header = new DataView(new ArrayBuffer(JSONB_TUPLE_HEADER_BYTES));
    writeJsonbTupleHeader(header, 0, text.length);
    await this.copy.write(new Uint8Array(header.buffer));
    await this.copy.writeTaken(text);
  }

  #put(text: Uint8Array): void {
    writeJsonbTupleHeader(this.#views[this.#filling], this.#at, text.length);
    this.#buffers[this.#filling].set(text, this.#at + JSONB_TUPLE_HEADER_BYTES);
    this.#at += JSONB_TUPLE_HEADER_BYTES + text.length;
  }

  /** Starts sending the buffer being filled, and turns to the other. */
  #send(): void {
    if (this.#at === 0) return;
    const sending = this.#filling;
    const sent = this.copy.writeTaken(this.#buffers[sending].subarray(0, this.#at));
    this.#sending[sending] = sent;
    // Its failure is the COPY's, which the next add or flush reports.
    sent.then(() => {
      if (this.#sending[sending] === sent) this.#sending[sending] = undefined;
    }, () => {});
    this.#filling = 1 - sending;
    this.#at = 0;
  }
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

  /**
   * Sends bytes of tuples; fails with the COPY's error if it has failed. The bytes may still be
   * queued when this settles: they must not change afterwards.
   */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (!this.stream.write(bytes)) await once(this.stream, "drain");
  }

  /**
   * Sends bytes that the caller will write over: settles once postgres.js has taken them (and
   * sent them, or queued them for the socket), not when they are merely queued in the stream.
   * Fails with the COPY's error, also when the stream is destroyed while postgres.js holds the
   * write (it then never calls it back).
   */
  writeTaken(bytes: Uint8Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const closed = () => reject(this.#failure ?? new Error("the COPY's stream was closed"));
      this.stream.once("close", closed);
      this.stream.write(bytes, (error) => {
        this.stream.off("close", closed);
        error ? reject(error) : resolve();
      });
    });
  }

  /**
   * Sends the trailer and ends the COPY; settles once the server has taken it. `signal` bounds
   * that wait (postgres.js may never report a connection lost after the end of a COPY was sent);
   * if it aborts, the COPY is failed, which ends it unless its end has already been sent.
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
   * which the server runs once the COPY is over. A row the server refuses after the COPY's end was
   * sent fails the end with the server's error; a postgres.js that tells no one of it (3.x settled
   * neither the end nor the query) fails `next` instead (25P02: the transaction is aborted), and
   * this rejects with {@linkcode CopyRefused}. `signal` bounds the whole wait.
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
