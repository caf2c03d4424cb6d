/**
 * Response bodies that never end, as a hostile or broken server sends them, and what a reader
 * did to them: bytes pulled, and whether (and why) it cancelled them.
 *
 * @module
 */

/** A body that never ends by itself, and what was done to it. */
export interface EndlessBody {
  /** A byte stream, as fetch gives. */
  body: ReadableStream<Uint8Array>;
  /** Bytes handed out so far. */
  readonly pulled: number;
  /** Whether the reader cancelled the body, and with what. */
  readonly cancelled: { reason: unknown } | undefined;
}

/**
 * A body that sends `chunk` again and again, forever; or with `stallAfter`, sends it that many
 * times and then nothing more, never ending, and ignoring every signal (only a cancel stops it).
 */
export function endlessBody(
  chunk: string | Uint8Array,
  { stallAfter = Infinity }: { stallAfter?: number } = {},
): EndlessBody {
  const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
  let pulled = 0;
  let sent = 0;
  let cancelled: { reason: unknown } | undefined;
  const never = new Promise<void>(() => {});
  const body = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      if (sent >= stallAfter) return await never;
      sent++;
      pulled += bytes.length;
      // A copy each time: enqueueing hands the buffer over.
      controller.enqueue(bytes.slice());
    },
    cancel(reason) {
      cancelled = { reason };
    },
  });
  return {
    body,
    get pulled() {
      return pulled;
    },
    get cancelled() {
      return cancelled;
    },
  };
}

/** Rejects if `promise` has not settled within `ms`: a read that should stop at once did not. */
export async function promptly<T>(promise: Promise<T>, ms = 2000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
