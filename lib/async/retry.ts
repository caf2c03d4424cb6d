/**
 * When an async call is tried again: which outcomes are worth another attempt, and how long to
 * wait before it (exponential backoff with jitter, or what the server's `Retry-After` asks).
 *
 * @module
 */

/** Statuses after which the same request may succeed: throttled, or the server failing for now. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/** The first retry's delay before jitter; each further one doubles it. */
const BASE_DELAY_MS = 500;
/** The longest backoff, and the longest `Retry-After` honoured. */
export const MAX_DELAY_MS = 5 * 60 * 1000;

/** What an attempt ended with, as far as retrying goes. */
export interface AttemptOutcome {
  /** The HTTP status, or undefined when the call got no answer (a transport error). */
  status?: number;
  /** The worker refused the call itself (a limit of its own): trying again cannot help. */
  refused?: boolean;
  /** The answer's `Retry-After` header, if it had one. */
  retryAfter?: string;
}

/**
 * Whether an attempt should be followed by another: the method is idempotent, retries are left,
 * and the call got no answer or a retryable status.
 */
export function shouldRetry(
  outcome: AttemptOutcome,
  attempt: { idempotent: boolean; attempts: number; retries: number },
): boolean {
  if (!attempt.idempotent || attempt.attempts > attempt.retries || outcome.refused) return false;
  return outcome.status === undefined || RETRYABLE_STATUSES.has(outcome.status);
}

/**
 * Milliseconds until attempt `attempts + 1`: the server's `Retry-After` (seconds or an HTTP date)
 * when it gave one, else 0.5 s doubled per attempt made, each with ±50% jitter so that requests
 * that failed together do not return together; at most {@linkcode MAX_DELAY_MS}.
 */
export function retryDelayMs(
  attempts: number,
  retryAfter: string | undefined,
  now: number = Date.now(),
  random: () => number = Math.random,
): number {
  const asked = retryAfter === undefined ? undefined : parseRetryAfter(retryAfter, now);
  if (asked !== undefined) return Math.min(asked, MAX_DELAY_MS);
  const backoff = Math.min(BASE_DELAY_MS * 2 ** Math.max(attempts - 1, 0), MAX_DELAY_MS);
  return Math.min(Math.round(backoff * (0.5 + random())), MAX_DELAY_MS);
}

/** A `Retry-After` value in milliseconds from `now`; undefined when it is neither form. */
export function parseRetryAfter(value: string, now: number): number | undefined {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its day and month (V8 alone would read "-1" as a date too).
  const date = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(date) ? undefined : Math.max(date - now, 0);
}
