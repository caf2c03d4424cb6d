import assert from "node:assert/strict";
import {
  ClientSpread,
  contentTypeFor,
  KubeHttp,
  type KubeTarget,
  normalizeServer,
} from "../../lib/kube/client.ts";
import { readResponseBody } from "../../lib/kube/body.ts";
import { ByteBudget, ResponseLimitExceeded } from "../../lib/kube/limits.ts";
import { splitLines } from "../../lib/kube/ndjson.ts";
import { serverCertificate } from "../hostile.ts";
import { promptly } from "./fakes.ts";

Deno.test("contentTypeFor: PATCH is a merge patch for objects and a JSON patch for arrays", () => {
  assert.equal(contentTypeFor("PATCH", '{"data":{"a":"1"}}'), "application/merge-patch+json");
  assert.equal(
    contentTypeFor("PATCH", ' [{"op":"remove","path":"/data/a"}]'),
    "application/json-patch+json",
  );
  assert.equal(contentTypeFor("POST", "{}"), "application/json");
  assert.equal(contentTypeFor("GET", undefined), undefined);
});

Deno.test("normalizeServer: accepts https://host[:port] and drops a trailing slash", () => {
  assert.equal(normalizeServer("https://127.0.0.1:6443/"), "https://127.0.0.1:6443");
  assert.equal(normalizeServer("https://kubernetes.default.svc"), "https://kubernetes.default.svc");
});

Deno.test("normalizeServer: rejects what would leak credentials or misroute calls", () => {
  assert.throws(() => normalizeServer("http://127.0.0.1:8080"), /must use https/);
  assert.throws(() => normalizeServer("kubernetes.default.svc"), /is not a URL/);
  assert.throws(() => normalizeServer("https://host/prefix"), /only https:\/\/host\[:port\]/);
  assert.throws(() => normalizeServer("https://user:pw@host"), /only https:\/\/host\[:port\]/);
});

Deno.test("normalizeServer: the same answer for a server each time, and a refusal each time", () => {
  for (let i = 0; i < 2; i++) {
    assert.equal(normalizeServer("https://a.example:6443/"), "https://a.example:6443");
    assert.throws(() => normalizeServer("http://a.example:6443"), /must use https/);
  }
});

Deno.test("KubeHttp.clientFor: one client per server and TLS settings, whatever the token", async () => {
  const [one, two] = [await serverCertificate(), await serverCertificate()];
  const http = new KubeHttp();
  const target: KubeTarget = { server: "https://127.0.0.1:6443", caCert: one.ca, token: "a" };
  const first = http.clientFor(target);
  // Equal settings in new strings, another token: the same client.
  const copy = { ...target, caCert: one.ca.slice(0, 10) + one.ca.slice(10), token: "b" };
  assert.equal(http.clientFor(copy), first);
  const other = http.clientFor({ ...target, caCert: two.ca });
  assert.notEqual(other, first);
  assert.notEqual(http.clientFor({ ...target, server: "https://127.0.0.1:6444" }), first);
  assert.equal(http.clientFor(target), first);
  assert.equal(http.clientFor({ ...target, caCert: two.ca }), other);
  http.close();
  const afterClose = http.clientFor(target);
  assert.notEqual(afterClose, first);
  http.close();
});

Deno.test("KubeHttp: a call sends its token, content type and user agent", async () => {
  const { ca, cert, key } = await serverCertificate();
  const seen: Record<string, string | null>[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    (request) => {
      seen.push(Object.fromEntries(
        ["accept", "authorization", "content-type", "user-agent"].map((name) => [
          name,
          request.headers.get(name),
        ]),
      ));
      return Response.json({});
    },
  );
  using http = new KubeHttp();
  const target = { server: `https://127.0.0.1:${server.addr.port}`, caCert: ca, token: "t0ken" };
  const response = await http.fetch(target, { method: "POST", path: "/x", body: "{}" });
  await response.body?.cancel();
  await server.shutdown();
  assert.deepEqual(seen, [{
    accept: "application/json, */*",
    authorization: "Bearer t0ken",
    "content-type": "application/json",
    "user-agent": "omni_kube-bridge/0.1",
  }]);
});

// Choosing a client: watches apart from calls, at most so many on each. No server needed.

/** A spread of numbered fake clients, recording which were closed. */
function fakeSpread(perClient: number) {
  let made = 0;
  const closed: number[] = [];
  const spread = new ClientSpread(perClient, () => made++, (client) => closed.push(client));
  return { spread, closed };
}

Deno.test("ClientSpread: fills a client up to its limit, then opens another", () => {
  const { spread } = fakeSpread(2);
  const leases = Array.from({ length: 5 }, () => spread.acquire());
  assert.deepEqual(leases.map((l) => l.client), [0, 0, 1, 1, 2]);
  assert.deepEqual(spread.load, [2, 2, 1]);
});

Deno.test("ClientSpread: a place given back is taken again; an emptied client is closed, the first kept", () => {
  const { spread, closed } = fakeSpread(2);
  const [a, b, c, d, e] = Array.from({ length: 5 }, () => spread.acquire());
  b.release();
  b.release(); // twice is once
  assert.deepEqual(spread.load, [1, 2, 1]);
  assert.equal(spread.acquire().client, 0);
  c.release();
  d.release();
  assert.deepEqual(closed, [1]);
  assert.deepEqual(spread.load, [2, 1]);
  assert.equal(spread.acquire().client, 2);
  a.release();
  e.release();
  assert.deepEqual(closed, [1]); // client 0 still has one, client 2 has one
  spread.closeAll();
  assert.deepEqual(closed, [1, 0, 2]);
  assert.deepEqual(spread.load, []);
});

Deno.test("ClientSpread: the first client stays when emptied, for the next stream", () => {
  const { spread, closed } = fakeSpread(1);
  const first = spread.acquire();
  first.release();
  assert.deepEqual(closed, []);
  assert.equal(spread.acquire().client, 0);
  assert.throws(() => new ClientSpread(0, () => 0, () => {}), RangeError);
});

// KubeHttp against local HTTPS servers (a certificate from the test bed's PKI), each sending a
// body that never ends: a read stopped at its limit or by an abort must close what it read from.

const LINE = new TextEncoder().encode(
  JSON.stringify({ type: "ADDED", object: "x".repeat(1000) }) + "\n",
);

/**
 * Deno.serve over TLS (HTTP/2 when the client offers it). `/endless` sends NDJSON lines forever,
 * `/quiet` one line and then nothing; both record when the client cancels. Any other path
 * answers `{}`. Every answer records the client's port: one port, one connection.
 */
async function endlessServer() {
  const { ca, cert, key } = await serverCertificate();
  const cancelled: Promise<unknown>[] = [];
  const ports = new Map<string, number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    (request, info) => {
      const url = new URL(request.url);
      ports.set(url.pathname + url.search, info.remoteAddr.port);
      if (url.pathname !== "/endless" && url.pathname !== "/quiet") return Response.json({});
      const cancel = Promise.withResolvers<unknown>();
      cancelled.push(cancel.promise);
      let sent = 0;
      return new Response(
        new ReadableStream({
          async pull(controller) {
            if (url.pathname === "/quiet" && sent++ > 0) return await cancel.promise.then(() => {});
            controller.enqueue(LINE.slice());
          },
          cancel: (reason) => cancel.resolve(reason),
        }),
        { headers: { "content-type": "application/json" } },
      );
    },
  );
  const target: KubeTarget = { server: `https://127.0.0.1:${server.addr.port}`, caCert: ca };
  return { server, target, cancelled, ports };
}

Deno.test("KubeHttp: a body read to its limit is cancelled, and the server sees its stream closed", async () => {
  const { server, target, cancelled } = await endlessServer();
  using http = new KubeHttp();
  for (const purpose of ["call", "watch"] as const) {
    const response = await http.fetch(target, { method: "GET", path: "/endless", purpose });
    await assert.rejects(
      promptly(readResponseBody(response, {
        largeAt: 1024 * 1024,
        maxBytes: 200_000,
        openSink: () => Promise.reject(new Error("no sink")),
      })),
      ResponseLimitExceeded,
    );
    await promptly(cancelled.at(-1)!);
  }
  await server.shutdown();
});

Deno.test("KubeHttp: an abort ends a stream read at once, and the server sees its stream closed", async () => {
  const { server, target, cancelled } = await endlessServer();
  using http = new KubeHttp();
  for (const path of ["/endless", "/quiet"]) {
    const abort = new AbortController();
    const response = await http.fetch(target, {
      method: "GET",
      path,
      signal: abort.signal,
      purpose: "watch",
    });
    let seen = 0;
    const read = (async () => {
      for await (const _ of splitLines(response.body!, { signal: abort.signal })) {
        if (++seen === 3 || path === "/quiet") abort.abort(new Error("caller gone"));
      }
    })();
    await assert.rejects(promptly(read), /caller gone/);
    await promptly(cancelled.at(-1)!);
  }
  await server.shutdown();
});

Deno.test("KubeHttp: calls and watches use separate connections; watches at most so many on one", async () => {
  const { server, target, cancelled, ports } = await endlessServer();
  using http = new KubeHttp({ watchesPerClient: 2 });
  const watches = [];
  for (let i = 0; i < 5; i++) {
    watches.push(
      await http.fetch(target, { method: "GET", path: `/quiet?w=${i}`, purpose: "watch" }),
    );
  }
  await Promise.all([0, 1].map(async (i) => {
    const response = await http.fetch(target, { method: "GET", path: `/call?c=${i}` });
    await response.body?.cancel();
  }));
  const port = (key: string) => ports.get(key)!;
  const watchPorts = [0, 1, 2, 3, 4].map((i) => port(`/quiet?w=${i}`));
  // HTTP/2: streams share a connection up to the limit.
  assert.equal(watchPorts[0], watchPorts[1]);
  assert.equal(watchPorts[2], watchPorts[3]);
  assert.equal(new Set(watchPorts).size, 3);
  assert.equal(port("/call?c=0"), port("/call?c=1"));
  assert.ok(!watchPorts.includes(port("/call?c=0")));
  for (const watch of watches) await watch.body!.cancel();
  await promptly(Promise.all(cancelled));
  await server.shutdown();
});

Deno.test("KubeHttp over HTTP/1.1: a body stopped at its limit closes the connection", async () => {
  const { ca, cert, key } = await serverCertificate();
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
    alpnProtocols: ["http/1.1"],
  });
  const encoder = new TextEncoder();
  // Chunked transfer encoding, one line a chunk, until a write fails: the client hung up.
  const chunk = new Uint8Array([
    ...encoder.encode(LINE.length.toString(16) + "\r\n"),
    ...LINE,
    ...encoder.encode("\r\n"),
  ]);
  const served = (async () => {
    const conn = await listener.accept();
    try {
      await conn.read(new Uint8Array(16 * 1024));
      await conn.write(encoder.encode(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
      ));
      for (;;) await conn.write(chunk);
    } catch (error) {
      return error;
    } finally {
      conn.close();
    }
  })();
  using http = new KubeHttp();
  const target = { server: `https://127.0.0.1:${listener.addr.port}`, caCert: ca };
  const response = await http.fetch(target, { method: "GET", path: "/endless" });
  const budget = new ByteBudget(100_000);
  await assert.rejects(
    promptly(Array.fromAsync(splitLines(response.body!, { budget }))),
    ResponseLimitExceeded,
  );
  const ended = await promptly(served);
  assert.ok(ended instanceof Error && /BrokenPipe|ConnectionReset/.test(ended.name), String(ended));
  listener.close();
});

Deno.test("KubeHttp: a watch asks for its stream uncompressed, so none of it is cut short", async () => {
  // As kube-apiserver answers a streaming list when it may compress: a gzip member per flush.
  const { gzipSync } = await import("node:zlib");
  const { ca, cert, key } = await serverCertificate();
  const lines = ['{"type":"ADDED","object":{}}\n', '{"type":"BOOKMARK","object":{}}\n'];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    (request) => {
      if (request.headers.get("accept-encoding") === "identity") {
        return new Response(lines.join(""));
      }
      const members = lines.map((line) => new Uint8Array(gzipSync(line)));
      return new Response(new Blob(members), { headers: { "content-encoding": "gzip" } });
    },
  );
  using http = new KubeHttp();
  const target: KubeTarget = { server: `https://127.0.0.1:${server.addr.port}`, caCert: ca };
  const watched = await http.fetch(target, { method: "GET", path: "/w", purpose: "watch" });
  assert.equal(await watched.text(), lines.join(""));
  await server.shutdown();
});
