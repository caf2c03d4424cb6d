/**
 * Bounds on reading a response: a byte count kept as the bytes arrive, the error a read over its
 * bound fails with, and reads that end at once when their signal aborts (a synthetic or stalled
 * body need not follow the fetch's signal by itself).
 *
 * Knows nothing about PostgreSQL or the worker's flags.
 *
 * @module
 */

/** What a response limit counts. */
export type LimitUnit = "bytes" | "events";

/** A read would have kept more than its limit; what had been read is dropped. */
export class ResponseLimitExceeded extends Error {
  /** `limit` of `unit` is the most that may be kept. */
  constructor(readonly limit: number, readonly unit: LimitUnit) {
    super(`the response exceeded ${limit} ${unit}`);
    this.name = "ResponseLimitExceeded";
  }
}

/**
 * Bytes held for one response, counted as they arrive: reading code spends what it receives and
 * gives back what it drops, and the spend that would go over `max` throws.
 */
export class ByteBudget {
  #used = 0;

  /** At most `max` bytes may be held at once. */
  constructor(readonly max: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Counts `bytes` more; throws {@linkcode ResponseLimitExceeded} if that goes over `max`. */
  spend(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.max) throw new ResponseLimitExceeded(this.max, "bytes");
  }

  /** Gives back `bytes` that are no longer held. */
  refund(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/**
 * `promise`, or a rejection with `signal`'s reason as soon as it aborts, whichever comes first.
 * The promise lost to an abort is left to settle unobserved (a cancelled reader's read does).
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}
