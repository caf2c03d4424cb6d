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

/** How {@linkcode readBody} tells small from large, and where a large body goes. */
export interface LargeBodyOptions {
  /** A body of this many bytes or more is large; a large one goes to the sink in such pieces. */
  largeAt: number;
  /** Opens the sink of a large body; it receives every byte, in order, from the first. */
  openSink: () => Promise<WritableStream<Uint8Array>>;
}

/**
 * {@linkcode readBody} for a response; one whose length is announced and small is read whole by
 * `Response.text()`, which is quicker.
 */
export async function readResponseBody(
  response: Response,
  options: LargeBodyOptions,
): Promise<string | null> {
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (!response.body || length < options.largeAt) return await response.text();
  return await readBody(response.body, options);
}

/** The first read's buffer: most bodies (single objects) fit. */
const FIRST_READ_BYTES = 16 * 1024;

/**
 * A small body decoded as UTF-8 (invalid sequences replaced, as `Response.text()` does), or
 * `null` once a large body has gone to its sink and the sink has closed. The sink sets the pace:
 * the body is read no faster than the sink accepts it. A failure of either aborts the other.
 */
export async function readBody(
  body: ReadableStream<Uint8Array>,
  { largeAt, openSink }: LargeBodyOptions,
): Promise<string | null> {
  const reader = body.getReader({ mode: "byob" });
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  try {
    const head: Uint8Array[] = [];
    let size = 0;
    while (size < largeAt) {
      const { bytes, done } = await fill(
        reader,
        size === 0 ? Math.min(FIRST_READ_BYTES, largeAt) : largeAt,
      );
      head.push(bytes);
      size += bytes.length;
      if (done) return new TextDecoder().decode(Buffer.concat(head, size));
    }
    writer = (await openSink()).getWriter();
    const write = async (bytes: Uint8Array) => {
      // One piece is written while the next is read: wait only for the one before. A failed
      // write errors the sink, and `ready` or `close` reports it.
      await writer!.ready;
      writer!.write(bytes).catch(() => {});
    };
    for (const bytes of head) await write(bytes);
    for (let done = false; !done;) {
      const piece = await fill(reader, largeAt);
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

/** Reads into a new buffer of `size` bytes until it is full or the body ends. */
async function fill(
  reader: ReadableStreamBYOBReader,
  size: number,
): Promise<{ bytes: Uint8Array; done: boolean }> {
  let buffer = new ArrayBuffer(size);
  let filled = 0;
  while (filled < size) {
    // The read takes the buffer over and gives it back in `value`.
    const { done, value } = await reader.read(new Uint8Array(buffer, filled));
    if (value) {
      buffer = value.buffer as ArrayBuffer;
      filled += value.byteLength;
    }
    if (done) return { bytes: new Uint8Array(buffer, 0, filled), done: true };
  }
  return { bytes: new Uint8Array(buffer), done: false };
}
