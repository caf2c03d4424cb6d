import assert from "node:assert/strict";
import type { KubeFetch, KubeRequest, KubeTarget } from "../../lib/kube/client.ts";
import { ResponseLimitExceeded } from "../../lib/kube/limits.ts";
import { watchOnce, type WatchRequest, withQuery } from "../../lib/kube/watch.ts";
import { type EndlessBody, endlessBody, promptly } from "./fakes.ts";

Deno.test("withQuery: appends to a path with or without a query, encoding values", () => {
  assert.equal(withQuery("/api/v1/pods", { limit: "1" }), "/api/v1/pods?limit=1");
  assert.equal(
    withQuery("/api/v1/pods?labelSelector=a%3Db", { watch: "1", resourceVersion: "12 3" }),
    "/api/v1/pods?labelSelector=a%3Db&watch=1&resourceVersion=12+3",
  );
});

// watchOnce against synthetic responses: a fake fetch answers each call in turn, with no server.

const encoder = new TextEncoder();
const target: KubeTarget = { server: "https://kube.test" };
/** Limits no test here comes near, unless it says otherwise. */
const limits = { maxBytes: 1024 * 1024, maxEvents: 1000 };

/** The next call's answer, made from the call (whose signal a stream may follow). */
type Reply = (request: KubeRequest) => Response;

/** A fetch that answers with `replies` in order and records what it was asked. */
function fakeFetch(...replies: Reply[]): { fetch: KubeFetch; calls: KubeRequest[] } {
  const calls: KubeRequest[] = [];
  const fetch: KubeFetch = (_target, request) => {
    calls.push(request);
    const reply = replies.shift();
    if (!reply) return Promise.reject(new Error(`unexpected call: ${request.path}`));
    // Like fetch, a call whose signal is already aborted gets no response.
    if (request.signal?.aborted) return Promise.reject(request.signal.reason);
    return Promise.resolve(reply(request));
  };
  return { fetch, calls };
}

/** A JSON answer, as a list or a Status comes. */
function json(status: number, body: unknown): Reply {
  return () =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
}

/**
 * A watch stream sending `events` as lines; it then ends, or with `open` stays open until the
 * call's signal aborts and fails with its reason, as a real response body does.
 */
function stream(events: unknown[], { open = false } = {}): Reply {
  return (request) =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const event of events) {
            controller.enqueue(encoder.encode(JSON.stringify(event) + "\n"));
          }
          if (!open) controller.close();
          else {
            request.signal?.addEventListener("abort", () =>
              controller.error(request.signal!.reason), {
              once: true,
            });
          }
        },
      }),
      { status: 200, headers: { "content-type": "application/json" } },
    );
}

function pod(type: string, name: string, resourceVersion: string) {
  return {
    type,
    object: { kind: "Pod", apiVersion: "v1", metadata: { name, resourceVersion } },
  };
}

function bookmark(resourceVersion: string) {
  return {
    type: "BOOKMARK",
    object: { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion } },
  };
}

const podList = {
  kind: "PodList",
  apiVersion: "v1",
  metadata: { resourceVersion: "100" },
  items: [],
};

/** The query parameters of a call's path. */
function query(request: KubeRequest): Record<string, string> {
  return Object.fromEntries(new URL(request.path, "https://kube.test").searchParams);
}

Deno.test("watchOnce: without a version, lists for the current one, then watches from it", async () => {
  const { fetch, calls } = fakeFetch(json(200, podList), stream([pod("ADDED", "a", "101")]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods?labelSelector=app%3Dx",
    timeoutSeconds: 5,
  });
  assert.equal(calls.length, 2);
  assert.deepEqual(query(calls[0]), { labelSelector: "app=x", limit: "1" });
  assert.deepEqual(query(calls[1]), {
    labelSelector: "app=x",
    watch: "1",
    allowWatchBookmarks: "true",
    timeoutSeconds: "5",
    resourceVersion: "100",
  });
  assert.equal(result.status, 200);
  assert.equal(result.resourceVersion, "101");
  // Events stay the text the server sent; the last is the resume bookmark.
  assert.equal(result.events[0], JSON.stringify(pod("ADDED", "a", "101")));
  assert.deepEqual(JSON.parse(result.events[1]), bookmark("101"));
});

Deno.test("watchOnce: with a version, watches from it without listing", async () => {
  const { fetch, calls } = fakeFetch(stream([pod("MODIFIED", "a", "7")]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "6",
    timeoutSeconds: 1,
  });
  assert.equal(calls.length, 1);
  assert.equal(query(calls[0]).resourceVersion, "6");
  assert.equal(result.resourceVersion, "7");
  // Kind and apiVersion of the bookmark come from the last event when there was no list.
  assert.deepEqual(JSON.parse(result.events.at(-1)!), bookmark("7"));
});

Deno.test("watchOnce: a list that fails returns its Status and does not watch", async () => {
  const status = { kind: "Status", status: "Failure", reason: "Forbidden", code: 403 };
  const { fetch, calls } = fakeFetch(json(403, status));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/secrets",
    timeoutSeconds: 5,
  });
  assert.equal(calls.length, 1);
  assert.deepEqual(result, { status: 403, events: [JSON.stringify(status)] });
});

Deno.test("watchOnce: a watch refused returns its body with the version it started from", async () => {
  const status = { kind: "Status", code: 401, reason: "Unauthorized" };
  const { fetch } = fakeFetch(json(401, status));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "5",
    timeoutSeconds: 5,
  });
  assert.deepEqual(result, { status: 401, events: [JSON.stringify(status)], resourceVersion: "5" });
});

Deno.test("watchOnce: bookmarks are not events, and the latest one after the events is the resume version", async () => {
  const { fetch } = fakeFetch(
    stream([bookmark("10"), pod("ADDED", "a", "11"), bookmark("12"), bookmark("15")]),
  );
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "9",
    timeoutSeconds: 5,
  });
  assert.deepEqual(result.events.map((e) => JSON.parse(e).type), ["ADDED", "BOOKMARK"]);
  assert.equal(result.resourceVersion, "15");
  // Without a list, kind and apiVersion come only from an event taken as the resume point.
  assert.deepEqual(JSON.parse(result.events[1]), {
    type: "BOOKMARK",
    object: { metadata: { resourceVersion: "15" } },
  });
});

Deno.test("watchOnce: an event after the last bookmark sets the resume version", async () => {
  const { fetch } = fakeFetch(stream([bookmark("20"), pod("DELETED", "a", "21")]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "19",
    timeoutSeconds: 5,
  });
  assert.equal(result.resourceVersion, "21");
});

Deno.test("watchOnce: a stream with no events resumes from the version it started at", async () => {
  const { fetch } = fakeFetch(json(200, podList), stream([]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    timeoutSeconds: 5,
  });
  assert.equal(result.resourceVersion, "100");
  // Kind (without "List") and apiVersion come from the list.
  assert.deepEqual(result.events.map((e) => JSON.parse(e)), [bookmark("100")]);
});

Deno.test("watchOnce: an ERROR event with a 410 Status yields status 410 and no bookmark", async () => {
  const expired = {
    type: "ERROR",
    object: { kind: "Status", status: "Failure", reason: "Expired", code: 410 },
  };
  const { fetch } = fakeFetch(stream([pod("ADDED", "a", "31"), expired, pod("ADDED", "b", "32")]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "30",
    timeoutSeconds: 5,
  });
  assert.equal(result.status, 410);
  // Events up to the error, the error last; the version is the one the watch started from.
  assert.deepEqual(result.events.map((e) => JSON.parse(e).type), ["ADDED", "ERROR"]);
  assert.equal(result.resourceVersion, "30");
});

Deno.test("watchOnce: an ERROR event without a code yields status 500", async () => {
  const { fetch } = fakeFetch(stream([{ type: "ERROR", object: { message: "?" } }]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "1",
    timeoutSeconds: 5,
  });
  assert.equal(result.status, 500);
});

Deno.test("watchOnce: finish ends the watch early with the events seen and a final BOOKMARK", async () => {
  const finish = new AbortController();
  const { fetch } = fakeFetch(stream([pod("ADDED", "a", "41"), bookmark("42")], { open: true }));
  const watching = watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "40",
    timeoutSeconds: 60,
    finish: finish.signal,
  });
  setTimeout(() => finish.abort(), 10);
  const result = await watching;
  assert.equal(result.status, 200);
  assert.equal(result.resourceVersion, "42");
  assert.deepEqual(result.events.map((e) => JSON.parse(e).type), ["ADDED", "BOOKMARK"]);
});

Deno.test("watchOnce: finish before the watch answers returns only the resume BOOKMARK", async () => {
  const finish = new AbortController();
  finish.abort();
  const { fetch } = fakeFetch(stream([pod("ADDED", "a", "51")]));
  const result = await watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "50",
    timeoutSeconds: 60,
    finish: finish.signal,
  });
  assert.equal(result.status, 200);
  assert.equal(result.resourceVersion, "50");
  assert.deepEqual(result.events.map((e) => JSON.parse(e)), [{
    type: "BOOKMARK",
    object: { metadata: { resourceVersion: "50" } },
  }]);
});

Deno.test("watchOnce: an abort fails the watch", async () => {
  const abort = new AbortController();
  const { fetch } = fakeFetch(stream([pod("ADDED", "a", "61")], { open: true }));
  const watching = watchOnce(fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "60",
    timeoutSeconds: 60,
    signal: abort.signal,
  });
  setTimeout(() => abort.abort(new Error("caller gone")), 10);
  await assert.rejects(watching, /caller gone/);
});

/** An answer whose body is `body`, as a watch or list gets it. */
function endless(body: EndlessBody): Reply {
  return () => new Response(body.body, { headers: { "content-type": "application/json" } });
}

Deno.test("watchOnce: the watch itself asks for a connection of its own; the list does not", async () => {
  const { fetch, calls } = fakeFetch(json(200, podList), stream([]));
  await watchOnce(fetch, target, { ...limits, path: "/api/v1/pods", timeoutSeconds: 5 });
  assert.deepEqual(calls.map((c) => c.purpose), [undefined, "watch"]);
});

Deno.test("watchOnce: more events than maxEvents fail the watch, and its stream is cancelled", async () => {
  const events = endlessBody(JSON.stringify(pod("ADDED", "a", "71")) + "\n");
  const { fetch } = fakeFetch(endless(events));
  const watching = watchOnce(fetch, target, {
    path: "/api/v1/pods",
    resourceVersion: "70",
    timeoutSeconds: 60,
    maxBytes: 1024 * 1024,
    maxEvents: 25,
  });
  await assert.rejects(promptly(watching), (error) => {
    assert.ok(error instanceof ResponseLimitExceeded);
    assert.deepEqual([error.limit, error.unit], [25, "events"]);
    return true;
  });
  assert.ok(events.cancelled);
});

Deno.test("watchOnce: events over maxBytes fail the watch; bookmarks are not kept, so not counted", async () => {
  const event = JSON.stringify(pod("ADDED", "a", "81")) + "\n";
  const events = endlessBody(event);
  await assert.rejects(
    promptly(watchOnce(fakeFetch(endless(events)).fetch, target, {
      path: "/api/v1/pods",
      resourceVersion: "80",
      timeoutSeconds: 60,
      maxBytes: 10_000,
      maxEvents: 1_000_000,
    })),
    (error) => error instanceof ResponseLimitExceeded && error.unit === "bytes",
  );
  // Read: the events kept, their newlines (given back), and the event that went over.
  const kept = Math.floor(10_000 / (event.length - 1));
  assert.ok(events.pulled <= 10_000 + kept + event.length, `${events.pulled} bytes read`);
  assert.ok(events.cancelled);

  // Ten times the limit in bookmarks, then the end: nothing kept but the resume bookmark.
  const marks = Array.from({ length: 1000 }, (_, i) => bookmark(String(100 + i)));
  const result = await watchOnce(fakeFetch(stream(marks)).fetch, target, {
    path: "/api/v1/pods",
    resourceVersion: "99",
    timeoutSeconds: 60,
    maxBytes: 10_000,
    maxEvents: 1,
  });
  assert.equal(result.resourceVersion, "1099");
  assert.equal(result.events.length, 1);
});

/** Asserts that a watch answered by `reply` fails over its limits and cancels `body`. */
async function assertOverLimit(
  reply: Reply,
  body: EndlessBody,
  request: Partial<WatchRequest> = {},
): Promise<void> {
  const watching = watchOnce(fakeFetch(reply).fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "1",
    timeoutSeconds: 60,
    ...request,
  });
  await assert.rejects(promptly(watching), ResponseLimitExceeded);
  assert.ok(body.cancelled);
}

Deno.test("watchOnce: a line that never ends fails the watch at maxBytes", async () => {
  const line = endlessBody('{"type":"ADDED","object":{"data":"' + "x".repeat(1000));
  await assertOverLimit(endless(line), line);
});

Deno.test("watchOnce: an endless list or refusal fails at maxBytes instead of filling memory", async () => {
  const list = endlessBody("[" + '"x",'.repeat(1000));
  await assertOverLimit(endless(list), list, { resourceVersion: undefined });
  const refusal = endlessBody("x".repeat(1000));
  await assertOverLimit(() => new Response(refusal.body, { status: 403 }), refusal);
});

Deno.test("watchOnce: an abort ends a stalled watch at once, even if its stream ignores it", async () => {
  const stalled = endlessBody(JSON.stringify(pod("ADDED", "a", "91")) + "\n", { stallAfter: 2 });
  const abort = new AbortController();
  const watching = watchOnce(fakeFetch(endless(stalled)).fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "90",
    timeoutSeconds: 60,
    signal: abort.signal,
  });
  setTimeout(() => abort.abort(new Error("caller gone")), 20);
  await assert.rejects(promptly(watching), /caller gone/);
  assert.equal((stalled.cancelled?.reason as Error)?.message, "caller gone");

  // A finish ends it normally, with what it saw.
  const finish = new AbortController();
  const quiet = endlessBody(JSON.stringify(pod("ADDED", "a", "92")) + "\n", { stallAfter: 2 });
  const finishing = watchOnce(fakeFetch(endless(quiet)).fetch, target, {
    ...limits,
    path: "/api/v1/pods",
    resourceVersion: "90",
    timeoutSeconds: 60,
    finish: finish.signal,
  });
  setTimeout(() => finish.abort(), 20);
  const result = await promptly(finishing);
  assert.deepEqual(result.events.map((e) => JSON.parse(e).type), ["ADDED", "ADDED", "BOOKMARK"]);
  assert.ok(quiet.cancelled);
});

Deno.test("watchOnce: listTimeoutMs bounds a list that never answers", async () => {
  const fetch: KubeFetch = (_target, request) =>
    new Promise((_, reject) =>
      request.signal?.addEventListener("abort", () => reject(request.signal!.reason))
    );
  await assert.rejects(
    promptly(watchOnce(fetch, target, {
      ...limits,
      path: "/api/v1/pods",
      timeoutSeconds: 60,
      listTimeoutMs: 20,
    })),
    { name: "TimeoutError" },
  );
});
