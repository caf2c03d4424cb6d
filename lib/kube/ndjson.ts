/**
 * Newline-delimited JSON from a byte stream: yields each non-empty line, as text or as the bytes
 * it came in, as soon as its newline arrives, without parsing it (PostgreSQL parses it once, as
 * jsonb).
 *
 * Lines are split on bytes (a newline byte is never part of a multi-byte UTF-8 character), so
 * the bytes a line holds are known exactly: a {@linkcode ByteBudget} is charged for every byte as
 * it arrives, a line that never ends included, and the read fails once it is spent.
 *
 * @module
 */
import { byobReader } from "./byob.ts";
import { type ByteBudget, untilAborted } from "./limits.ts";

/** How {@linkcode lines} and {@linkcode byteLines} read. */
export interface LineOptions {
  /**
   * Charged for every byte as it arrives; blank lines and line endings are given back at once,
   * a yielded line stays charged until its consumer refunds it. Over budget, the read fails with
   * `ResponseLimitExceeded`.
   */
  budget?: ByteBudget;
  /** Ends the read at once, failing with the signal's reason; the body is cancelled. */
  signal?: AbortSignal;
}

/** A line of a stream, as the bytes it came in. */
export interface ByteLine {
  /**
   * Its bytes, without the line ending and surrounding ASCII blanks: a view of the read buffer,
   * valid until the next line is asked for (copy it to keep it).
   */
  data: Uint8Array;
  /** The bytes it came in as, without its newline: what it holds of a budget. */
  bytes: number;
}

/** A line of a stream. */
export interface Line {
  /** Its text, trimmed. */
  text: string;
  /** The bytes it came in as, without its newline: what it holds of a budget. */
  bytes: number;
}

const NEWLINE = 0x0a;

/** The buffer every read of {@linkcode byteLines} fills, again and again. */
const READ_BUFFER_BYTES = 64 * 1024;

/** Space, tab, CR, LF. */
function isBlank(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}

/** `data` without the ASCII blanks at its ends (a view, not a copy). */
function trimBytes(data: Uint8Array): Uint8Array {
  let start = 0;
  let end = data.length;
  while (start < end && isBlank(data[start])) start++;
  while (end > start && isBlank(data[end - 1])) end--;
  return start === 0 && end === data.length ? data : data.subarray(start, end);
}

/**
 * The lines of `body` as bytes, never decoded: for a consumer that passes them on as they came
 * (into PostgreSQL) and reads only a few. Blank lines are skipped. The body is read into one
 * buffer, again and again, so a line is a view of it, valid until the next line is asked for;
 * one that spans reads is copied whole. The body is cancelled when the read stops early: on an
 * abort, over budget, or when the consumer stops iterating.
 */
export async function* byteLines(
  body: ReadableStream<Uint8Array>,
  { budget, signal }: LineOptions = {},
): AsyncGenerator<ByteLine> {
  const reader = byobReader(body);
  // Handed to each read and back with its bytes (a read transfers it).
  let buffer = new ArrayBuffer(READ_BUFFER_BYTES);
  // The start of a line whose newline has not arrived, in pieces as they came.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const take = (tail: Uint8Array): ByteLine => {
    const bytes = pendingBytes + tail.length;
    const whole = pending.length === 0 ? tail : concat([...pending, tail], bytes);
    pending = [];
    pendingBytes = 0;
    return { data: trimBytes(whole), bytes };
  };
  let finished = false;
  let failure: unknown;
  try {
    for (;;) {
      const { done, value } = await untilAborted(reader.read(new Uint8Array(buffer)), signal);
      if (done) break;
      buffer = value.buffer as ArrayBuffer;
      budget?.spend(value.length);
      let start = 0;
      for (let end = value.indexOf(NEWLINE); end >= 0; end = value.indexOf(NEWLINE, start)) {
        const line = take(value.subarray(start, end));
        start = end + 1;
        if (line.data.length > 0) {
          budget?.refund(1); // its newline
          yield line;
        } else budget?.refund(1 + line.bytes);
      }
      if (start < value.length) {
        // A copy: the next read overwrites the buffer.
        const tail = value.slice(start);
        pending.push(tail);
        pendingBytes += tail.length;
      }
    }
    finished = true;
    if (pendingBytes > 0) {
      const line = take(new Uint8Array());
      if (line.data.length > 0) yield line;
      else budget?.refund(line.bytes);
    }
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    // Closes the HTTP stream (or the connection) the body comes from.
    if (!finished) await reader.cancel(failure).catch(() => {});
  }
}

/**
 * The lines of `body`, decoded as UTF-8 (invalid sequences replaced), without their line
 * endings; blank lines are skipped. Each is decoded as it arrives, so no chunk outlives its lines.
 */
export async function* lines(
  body: ReadableStream<Uint8Array>,
  options: LineOptions = {},
): AsyncGenerator<Line> {
  const decoder = new TextDecoder();
  for await (const line of byteLines(body, options)) {
    const text = decoder.decode(line.data).trim();
    if (text) yield { text, bytes: line.bytes };
    else options.budget?.refund(line.bytes);
  }
}

/** The text of {@linkcode lines}: for a consumer that keeps every line it is given. */
export async function* splitLines(
  body: ReadableStream<Uint8Array>,
  options: LineOptions = {},
): AsyncGenerator<string> {
  for await (const line of lines(body, options)) yield line.text;
}

function concat(pieces: Uint8Array[], size: number): Uint8Array {
  const whole = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) {
    whole.set(piece, at);
    at += piece.length;
  }
  return whole;
}
