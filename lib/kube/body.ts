/**
 * Reading a response body without ever holding a large one whole: a small body is returned as
 * text; once a body reaches a threshold, its bytes go to a sink as they arrive, undecoded.
 *
 * The body is read into buffers of our own (a BYOB reader): a network read is a few kilobytes,
 * and a default reader would hand each one over in a fresh buffer, leaving the garbage collector
 * far behind on a body of megabytes.
 *
 * Knows nothing about PostgreSQL.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { byobReader } from "./byob.ts";
import { ResponseLimitExceeded, untilAborted } from "./limits.ts";

/** Bounds on reading any body. */
export interface BodyLimits {
  /**
   * The most bytes a body may have, counted as they arrive: one more fails the read with
   * {@linkcode ResponseLimitExceeded} and cancels the body (and aborts a large body's sink).
   */
  maxBytes: number;
  /** Stops the read at once: it fails with the signal's reason and the body is cancelled. */
  signal?: AbortSignal;
}

/** How {@linkcode readBody} tells small from large, and where a large body goes. */
export interface LargeBodyOptions extends BodyLimits {
  /** A body of this many bytes or more is large; a large one goes to the sink in such pieces. */
  largeAt: number;
  /** Opens the sink of a large body; it receives every byte, in order, from the first. */
  openSink: () => Promise<WritableStream<Uint8Array>>;
}

/**
 * {@linkcode readBody} for a response; one whose length is announced and small is read whole by
 * `Response.text()`, which is quicker. One announced over the limit is not read at all.
 */
export async function readResponseBody(
  response: Response,
  options: LargeBodyOptions,
): Promise<string | null> {
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (length > options.maxBytes) {
    const error = new ResponseLimitExceeded(options.maxBytes, "bytes");
    await response.body?.cancel(error).catch(() => {});
    throw error;
  }
  if (!response.body || length < options.largeAt) {
    return await untilAborted(response.text(), options.signal);
  }
  return await readBody(response.body, options);
}

/** A response's body as text, of at most `maxBytes` (a Status, a short list). */
export async function readResponseText(response: Response, limits: BodyLimits): Promise<string> {
  const text = await readResponseBody(response, {
    ...limits,
    largeAt: Infinity,
    openSink: () => Promise.reject(new Error("unreachable: a text body has no sink")),
  });
  return text ?? "";
}

/** The first read's buffer: most bodies (single objects) fit. */
const FIRST_READ_BYTES = 16 * 1024;
/** The largest buffer of a read before the body is known to be large. */
const HEAD_READ_BYTES = 256 * 1024;

/**
 * A small body decoded as UTF-8 (invalid sequences replaced, as `Response.text()` does), or
 * `null` once a large body has gone to its sink and the sink has closed. The sink sets the pace:
 * the body is read no faster than the sink accepts it. A failure of either aborts the other.
 * A body over `maxBytes` fails as soon as its extra byte arrives: a large one's sink is aborted,
 * so that nothing it received is kept.
 */
export async function readBody(
  body: ReadableStream<Uint8Array>,
  { largeAt, openSink, maxBytes, signal }: LargeBodyOptions,
): Promise<string | null> {
  const reader = byobReader(body);
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let size = 0;
  const next = async (want: number) => {
    // One byte over the limit is enough to know the body is too large.
    const piece = await fill(reader, Math.min(want, maxBytes + 1 - size), signal);
    size += piece.bytes.length;
    if (size > maxBytes) throw new ResponseLimitExceeded(maxBytes, "bytes");
    return piece;
  };
  try {
    const head: Uint8Array[] = [];
    while (size < largeAt) {
      const { bytes, done } = await next(
        Math.min(size === 0 ? FIRST_READ_BYTES : HEAD_READ_BYTES, largeAt),
      );
      head.push(bytes);
      if (done) return new TextDecoder().decode(Buffer.concat(head, size));
    }
    writer = (await openSinkUnlessAborted(openSink, signal)).getWriter();
    const write = async (bytes: Uint8Array) => {
      // One piece is written while the next is read: wait only for the one before. A failed
      // write errors the sink, and `ready` or `close` reports it.
      await untilAborted(writer!.ready, signal);
      writer!.write(bytes).catch(() => {});
    };
    for (const bytes of head) await write(bytes);
    for (let done = false; !done;) {
      const piece = await next(largeAt);
      done = piece.done;
      if (piece.bytes.length > 0) await write(piece.bytes);
    }
    await writer.close();
    return null;
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    await writer?.abort(error).catch(() => {});
    throw error;
  }
}

/** The sink, unless `signal` aborts first: then one opened later is aborted at once. */
async function openSinkUnlessAborted(
  openSink: () => Promise<WritableStream<Uint8Array>>,
  signal: AbortSignal | undefined,
): Promise<WritableStream<Uint8Array>> {
  const opening = openSink();
  try {
    return await untilAborted(opening, signal);
  } catch (error) {
    opening.then((sink) => sink.abort(error)).catch(() => {});
    throw error;
  }
}

/** Reads into a new buffer of `size` bytes until it is full or the body ends. */
async function fill(
  reader: ReadableStreamBYOBReader,
  size: number,
  signal: AbortSignal | undefined,
): Promise<{ bytes: Uint8Array; done: boolean }> {
  let buffer = new ArrayBuffer(size);
  let filled = 0;
  while (filled < size) {
    // The read takes the buffer over and gives it back in `value`.
    const { done, value } = await untilAborted(
      reader.read(new Uint8Array(buffer, filled)),
      signal,
    );
    if (value) {
      buffer = value.buffer as ArrayBuffer;
      filled += value.byteLength;
    }
    if (done) return { bytes: new Uint8Array(buffer, 0, filled), done: true };
  }
  return { bytes: new Uint8Array(buffer), done: false };
}
