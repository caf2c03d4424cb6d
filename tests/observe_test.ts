import assert from "node:assert/strict";
import { createLogger } from "../lib/observe.ts";

Deno.test("createLogger: one JSON line per call at or above the level", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    const log = createLogger("info");
    log.debug("hidden");
    log.info("shown", { request: 7 });
    log.error("also shown");
  } finally {
    console.error = original;
  }
  const entries = lines.map((line) => JSON.parse(line));
  assert.deepEqual(entries.map((e) => [e.level, e.message]), [["info", "shown"], [
    "error",
    "also shown",
  ]]);
  assert.equal(entries[0].request, 7);
  assert.ok(!Number.isNaN(Date.parse(entries[0].time)));
});
