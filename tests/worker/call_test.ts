import assert from "node:assert/strict";
import type { DefaultCluster } from "../../lib/credentials.ts";
import type { KubeFetch, KubeRequest, KubeTarget } from "../../lib/kube/client.ts";
import {
  Caller,
  type CallerOptions,
  checkExplicitServer,
  type Running,
  targetFor,
} from "../../lib/worker/call.ts";
import { NamedCluster } from "../../lib/kube/clusters.ts";
import {
  ABOVE_MAX_REQUEST_TIMEOUT,
  type CallLimits,
  DEFAULT_CALL_LIMITS,
  OVER_RESPONSE_LIMIT,
} from "../../lib/worker/limits.ts";
import { type EndlessBody, endlessBody, promptly } from "../kube/fakes.ts";
import { claimedRequest, recordingLog } from "./fakes.ts";

const request = claimedRequest;

const own: DefaultCluster = {
  source: "kubeconfig",
  target: {
    server: "https://own.test:6443",
    caCert: "OWN CA",
    token: "own-token",
    clientCert: { certificate: "OWN CERT", privateKey: "OWN KEY" },
  },
};

Deno.test("targetFor: the request's server and credentials", () => {
  const target = targetFor(
    request({ token: "t", clientCertificate: "C", clientPrivateKey: "K", cacert: "CA" }),
    own,
  );
  assert.deepEqual(target, {
    server: "https://kube.test",
    caCert: "CA",
    token: "t",
    clientCert: { certificate: "C", privateKey: "K" },
  });
});

Deno.test("targetFor: no server named goes to the worker's own cluster, with its CA", () => {
  const target = targetFor(request({ server: null, token: "t" }), own);
  assert.deepEqual(target, {
    server: "https://own.test:6443",
    caCert: "OWN CA",
    token: "t",
    clientCert: undefined,
  });
});

Deno.test("targetFor: the worker's credentials, when asked for, only to its own server", () => {
  assert.deepEqual(
    targetFor(request({ server: "https://own.test:6443/", useWorkerDefault: true }), own),
    {
      server: "https://own.test:6443/",
      caCert: "OWN CA",
      token: "own-token",
      clientCert: { certificate: "OWN CERT", privateKey: "OWN KEY" },
    },
  );
  assert.deepEqual(targetFor(request({ useWorkerDefault: true }), own), {
    server: "https://kube.test",
    caCert: undefined,
    token: undefined,
    clientCert: undefined,
  });
});

Deno.test("targetFor: a client certificate needs its key", () => {
  assert.equal(targetFor(request({ clientCertificate: "C" }), undefined).clientCert, undefined);
});

Deno.test("targetFor: no server and no default cluster is an error that says what to do", () => {
  assert.throws(() => targetFor(request({ server: null }), undefined), /no server: name one/);
});

/**
 * A caller whose fetch answers with `reply`, and whose large bodies go to a recording fake;
 * `limits` change the default limits.
 */
function caller(
  reply: (request: KubeRequest) => Response | Promise<Response>,
  limits: Partial<CallLimits> = {},
  options: Partial<CallerOptions> = {},
) {
  const calls: { target: KubeTarget; request: KubeRequest }[] = [];
  const stored = {
    bytes: 0,
    assembled: [] as [number, boolean][],
    discarded: [] as number[],
    aborted: undefined as unknown,
  };
  const state = { assembleFails: false };
  const fetch: KubeFetch = async (target, request) => {
    calls.push({ target, request });
    return await reply(request);
  };
  const log = recordingLog();
  const runner = new Caller({
    fetch,
    pieces: {
      sink: () =>
        Promise.resolve(
          new WritableStream<Uint8Array>({
            write: (chunk) => void (stored.bytes += chunk.length),
            abort: (reason) => void (stored.aborted = reason),
          }),
        ),
      assemble: (id, isJson) => {
        stored.assembled.push([id, isJson]);
        return state.assembleFails
          ? Promise.reject(new Error('invalid byte sequence for encoding "UTF8"'))
          : Promise.resolve();
      },
      discard: (id) => {
        stored.discarded.push(id);
        return Promise.resolve();
      },
    },
    defaults: () => undefined,
    log,
    limits: { ...DEFAULT_CALL_LIMITS, ...limits },
    ...options,
  });
  return { runner, calls, stored, state, log };
}

function running(): Running {
  return { abort: new AbortController(), finish: new AbortController() };
}

/** A body as fetch gives it: a byte stream, in chunks, with no length announced. */
function byteStream(text: string, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        controller.byobRequest?.respond(0); // ends the read waiting on it
        return;
      }
      controller.enqueue(bytes.slice(at, at += chunkSize));
    },
  });
}

const json = (body: string, status = 200) =>
  new Response(byteStream(body), { status, headers: { "content-type": "application/json" } });

Deno.test("Caller.run: a response's text as it came, JSON or not by its content type", async () => {
  const { runner, calls, log } = caller(() => json('{"kind":"NamespaceList"}'));
  const result = await runner.run(
    request({ method: "PATCH", body: '{"a":1}', patchType: "merge" }),
    running(),
  );
  assert.deepEqual(result, {
    id: 1,
    outcome: "response",
    status: 200,
    body: '{"kind":"NamespaceList"}',
    isJson: true,
  });
  assert.equal(calls[0].request.method, "PATCH");
  assert.equal(calls[0].request.body, '{"a":1}');
  assert.equal(calls[0].request.patchType, "merge");
  assert.deepEqual(log.lines, ["call finished"]);
  const text = await caller(() =>
    new Response(byteStream("ok"), { headers: { "content-type": "text/plain" } })
  )
    .runner.run(request({ path: "/healthz" }), running());
  assert.deepEqual(text, { id: 1, outcome: "response", status: 200, body: "ok", isJson: false });
});

Deno.test("Caller.run: HEAD has no body", async () => {
  const { runner } = caller(() => json("{}"));
  const result = await runner.run(request({ method: "HEAD" }), running());
  assert.deepEqual(result, { id: 1, outcome: "response", status: 200, body: null, isJson: true });
});

Deno.test("Caller.run: a stream's lines become one JSON array; a failed stream is its body", async () => {
  const lines = '{"a":1}\n{"b":2}\n';
  const streamed = await caller(() => json(lines)).runner.run(request({ stream: true }), running());
  assert.equal(streamed.outcome === "response" && streamed.body, '[{"a":1},{"b":2}]');
  const failed = await caller(() => json('{"kind":"Status","code":404}', 404)).runner.run(
    request({ stream: true }),
    running(),
  );
  assert.equal(failed.outcome === "response" && failed.body, '{"kind":"Status","code":404}');
});

Deno.test("Caller.run: a large body is copied to the database and assembled there", async () => {
  const big = JSON.stringify({ items: "x".repeat(300 * 1024) });
  const { runner, stored } = caller(() => json(big));
  const result = await runner.run(request({ id: 7 }), running());
  assert.deepEqual(result, { id: 7, outcome: "stored", status: 200 });
  assert.equal(stored.bytes, new TextEncoder().encode(big).length);
  assert.deepEqual(stored.assembled, [[7, true]]);
});

Deno.test("Caller.run: a large body that cannot be assembled is discarded and the call fails", async () => {
  const { runner, stored, state, log } = caller(() => json("x".repeat(300 * 1024)));
  state.assembleFails = true;
  const result = await runner.run(request({ id: 8 }), running());
  assert.deepEqual(result, {
    id: 8,
    outcome: "failed",
    error: 'the response could not be stored: invalid byte sequence for encoding "UTF8"',
  });
  assert.deepEqual(stored.discarded, [8]);
  assert.deepEqual(log.lines, ["call failed"]);
});

Deno.test("Caller.run: a transport failure is a failed result; a 5xx is logged as a warning", async () => {
  const failed = caller(() => Promise.reject(new Error("connection refused")));
  assert.deepEqual(await failed.runner.run(request(), running()), {
    id: 1,
    outcome: "failed",
    error: "connection refused",
  });
  const unavailable = caller(() => json("{}", 503));
  await unavailable.runner.run(request(), running());
  assert.deepEqual(unavailable.log.lines, ["call answered with a server error"]);
});

Deno.test("Caller.run: aborting the request aborts its call", async () => {
  const { runner, calls } = caller((r) =>
    new Promise((_resolve, reject) =>
      r.signal!.addEventListener("abort", () => reject(r.signal!.reason), { once: true })
    )
  );
  const run = running();
  const result = runner.run(request(), run);
  run.abort.abort(new DOMException("cancelled by the caller", "AbortError"));
  assert.deepEqual(await result, { id: 1, outcome: "failed", error: "cancelled by the caller" });
  assert.equal(calls.length, 1);
});

Deno.test("Caller.run: a watch with a timeout out of range fails without a call", async () => {
  const { runner, calls } = caller(() => json("{}"));
  const result = await runner.run(
    request({ kind: "watch", body: '{"timeoutSeconds":0}' }),
    running(),
  );
  assert.deepEqual(result, {
    id: 1,
    outcome: "failed",
    error: "watch timeout 0 is not between 1 and 3600 seconds",
  });
  assert.equal(calls.length, 0);
});

Deno.test("Caller.run: a watch's events as a JSON array; a failed list as its one Status", async () => {
  /** Runs a watch asked with `body` against a server answering `reply`. */
  const watch = (reply: Response, body: string) =>
    caller(() => reply).runner.run(request({ kind: "watch", body }), running());
  const added = '{"type":"ADDED","object":{"metadata":{"resourceVersion":"6"}}}';
  const bookmark = '{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"6"}}}';
  assert.deepEqual(
    await watch(json(added + "\n"), '{"resourceVersion":"5","timeoutSeconds":1}'),
    { id: 1, outcome: "response", status: 200, body: `[${added},${bookmark}]`, isJson: true },
  );
  const forbidden = '{"kind":"Status","code":403}';
  assert.deepEqual(
    await watch(json(forbidden, 403), '{"timeoutSeconds":1}'),
    { id: 1, outcome: "response", status: 403, body: forbidden, isJson: true },
  );
});

// Limits: whatever a server sends, a call keeps at most so much, and stops at once when told.

/** An answer whose body is `body`, JSON by its content type. */
const endless = (body: EndlessBody) => () =>
  new Response(body.body, { headers: { "content-type": "application/json" } });

/** The result of a call over a byte limit of `limit`, as its caller is told. */
const overBytes = (limit: number, what = "the response") => ({
  id: 1,
  outcome: "failed",
  error: `${what} exceeded ${limit} bytes (--max-response-bytes); it was not kept`,
  code: OVER_RESPONSE_LIMIT,
});

Deno.test("Caller.run: an endless stream fails at maxResponseBytes, and the body is cancelled", async () => {
  const lines = endlessBody('{"kind":"Pod"}\n');
  const { runner } = caller(endless(lines), { maxResponseBytes: 50_000 });
  const result = await promptly(runner.run(request({ stream: true }), running()));
  assert.deepEqual(result, overBytes(50_000));
  assert.ok(lines.cancelled);
  const line = endlessBody("x".repeat(1000)); // a line that never ends
  const unended = await promptly(
    caller(endless(line), { maxResponseBytes: 50_000 }).runner.run(
      request({ stream: true }),
      running(),
    ),
  );
  assert.deepEqual(unended, overBytes(50_000));
  assert.ok(line.pulled <= 51_000 && line.cancelled);
});

Deno.test("Caller.run: an endless body fails at maxResponseBytes, small or large", async () => {
  const small = endlessBody("x".repeat(1000));
  const smallRun = caller(endless(small), { maxResponseBytes: 100_000 });
  assert.deepEqual(await promptly(smallRun.runner.run(request(), running())), overBytes(100_000));
  assert.ok(small.cancelled);
  assert.equal(smallRun.stored.bytes, 0);

  // Past the large threshold the body goes to the database, and the copy is aborted: its pieces
  // go with the COPY that failed.
  const large = endlessBody("y".repeat(16 * 1024));
  const largeRun = caller(endless(large), { maxResponseBytes: 1024 * 1024 });
  assert.deepEqual(
    await promptly(largeRun.runner.run(request(), running())),
    overBytes(1024 * 1024),
  );
  assert.ok(large.cancelled);
  assert.ok(largeRun.stored.bytes <= 1024 * 1024, `${largeRun.stored.bytes} bytes copied`);
  assert.ok(largeRun.stored.aborted);
  assert.deepEqual(largeRun.stored.assembled, []);
});

Deno.test("Caller.run: the default limit keeps a body of tens of MB", async () => {
  const big = JSON.stringify({ items: "x".repeat(24 * 1024 * 1024) });
  const { runner, stored } = caller(() => json(big));
  assert.deepEqual(await runner.run(request({ id: 9 }), running()), {
    id: 9,
    outcome: "stored",
    status: 200,
  });
  assert.equal(stored.bytes, big.length);
});

Deno.test("Caller.run: a watch over its events or bytes fails, and its stream is cancelled", async () => {
  const event = '{"type":"ADDED","object":{"metadata":{"resourceVersion":"6"}}}\n';
  const watch = request({ kind: "watch", body: '{"resourceVersion":"5","timeoutSeconds":60}' });
  const events = endlessBody(event);
  assert.deepEqual(
    await promptly(caller(endless(events), { maxWatchEvents: 3 }).runner.run(watch, running())),
    {
      id: 1,
      outcome: "failed",
      error: "the watch exceeded 3 events (--max-watch-events); it was not kept",
      code: OVER_RESPONSE_LIMIT,
    },
  );
  assert.ok(events.cancelled);
  const bytes = endlessBody(event);
  assert.deepEqual(
    await promptly(
      caller(endless(bytes), { maxResponseBytes: 10_000 }).runner.run(watch, running()),
    ),
    overBytes(10_000, "the watch"),
  );
  assert.ok(bytes.cancelled);
});

Deno.test("Caller.run: a request timeout above the maximum fails at once, without a call", async () => {
  const { runner, calls } = caller(() => json("{}"), { maxRequestTimeoutSeconds: 600 });
  assert.deepEqual(await runner.run(request({ timeoutMs: 601_000 }), running()), {
    id: 1,
    outcome: "failed",
    error: "omni_kube.request_timeout of 601 s is above the worker's maximum of 600 s " +
      "(--max-request-timeout); the call was not made",
    code: ABOVE_MAX_REQUEST_TIMEOUT,
  });
  // A watch's own duration is not part of its request timeout.
  const watch = (timeoutMs: number) =>
    request({ kind: "watch", timeoutMs, body: '{"resourceVersion":"5","timeoutSeconds":3600}' });
  const tooLong = await runner.run(watch(3_600_000 + 600_500), running());
  assert.equal(tooLong.outcome === "failed" && tooLong.code, ABOVE_MAX_REQUEST_TIMEOUT);
  assert.match(tooLong.outcome === "failed" ? tooLong.error : "", /of 600\.5 s is above/);
  assert.equal(calls.length, 0);
  const allowed = await runner.run(watch(3_600_000 + 600_000), running());
  assert.equal(allowed.outcome, "response");
  assert.equal(calls.length, 1);
});

Deno.test("Caller.run: an abort stops a stalled read at once, in every mode", async () => {
  const watchBody = '{"resourceVersion":"5","timeoutSeconds":60}';
  const modes = {
    plain: { fields: {}, chunk: "x".repeat(1000) },
    large: { fields: {}, chunk: "x".repeat(300 * 1024) },
    stream: { fields: { stream: true }, chunk: '{"a":1}\n' },
    watch: { fields: { kind: "watch", body: watchBody }, chunk: '{"type":"ADDED"}\n' },
  } as const;
  for (const [mode, { fields, chunk }] of Object.entries(modes)) {
    // The body sends a little and then nothing, and pays no attention to the call's signal.
    const stalled = endlessBody(chunk, { stallAfter: 2 });
    const { runner, stored } = caller(endless(stalled));
    const run = running();
    const result = runner.run(request(fields), run);
    setTimeout(
      () => run.abort.abort(new DOMException("cancelled by the caller", "AbortError")),
      30,
    );
    assert.deepEqual(await promptly(result), {
      id: 1,
      outcome: "failed",
      error: "cancelled by the caller",
    }, mode);
    assert.ok(stalled.cancelled, `${mode}: body cancelled`);
    if (mode === "large") assert.ok(stored.aborted, "large: copy aborted");
  }
});

Deno.test("Caller.run: the request timeout stops a stalled read", async () => {
  const stalled = endlessBody('{"a":1}\n', { stallAfter: 1 });
  const result = await promptly(
    caller(endless(stalled)).runner.run(request({ stream: true, timeoutMs: 50 }), running()),
  );
  assert.equal(result.outcome, "failed");
  assert.ok(stalled.cancelled);
});

Deno.test("Caller.run: a named cluster's request goes to its server with its credentials", async () => {
  const prod = new NamedCluster("prod", "https://prod.test", "PROD CA", "token", {
    kind: "static",
    token: "prod-token",
  });
  const { runner, calls } = caller(() => json("{}"), {}, {
    cluster: (name) => name === "prod" ? prod : undefined,
  });
  const result = await runner.run(request({ cluster: "prod", server: null }), running());
  assert.equal(result.outcome, "response");
  assert.deepEqual(calls[0].target, {
    server: "https://prod.test",
    caCert: "PROD CA",
    token: "prod-token",
    clientCert: undefined,
  });
  const unknown = await runner.run(request({ cluster: "staging", server: null }), running());
  assert.deepEqual(unknown, {
    id: 1,
    outcome: "failed",
    error: 'this worker does not serve cluster "staging"',
  });
  assert.equal(calls.length, 1);
});

Deno.test("Caller.run: a cluster the worker cannot use fails with the reason", async () => {
  const { runner, calls } = caller(() => json("{}"), {}, {
    cluster: () => ({ name: "broken", error: "its CA file is missing" }),
  });
  const result = await runner.run(request({ cluster: "broken", server: null }), running());
  assert.deepEqual(result, {
    id: 1,
    outcome: "failed",
    error: 'cluster "broken" cannot be used: its CA file is missing',
  });
  assert.equal(calls.length, 0);
});

Deno.test("Caller.run: a 401 re-reads a cluster's token file and tries once more", async () => {
  const dir = await Deno.makeTempDir();
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, "old-token\n");
  const rotating = new NamedCluster("rotating", "https://r.test", undefined, "token", {
    kind: "token-file",
    path: tokenFile,
    readAt: 0,
  });
  const { runner, calls } = caller(
    (r) => {
      if (calls.length === 1) Deno.writeTextFileSync(tokenFile, "new-token\n");
      return json("{}", r.path === "/denied" || calls.length === 1 ? 401 : 200);
    },
    {},
    { cluster: () => rotating },
  );
  const result = await runner.run(request({ cluster: "rotating", server: null }), running());
  assert.equal(result.outcome === "response" && result.status, 200);
  assert.deepEqual(calls.map((c) => c.target.token), ["old-token", "new-token"]);
  const denied = await runner.run(
    request({ cluster: "rotating", server: null, path: "/denied" }),
    running(),
  );
  assert.equal(denied.outcome === "response" && denied.status, 401, "one renewal, no loop");
  assert.equal(calls.length, 4, "one more try with the file read again, not a loop");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Caller.run: --explicit-servers refuses servers named in SQL", async () => {
  const none = caller(() => json("{}"), {}, { explicitServers: "none" });
  const refused = await none.runner.run(request({ server: "https://kube.test" }), running());
  assert.equal(refused.outcome, "failed");
  assert.match(refused.outcome === "failed" ? refused.error : "", /--explicit-servers none/);
  assert.equal(none.calls.length, 0);
  assert.doesNotThrow(() => checkExplicitServer("https://KUBE.test/", ["https://kube.test"]));
  assert.throws(
    () => checkExplicitServer("https://other.test", ["https://kube.test"]),
    /does not call https:\/\/other.test \(--explicit-servers allows https:\/\/kube.test\)/,
  );
  assert.doesNotThrow(() => checkExplicitServer("https://anything.test", "any"));
});
