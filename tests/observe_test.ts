import assert from "node:assert/strict";
import { createLogger, type Logger } from "../lib/observe.ts";

/** The lines `body` writes through console.error, which is restored afterwards. */
function captureStderr(body: () => void): string[] {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    body();
  } finally {
    console.error = original;
  }
  return lines;
}

const logAll = (log: Logger) => {
  log.debug("d");
  log.info("i");
  log.warn("w");
  log.error("e");
};

Deno.test("createLogger: writes one JSON line with time, level, message and fields", () => {
  const before = Date.now();
  const lines = captureStderr(() =>
    createLogger("debug").info("call done", { request: 42, path: "/api/v1/pods" })
  );
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("\n"));
  const entry = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(entry), ["time", "level", "message", "request", "path"]);
  assert.equal(entry.level, "info");
  assert.equal(entry.message, "call done");
  assert.equal(entry.request, 42);
  assert.equal(entry.path, "/api/v1/pods");
  assert.equal(new Date(entry.time).toISOString(), entry.time);
  assert.ok(Date.parse(entry.time) >= before - 1 && Date.parse(entry.time) <= Date.now());
});

Deno.test("createLogger: defaults to info and drops debug", () => {
  const lines = captureStderr(() => logAll(createLogger()));
  assert.deepEqual(lines.map((l) => JSON.parse(l).level), ["info", "warn", "error"]);
});

Deno.test("createLogger: writes only at or above the minimum level", () => {
  const levels = (minimum: "debug" | "info" | "warn" | "error") =>
    captureStderr(() => logAll(createLogger(minimum))).map((l) => JSON.parse(l).message);
  assert.deepEqual(levels("debug"), ["d", "i", "w", "e"]);
  assert.deepEqual(levels("info"), ["i", "w", "e"]);
  assert.deepEqual(levels("warn"), ["w", "e"]);
  assert.deepEqual(levels("error"), ["e"]);
});

Deno.test("createLogger: fields cannot overwrite time, level or message", () => {
  const [line] = captureStderr(() =>
    createLogger("info").info("real", { level: "debug", message: "spoofed", extra: 1 })
  );
  const entry = JSON.parse(line);
  assert.equal(entry.level, "info");
  assert.equal(entry.message, "real");
  assert.equal(entry.extra, 1);
});
