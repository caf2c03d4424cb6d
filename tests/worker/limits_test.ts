import assert from "node:assert/strict";
import { ResponseLimitExceeded } from "../../lib/kube/limits.ts";
import {
  ABOVE_MAX_REQUEST_TIMEOUT,
  CallLimitError,
  checkRequestTimeout,
  DEFAULT_CALL_LIMITS,
  OVER_RESPONSE_LIMIT,
  overLimit,
} from "../../lib/worker/limits.ts";

Deno.test("DEFAULT_CALL_LIMITS: 64 MiB, 100000 events, 600 s", () => {
  assert.deepEqual(DEFAULT_CALL_LIMITS, {
    maxResponseBytes: 67108864,
    maxWatchEvents: 100000,
    maxRequestTimeoutSeconds: 600,
  });
  assert.deepEqual([OVER_RESPONSE_LIMIT, ABOVE_MAX_REQUEST_TIMEOUT], ["OKL01", "OKL02"]);
});

Deno.test("overLimit: names what went over, by how much, and the flag", () => {
  const bytes = overLimit(new ResponseLimitExceeded(67108864, "bytes"), "api");
  assert.equal(
    bytes.message,
    "the response exceeded 67108864 bytes (--max-response-bytes); it was not kept",
  );
  assert.equal(bytes.code, "OKL01");
  assert.equal(
    overLimit(new ResponseLimitExceeded(100000, "events"), "watch").message,
    "the watch exceeded 100000 events (--max-watch-events); it was not kept",
  );
});

Deno.test("checkRequestTimeout: up to the maximum passes; above it names both and the flag", () => {
  const limits = { maxRequestTimeoutSeconds: 600 };
  checkRequestTimeout(600_000, 0, limits);
  checkRequestTimeout(600_000 + 3_600_000, 3_600_000, limits);
  assert.throws(() => checkRequestTimeout(30_000 + 3_600_000, 0, limits), (error) => {
    assert.ok(error instanceof CallLimitError);
    assert.equal(error.code, "OKL02");
    assert.equal(
      error.message,
      "omni_kube.request_timeout of 3630 s is above the worker's maximum of 600 s " +
        "(--max-request-timeout); the call was not made",
    );
    return true;
  });
});
