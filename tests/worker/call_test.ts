import assert from "node:assert/strict";
import type { DefaultCluster } from "../../lib/credentials.ts";
import type { KubeFetch, KubeRequest, KubeTarget } from "../../lib/kube/client.ts";
import { Caller, type Running, targetFor } from "../../lib/worker/call.ts";
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

/** A caller whose fetch answers with `reply`, and whose large bodies go to a recording fake. */
function caller(reply: (request: KubeRequest) => Response | Promise<Response>) {
  const calls: { target: KubeTarget; request: KubeRequest }[] = [];
  const stored = { bytes: 0, assembled: [] as [number, boolean][], discarded: [] as number[] };
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
          new WritableStream<Uint8Array>({ write: (chunk) => void (stored.bytes += chunk.length) }),
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
