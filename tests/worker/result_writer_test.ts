import assert from "node:assert/strict";
import postgres from "postgres";
import type { RequestResult } from "../../lib/queue/results.ts";
import { ResultWriter } from "../../lib/worker/result_writer.ts";
import { recordingLog } from "./fakes.ts";

/** The error postgres.js raises when the server refuses a statement. */
function refusal(message: string): Error {
  // Made by hand: postgres.js builds these from a server message; only the class matters here.
  return Object.setPrototypeOf(new Error(message), postgres.PostgresError.prototype);
}

/**
 * The result statements and the lock release, as the writer calls them. Each `complete` waits
 * for `gate` (when set) and then throws what `fail` says for its results, if anything.
 */
function fakeStatements() {
  const completed: { ids: number[]; tolerant: boolean }[] = [];
  const written: RequestResult[][] = [];
  const released: number[][] = [];
  const state = {
    gate: undefined as Promise<void> | undefined,
    fail: (_results: RequestResult[], _tolerant: boolean): Error | undefined => undefined,
  };
  return {
    completed,
    written,
    released,
    state,
    results: {
      async complete(results: RequestResult[], { tolerant = false } = {}): Promise<void> {
        completed.push({ ids: results.map((r) => r.id), tolerant });
        written.push(results);
        await state.gate;
        const error = state.fail(results, tolerant);
        if (error) throw error;
      },
    },
    release(ids: number[]): Promise<void> {
      released.push(ids);
      return Promise.resolve();
    },
  };
}

const ok = (id: number): RequestResult => ({
  id,
  outcome: "response",
  status: 200,
  body: "{}",
  isJson: true,
});

Deno.test("ResultWriter: results arriving during a write go in the next batch", async () => {
  const fake = fakeStatements();
  const writer = new ResultWriter({ ...fake, log: recordingLog() });
  let open!: () => void;
  fake.state.gate = new Promise((resolve) => open = resolve);
  const first = writer.write(ok(1));
  const second = writer.write(ok(2));
  const third = writer.write(ok(3));
  assert.equal(writer.pending, 2);
  open();
  await Promise.all([first, second, third]);
  assert.deepEqual(fake.completed, [{ ids: [1], tolerant: false }, {
    ids: [2, 3],
    tolerant: false,
  }]);
  // Each batch's locks are released together with it.
  assert.deepEqual(fake.released, [[1], [2, 3]]);
  assert.equal(writer.pending, 0);
});

Deno.test("ResultWriter: a lost session keeps the batch for the next flush", async () => {
  const fake = fakeStatements();
  const log = recordingLog();
  const writer = new ResultWriter({ ...fake, log });
  fake.state.fail = () => new Error("connection closed");
  await writer.write(ok(1));
  assert.equal(writer.pending, 1);
  assert.deepEqual(log.lines, ["writing results failed; will retry"]);
  fake.state.fail = () => undefined;
  await writer.write(ok(2));
  assert.deepEqual(fake.completed.at(-1), { ids: [1, 2], tolerant: false });
  assert.equal(writer.pending, 0);
});

Deno.test("ResultWriter: a refused batch is written one by one, a refused result as failed", async () => {
  const fake = fakeStatements();
  const log = recordingLog();
  const writer = new ResultWriter({ ...fake, log });
  fake.state.fail = (results, tolerant) =>
    !tolerant && results.length > 1
      ? refusal("invalid input syntax for type json")
      : results.some((r) => r.id === 2 && r.outcome !== "failed")
      ? refusal("unsupported Unicode escape sequence")
      : undefined;
  const results = [ok(1), ok(2), ok(3)];
  let open!: () => void;
  fake.state.gate = new Promise((resolve) => open = resolve);
  const writes = [writer.write(ok(0)), ...results.map((r) => writer.write(r))];
  open();
  await Promise.all(writes);
  fake.state.gate = undefined;
  assert.deepEqual(fake.completed, [
    { ids: [0], tolerant: false },
    { ids: [1, 2, 3], tolerant: false },
    { ids: [1], tolerant: true },
    { ids: [2], tolerant: true },
    { ids: [2], tolerant: false },
    { ids: [3], tolerant: true },
  ]);
  assert.deepEqual(fake.written[4], [{
    id: 2,
    outcome: "failed",
    error: "the response could not be stored: unsupported Unicode escape sequence",
  }]);
  assert.deepEqual(log.lines, ["result refused by the database"]);
  assert.equal(writer.pending, 0);
});

Deno.test("ResultWriter: a session lost while writing one by one keeps the rest", async () => {
  const fake = fakeStatements();
  const log = recordingLog();
  const writer = new ResultWriter({ ...fake, log });
  // The batch is refused; writing one by one, the server shuts down at the second.
  fake.state.fail = (results, tolerant) =>
    !tolerant
      ? refusal("invalid input syntax for type json")
      : results[0].id === 2
      ? Object.assign(refusal("terminating connection due to administrator command"), {
        code: "57P01",
      })
      : undefined;
  let open!: () => void;
  fake.state.gate = new Promise((resolve) => open = resolve);
  const writes = [writer.write(ok(0)), writer.write(ok(2)), writer.write(ok(3))];
  open();
  await Promise.all(writes);
  // Result 2 and 3 are kept, not recorded as failed.
  assert.equal(writer.pending, 2);
  assert.ok(!fake.written.flat().some((r) => r.outcome === "failed"));
  assert.ok(log.lines.length > 0);
  assert.ok(log.lines.every((line) => line === "writing results failed; will retry"));
});

Deno.test("ResultWriter.flush: with nothing pending, writes nothing", async () => {
  const fake = fakeStatements();
  const writer = new ResultWriter({ ...fake, log: recordingLog() });
  await writer.flush();
  assert.deepEqual(fake.completed, []);
});
