import assert from "node:assert/strict";
import { readBody, readResponseBody, readResponseText } from "../../lib/kube/body.ts";
import { ResponseLimitExceeded } from "../../lib/kube/limits.ts";
import { endlessBody, promptly } from "./fakes.ts";

const encoder = new TextEncoder();
/** A threshold of 100 bytes, and a limit no test here comes near unless it says otherwise. */
const roomy = { largeAt: 100, maxBytes: 1024 * 1024 };

/** Why the last stream made by {@linkcode streamOf} was cancelled, if it was. */
let cancelledWith: unknown;

/** A byte stream (as fetch gives) that delivers `chunks` one by one, then fails with `failure`. */
function streamOf(chunks: (string | Uint8Array)[], failure?: Error): ReadableStream<Uint8Array> {
  const queue = chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c);
  cancelledWith = undefined;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const next = queue.shift();
      if (next) controller.enqueue(next);
      else if (failure) controller.error(failure);
      else {
        controller.close();
        controller.byobRequest?.respond(0); // ends the read waiting on it
      }
    },
    cancel(reason) {
      cancelledWith = reason;
    },
  });
}

/** A sink that records the bytes written to it, slowly, and whether it was closed or aborted. */
function recordingSink({ delayMs = 0, failAt = -1 } = {}) {
  const chunks: Uint8Array[] = [];
  const state = { opened: 0, closed: false, aborted: undefined as unknown };
  return {
    chunks,
    state,
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
    openSink: () => {
      state.opened++;
      return Promise.resolve(
        new WritableStream<Uint8Array>({
          write: async (chunk) => {
            await new Promise((resolve) => setTimeout(resolve, delayMs));
            if (chunks.length === failAt) throw new Error("disk full");
            chunks.push(chunk);
          },
          close: () => {
            state.closed = true;
          },
          abort: (reason) => {
            state.aborted = reason;
          },
        }),
      );
    },
  };
}

Deno.test("readBody: a small body comes back as text and no sink is opened", async () => {
  const sink = recordingSink();
  const text = await readBody(streamOf(['{"kind":', '"Namespace"}']), { ...roomy, ...sink });
  assert.equal(text, '{"kind":"Namespace"}');
  assert.equal(sink.state.opened, 0);
});

Deno.test("readBody: an empty body is empty text", async () => {
  assert.equal(await readBody(streamOf([]), { ...roomy, ...recordingSink() }), "");
});

Deno.test("readBody: multi-byte characters split across chunks decode whole", async () => {
  const original = "café 😀 ünï";
  const chunks = Array.from(encoder.encode(original), (b) => Uint8Array.of(b));
  assert.equal(await readBody(streamOf(chunks), { ...roomy, ...recordingSink() }), original);
});

Deno.test("readBody: invalid UTF-8 in a small body is replaced, as Response.text() does", async () => {
  const bytes = Uint8Array.of(0x7b, 0xff, 0x7d);
  const expected = await new Response(bytes).text();
  assert.equal(await readBody(streamOf([bytes]), { ...roomy, ...recordingSink() }), expected);
});

Deno.test("readBody: a large body goes to the sink whole and in order, then it is closed", async () => {
  const chunks = Array.from({ length: 50 }, (_, i) => `chunk ${i}; ünï 😀 `);
  const sink = recordingSink({ delayMs: 1 });
  assert.equal(await readBody(streamOf(chunks), { ...roomy, ...sink }), null);
  assert.equal(sink.state.opened, 1);
  assert.equal(sink.text(), chunks.join(""));
  // Pieces of the threshold's size, whatever the network's chunks were.
  assert.ok(sink.chunks.slice(0, -1).every((c) => c.length === 100));
  assert.equal(sink.state.closed, true);
});

Deno.test("readBody: a failing sink fails the read and cancels the body", async () => {
  const chunks = Array.from({ length: 20 }, () => "x".repeat(40));
  const sink = recordingSink({ failAt: 5 });
  await assert.rejects(readBody(streamOf(chunks), { ...roomy, ...sink }), {
    message: "disk full",
  });
  assert.equal(sink.chunks.length, 5);
  assert.equal(sink.state.closed, false);
  assert.equal((cancelledWith as Error)?.message, "disk full");
});

Deno.test("readBody: a body that fails midway fails the read and aborts the sink", async () => {
  const chunks = Array.from({ length: 10 }, () => "x".repeat(40));
  const sink = recordingSink();
  await assert.rejects(
    readBody(streamOf(chunks, new Error("connection reset")), { ...roomy, ...sink }),
    { message: "connection reset" },
  );
  assert.equal(sink.state.closed, false);
  assert.equal((sink.state.aborted as Error)?.message, "connection reset");
});

Deno.test("readBody: a sink that cannot be opened fails the read", async () => {
  await assert.rejects(
    readBody(streamOf(["x".repeat(200), "y"]), {
      ...roomy,
      openSink: () => Promise.reject(new Error("too many connections")),
    }),
    { message: "too many connections" },
  );
  assert.equal((cancelledWith as Error)?.message, "too many connections");
});

Deno.test("readResponseBody: an announced small length is read whole; others by size", async () => {
  const body = "x".repeat(150);
  const response = (length?: number) =>
    new Response(streamOf([body.slice(0, 70), body.slice(70)]), {
      headers: length === undefined ? {} : { "content-length": String(length) },
    });
  const announcedSmall = recordingSink();
  assert.equal(await readResponseBody(response(50), { ...roomy, ...announcedSmall }), body);
  assert.equal(announcedSmall.state.opened, 0);
  for (const length of [150, undefined]) {
    const sink = recordingSink();
    assert.equal(await readResponseBody(response(length), { ...roomy, ...sink }), null);
    assert.equal(sink.text(), body);
  }
});

Deno.test("readBody: a body of exactly the limit is kept; one byte more fails", async () => {
  const limits = { largeAt: 100, maxBytes: 50 };
  assert.equal(
    await readBody(streamOf(["x".repeat(30), "x".repeat(20)]), { ...limits, ...recordingSink() }),
    "x".repeat(50),
  );
  const sink = recordingSink();
  await assert.rejects(
    readBody(streamOf(["x".repeat(30), "x".repeat(21)]), { ...limits, ...sink }),
    (error) => error instanceof ResponseLimitExceeded && error.limit === 50,
  );
  assert.ok(cancelledWith instanceof ResponseLimitExceeded);
  assert.equal(sink.state.opened, 0);
});

Deno.test("readBody: an endless small-mode body stops at the limit, as the bytes arrive", async () => {
  const endless = endlessBody("x".repeat(1000));
  await assert.rejects(
    promptly(
      readBody(endless.body, { largeAt: 1024 * 1024, maxBytes: 10_000, ...recordingSink() }),
    ),
    ResponseLimitExceeded,
  );
  // One byte past the limit tells: no more was asked for.
  assert.ok(endless.pulled <= 10_000 + 1000, `${endless.pulled} bytes read`);
  assert.ok(endless.cancelled?.reason instanceof ResponseLimitExceeded);
});

Deno.test("readBody: an endless large body stops at the limit and its sink is aborted", async () => {
  const endless = endlessBody("y".repeat(4096));
  const sink = recordingSink();
  await assert.rejects(
    promptly(readBody(endless.body, { largeAt: 1000, maxBytes: 100_000, ...sink })),
    ResponseLimitExceeded,
  );
  assert.equal(sink.state.opened, 1);
  assert.equal(sink.state.closed, false);
  assert.ok(sink.state.aborted instanceof ResponseLimitExceeded);
  assert.ok(sink.chunks.reduce((n, c) => n + c.length, 0) <= 100_000);
  assert.ok(endless.cancelled?.reason instanceof ResponseLimitExceeded);
});

Deno.test("readBody: an abort stops a stalled read at once, small or large", async () => {
  for (const largeAt of [1024 * 1024, 1000]) {
    const stalled = endlessBody("z".repeat(600), { stallAfter: 3 });
    const sink = recordingSink();
    const abort = new AbortController();
    const read = readBody(stalled.body, {
      largeAt,
      maxBytes: 1024 * 1024,
      signal: abort.signal,
      ...sink,
    });
    setTimeout(() => abort.abort(new Error("timed out")), 20);
    await assert.rejects(promptly(read), { message: "timed out" });
    assert.equal((stalled.cancelled?.reason as Error)?.message, "timed out");
    if (largeAt === 1000) assert.equal((sink.state.aborted as Error)?.message, "timed out");
    else assert.equal(sink.state.opened, 0);
  }
});

Deno.test("readBody: an abort while waiting for a sink fails the read; the sink is aborted when it comes", async () => {
  const abort = new AbortController();
  const opening = Promise.withResolvers<WritableStream<Uint8Array>>();
  let abortedWith: unknown;
  const read = readBody(streamOf(["x".repeat(150)]), {
    largeAt: 100,
    maxBytes: 1000,
    signal: abort.signal,
    openSink: () => opening.promise,
  });
  setTimeout(() => abort.abort(new Error("cancelled")), 10);
  await assert.rejects(promptly(read), { message: "cancelled" });
  opening.resolve(new WritableStream({ abort: (reason) => void (abortedWith = reason) }));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal((abortedWith as Error)?.message, "cancelled");
});

Deno.test("readResponseBody: a length announced over the limit is not read at all", async () => {
  const endless = endlessBody("x".repeat(100), { stallAfter: 0 });
  const response = new Response(endless.body, { headers: { "content-length": "5000" } });
  await assert.rejects(
    readResponseBody(response, { largeAt: 100, maxBytes: 4999, ...recordingSink() }),
    ResponseLimitExceeded,
  );
  assert.equal(endless.pulled, 0);
  assert.ok(endless.cancelled);
});

Deno.test("readResponseText: text up to the limit, in memory; an endless body fails", async () => {
  const text = await readResponseText(new Response("ünï".repeat(1000)), { maxBytes: 5000 });
  assert.equal(text, "ünï".repeat(1000));
  const endless = endlessBody("x".repeat(1000));
  await assert.rejects(
    promptly(readResponseText(new Response(endless.body), { maxBytes: 300_000 })),
    ResponseLimitExceeded,
  );
  assert.ok(endless.cancelled);
});
