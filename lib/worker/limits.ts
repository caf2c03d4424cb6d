/**
 * Limits per call: whatever a server sends, one call holds a bounded amount of memory (a stream
 * or a watch) or of the database (a large body's pieces), and lasts a bounded time. What the
 * caller sees when a limit is hit: a failed request with one of the SQLSTATEs here.
 *
 * @module
 */
import { ResponseLimitExceeded } from "../kube/limits.ts";

/** SQLSTATE of a response, stream or watch that went over `--max-response-bytes` or `--max-watch-events`. */
export const OVER_RESPONSE_LIMIT = "OKL01";
/** SQLSTATE of a call whose `omni_kube.request_timeout` is above `--max-request-timeout`. */
export const ABOVE_MAX_REQUEST_TIMEOUT = "OKL02";

/** The limits of one call (the worker's settings of the same names). */
export interface CallLimits {
  /** Bytes of a body, of a stream's lines or of a watch's events kept for one call. */
  maxResponseBytes: number;
  /** Events one watch keeps. */
  maxWatchEvents: number;
  /** The longest `omni_kube.request_timeout` served, in seconds (a watch's duration aside). */
  maxRequestTimeoutSeconds: number;
}

/** Defaults for {@linkcode CallLimits}. */
export const DEFAULT_CALL_LIMITS: CallLimits = {
  maxResponseBytes: 64 * 1024 * 1024,
  maxWatchEvents: 100_000,
  maxRequestTimeoutSeconds: 600,
};

/** A call that ended on one of the worker's limits: its caller gets `code`. */
export class CallLimitError extends Error {
  /** `code` is the SQLSTATE the caller should get. */
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = "CallLimitError";
  }
}

/** What a caller is told about a read that went over its limit. */
export function overLimit(error: ResponseLimitExceeded, kind: "api" | "watch"): CallLimitError {
  const flag = error.unit === "events" ? "--max-watch-events" : "--max-response-bytes";
  const what = kind === "watch" ? "the watch" : "the response";
  return new CallLimitError(
    `${what} exceeded ${error.limit} ${error.unit} (${flag}); it was not kept`,
    OVER_RESPONSE_LIMIT,
  );
}

/**
 * Refuses a call whose request timeout (its `timeoutMs` without a watch's own `durationMs`) is
 * above the maximum: it would hold its slot, and its response pieces, that long.
 */
export function checkRequestTimeout(
  timeoutMs: number,
  durationMs: number,
  limits: Pick<CallLimits, "maxRequestTimeoutSeconds">,
): void {
  const requestTimeoutMs = timeoutMs - durationMs;
  if (requestTimeoutMs > limits.maxRequestTimeoutSeconds * 1000) {
    throw new CallLimitError(
      `omni_kube.request_timeout of ${seconds(requestTimeoutMs)} is above the worker's maximum ` +
        `of ${limits.maxRequestTimeoutSeconds} s (--max-request-timeout); the call was not made`,
      ABOVE_MAX_REQUEST_TIMEOUT,
    );
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms) / 1000} s`;
}
