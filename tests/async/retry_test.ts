import assert from "node:assert/strict";
import { MAX_DELAY_MS, parseRetryAfter, retryDelayMs, shouldRetry } from "../../lib/async/retry.ts";

const attempt = (attempts: number, retries: number, idempotent = true) => ({
  attempts,
  retries,
  idempotent,
});

Deno.test("shouldRetry: transport errors and 429/5xx of idempotent requests, while retries last", () => {
  for (const status of [undefined, 429, 500, 502, 503, 504]) {
    assert.equal(shouldRetry({ status }, attempt(1, 1)), true, `status ${status}`);
  }
  for (const status of [200, 201, 400, 404, 409, 501]) {
    assert.equal(shouldRetry({ status }, attempt(1, 1)), false, `status ${status}`);
  }
  // The last attempt allowed, a POST, and the worker's own refusals are never retried.
  assert.equal(shouldRetry({ status: 503 }, attempt(2, 1)), false);
  assert.equal(shouldRetry({ status: 503 }, attempt(1, 3, false)), false);
  assert.equal(shouldRetry({ refused: true }, attempt(1, 3)), false);
});

Deno.test("retryDelayMs: doubling from 0.5 s with ±50% jitter, capped", () => {
  assert.equal(retryDelayMs(1, undefined, 0, () => 0.5), 500);
  assert.equal(retryDelayMs(3, undefined, 0, () => 0.5), 2000);
  assert.equal(retryDelayMs(1, undefined, 0, () => 0), 250);
  assert.equal(retryDelayMs(1, undefined, 0, () => 0.999), 750);
  assert.equal(retryDelayMs(40, undefined, 0, () => 0.999), MAX_DELAY_MS);
});

Deno.test("retryDelayMs: Retry-After in seconds or as an HTTP date wins, capped", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  assert.equal(retryDelayMs(1, "3", now, () => 0), 3000);
  assert.equal(retryDelayMs(5, "Sun, 06 Dec 2026 10:00:10 GMT", now), 10_000);
  assert.equal(retryDelayMs(1, "86400", now), MAX_DELAY_MS);
  // Unreadable: the backoff.
  assert.equal(retryDelayMs(1, "soon", now, () => 0.5), 500);
});

Deno.test("parseRetryAfter: a date in the past is now; anything else is unreadable", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  assert.equal(parseRetryAfter("Sun, 06 Dec 2026 09:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter(" 7 ", now), 7000);
  assert.equal(parseRetryAfter("-1", now), undefined);
  assert.equal(parseRetryAfter("", now), undefined);
});
