import assert from "node:assert/strict";
import { AsyncCalls } from "../../lib/async/runner.ts";
import type { AsyncRequest, AsyncResult } from "../../lib/async/statements.ts";
import type { RequestResult } from "../../lib/queue/results.ts";
import type { Running } from "../../lib/worker/call.ts";
import { claimedRequest, recordingLog } from "../worker/fakes.ts";

/** Async request `id` (a GET with no retries unless `fields` say otherwise). */
function asyncRequest(id: number, fields: Partial<AsyncRequest> = {}): AsyncRequest {
  return {
    ...claimedRequest({ id, locked: false }),
    attempts: 1,
    retries: 0,
    idempotent: true,
    credentialsLost: false,
    ...fields,
  };
}

/**
 * The async statements over an in-memory queue of `queued` requests, and calls that settle when
 * the test says so (`answer`), recording every claim, write and recovery.
 */
function fakeQueue(queued: AsyncRequest[]) {
  const claims: number[] = [];
  const written: AsyncResult[] = [];
  const recoveries: number[][] = [];
  const calls = new Map<number, { running: Running; answer(result: RequestResult): void }>();
  return {
    claims,
    written,
    recoveries,
    calls,
    statements: {
      claim(slots: number): Promise<AsyncRequest[]> {
        claims.push(slots);
        return Promise.resolve(queued.splice(0, slots));
      },
      complete(results: AsyncResult[]): Promise<number> {
        written.push(...results);
        return Promise.resolve(0);
      },
      recover(unsettled: number[]): Promise<{ recovered: number; callbacks: boolean }> {
        recoveries.push(unsettled);
        return Promise.resolve({ recovered: 0, callbacks: false });
      },
    },
    call(request: AsyncRequest, running: Running): Promise<RequestResult> {
      return new Promise((resolve) => {
        calls.set(request.id, { running, answer: resolve });
        running.abort.signal.addEventListener(
          "abort",
          () => resolve({ id: request.id, outcome: "failed", error: "aborted" }),
        );
      });
    },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function runner(queue: ReturnType<typeof fakeQueue>, concurrency: number) {
  return new AsyncCalls({
    statements: queue.statements,
    runCallback: () => Promise.resolve(null),
    call: (request, running) => queue.call(request, running),
    concurrency,
    log: recordingLog(),
  });
}

Deno.test("AsyncCalls: claims its slots and half as many again, and more as calls finish", async () => {
  const queue = fakeQueue(Array.from({ length: 9 }, (_, i) => asyncRequest(i + 1)));
  const calls = runner(queue, 4);
  calls.wake();
  await settle();
  assert.deepEqual(queue.claims, [6]);
  assert.deepEqual([...queue.calls.keys()], [1, 2, 3, 4]);
  queue.calls.get(1)!.answer({ id: 1, outcome: "response", status: 200, body: "{}", isJson: true });
  await settle();
  assert.deepEqual([...queue.calls.keys()], [1, 2, 3, 4, 5]);
  assert.deepEqual(queue.claims, [6, 1]);
  assert.equal(calls.running, 4);
  assert.deepEqual(queue.written.map((r) => r.id), [1]);
  await calls.stop(0);
});

Deno.test("AsyncCalls: a ready request takes a freed slot before the next claim answers", async () => {
  const queue = fakeQueue(Array.from({ length: 3 }, (_, i) => asyncRequest(i + 1)));
  let claimAnswered = Promise.resolve();
  const claim = queue.statements.claim;
  queue.statements.claim = async (slots) => {
    const claimed = await claim(slots);
    await claimAnswered;
    return claimed;
  };
  const calls = runner(queue, 2);
  calls.wake();
  await settle();
  assert.deepEqual([...queue.calls.keys()], [1, 2]);
  // The next claim is not answered yet: the slot freed by 1 is taken by 3, which was ready.
  let answerClaim!: () => void;
  claimAnswered = new Promise((resolve) => answerClaim = resolve);
  queue.calls.get(1)!.answer({ id: 1, outcome: "response", status: 200, body: "{}", isJson: true });
  await settle();
  assert.deepEqual([...queue.calls.keys()], [1, 2, 3]);
  assert.equal(calls.running, 2);
  answerClaim();
  await calls.stop(0);
});

Deno.test("AsyncCalls: at shutdown, ready requests are queued again unsent", async () => {
  const queue = fakeQueue(Array.from({ length: 3 }, (_, i) => asyncRequest(i + 1)));
  const calls = runner(queue, 2);
  calls.wake();
  await settle();
  assert.deepEqual([...queue.calls.keys()], [1, 2]);
  await calls.stop(0);
  assert.deepEqual([...queue.calls.keys()], [1, 2]);
  assert.deepEqual(queue.written.map((r) => r.id), [1, 2]);
  // The recovery queues again this worker's running requests outside those it names: 3.
  assert.deepEqual(queue.recoveries, [[]]);
});

Deno.test("AsyncCalls: a 503 of an idempotent request is retried later; a POST's is final", async () => {
  const queue = fakeQueue([
    asyncRequest(1, { retries: 2 }),
    asyncRequest(2, { retries: 2, method: "POST", idempotent: false }),
  ]);
  const calls = runner(queue, 4);
  calls.wake();
  await settle();
  const before = Date.now();
  for (const id of [1, 2]) {
    queue.calls.get(id)!.answer({
      id,
      outcome: "response",
      status: 503,
      body: "{}",
      isJson: true,
      retryAfter: "2",
    });
  }
  await settle();
  const [retried, final] = queue.written;
  assert.equal(retried.id, 1);
  assert.ok(retried.retryAt && retried.retryAt.getTime() >= before + 2000);
  assert.equal(final.id, 2);
  assert.equal(final.retryAt, undefined);
  await calls.stop(0);
});

Deno.test("AsyncCalls: a request whose credentials a crash took fails unsent (OKQ03)", async () => {
  const queue = fakeQueue([asyncRequest(1, { credentialsLost: true })]);
  const calls = runner(queue, 4);
  calls.wake();
  await settle();
  assert.equal(queue.calls.size, 0);
  assert.deepEqual(queue.written.map((r) => [r.id, r.outcome === "failed" && r.code]), [
    [1, "OKQ03"],
  ]);
  await calls.stop(0);
});

Deno.test("AsyncCalls: recovery spares what this worker sent and has not seen written", async () => {
  const queue = fakeQueue([asyncRequest(1), asyncRequest(2)]);
  const calls = runner(queue, 4);
  calls.wake();
  await settle();
  queue.calls.get(1)!.answer({ id: 1, outcome: "response", status: 200, body: "{}", isJson: true });
  await settle();
  await calls.heartbeat();
  assert.deepEqual(queue.recoveries, [[2]]);
  await calls.stop(0);
});

Deno.test("AsyncCalls: at shutdown, a GET in flight is queued again and a POST is of unknown outcome", async () => {
  const queue = fakeQueue([
    asyncRequest(1),
    asyncRequest(2, { method: "POST", idempotent: false }),
  ]);
  const calls = runner(queue, 4);
  calls.wake();
  await settle();
  await calls.stop(0);
  const [get, post] = queue.written;
  assert.equal(get.id, 1);
  assert.ok(get.retryAt !== undefined);
  assert.deepEqual([post.id, post.outcome === "failed" && post.code], [2, "OKQ02"]);
});
