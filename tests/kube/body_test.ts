import assert from "node:assert/strict";
import { readBody, readResponseBody } from "../../lib/kube/body.ts";

const encoder = new TextEncoder();

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
  const text = await readBody(streamOf(['{"kind":', '"Namespace"}']), { largeAt: 100, ...sink });
  assert.equal(text, '{"kind":"Namespace"}');
  assert.equal(sink.state.opened, 0);
});

Deno.test("readBody: an empty body is empty text", async () => {
  assert.equal(await readBody(streamOf([]), { largeAt: 100, ...recordingSink() }), "");
});

Deno.test("readBody: multi-byte characters split across chunks decode whole", async () => {
  const original = "café 😀 ünï";
  const chunks = Array.from(encoder.encode(original), (b) => Uint8Array.of(b));
  assert.equal(await readBody(streamOf(chunks), { largeAt: 100, ...recordingSink() }), original);
});

Deno.test("readBody: invalid UTF-8 in a small body is replaced, as Response.text() does", async () => {
  const bytes = Uint8Array.of(0x7b, 0xff, 0x7d);
  const expected = await new Response(bytes).text();
  assert.equal(await readBody(streamOf([bytes]), { largeAt: 100, ...recordingSink() }), expected);
});

Deno.test("readBody: a large body goes to the sink whole and in order, then it is closed", async () => {
  const chunks = Array.from({ length: 50 }, (_, i) => `chunk ${i}; ünï 😀 `);
  const sink = recordingSink({ delayMs: 1 });
  assert.equal(await readBody(streamOf(chunks), { largeAt: 100, ...sink }), null);
  assert.equal(sink.state.opened, 1);
  assert.equal(sink.text(), chunks.join(""));
  // Pieces of the threshold's size, whatever the network's chunks were.
  assert.ok(sink.chunks.slice(0, -1).every((c) => c.length === 100));
  assert.equal(sink.state.closed, true);
});

Deno.test("readBody: a failing sink fails the read and cancels the body", async () => {
  const chunks = Array.from({ length: 20 }, () => "x".repeat(40));
  const sink = recordingSink({ failAt: 5 });
  await assert.rejects(readBody(streamOf(chunks), { largeAt: 100, ...sink }), {
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
    readBody(streamOf(chunks, new Error("connection reset")), { largeAt: 100, ...sink }),
    { message: "connection reset" },
  );
  assert.equal(sink.state.closed, false);
  assert.equal((sink.state.aborted as Error)?.message, "connection reset");
});

Deno.test("readBody: a sink that cannot be opened fails the read", async () => {
  await assert.rejects(
    readBody(streamOf(["x".repeat(200), "y"]), {
      largeAt: 100,
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
  assert.equal(await readResponseBody(response(50), { largeAt: 100, ...announcedSmall }), body);
  assert.equal(announcedSmall.state.opened, 0);
  for (const length of [150, undefined]) {
    const sink = recordingSink();
    assert.equal(await readResponseBody(response(length), { largeAt: 100, ...sink }), null);
    assert.equal(sink.text(), body);
  }
});
