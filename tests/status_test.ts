import assert from "node:assert/strict";
import { table } from "../lib/status.ts";
import { statusClass } from "../lib/metrics.ts";

Deno.test("table: columns padded to the widest cell, no trailing spaces", () => {
  assert.equal(
    table(["state", "requests"], [["queued", "3"], ["done", "1532"]]),
    "state   requests\nqueued  3\ndone    1532",
  );
});

Deno.test("statusClass: HTTP classes and transport errors", () => {
  assert.equal(statusClass(200), "2xx");
  assert.equal(statusClass(404), "4xx");
  assert.equal(statusClass(503), "5xx");
  assert.equal(statusClass(undefined), "transport_error");
});
