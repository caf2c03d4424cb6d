/**
 * A hostile HTTPS endpoint, for tests of what a server can do to the worker: Deno.serve over TLS
 * (HTTP/2 when the client offers it) on 127.0.0.1, with a certificate from the test bed's PKI.
 * The last segment of the path chooses what it does:
 *
 * - `endless-ndjson`: NDJSON lines (about 1 KB each) without end;
 * - `endless-line`: one line that never ends (no newline, ever);
 * - `endless-body`: a JSON-typed body of incompressible bytes without end;
 * - `watchable`, `watchable-large`: a list (with a resourceVersion), and with `watch=1` ADDED
 *   events without end, of about 150 bytes or 64 KiB each;
 * - `slow`: `{}` after `?ms=N` milliseconds (default: 200 to 500 at random), counted by method;
 * - `flaky`: `?status=S` (with `Retry-After: R` for `?retry-after=R`) for the first `?times=N`
 *   requests of each `?key=K`, then `{"attempt": n}`; when each came is recorded by key;
 * - `echo`: `?body=B` as it is, with `?type=T` as its content type (default `text/plain`);
 * - `ok`: `{}` at once.
 *
 * The endless ones send as fast as the client reads, or with `?trickle` 16 KiB every 50 ms
 * (`?trickle=N`: N KiB), and record each response: bytes sent, and when the client closed it.
 *
 * @module
 */
import { createCertificateAuthority, issueCertificate } from "../testbed/pki.ts";

/** A CA and a serving certificate for 127.0.0.1 (and localhost). */
export async function serverCertificate(): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await createCertificateAuthority("omni_kube hostile endpoint CA");
  const leaf = await issueCertificate(ca, "127.0.0.1", {
    kind: "server",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
  });
  return { ca: ca.certificate, cert: leaf.certificate, key: leaf.privateKey };
}

/** One endless response. */
export interface EndlessResponse {
  /** Its path's last segment. */
  mode: string;
  /** Bytes handed to the connection so far. */
  sent: number;
  /** When the client closed it (`performance.now()`); absent while it is open. */
  closedAt?: number;
  /** Settles when the client closes it. */
  closed: Promise<void>;
}

/** A running hostile endpoint; dispose of it to stop it. */
export interface HostileEndpoint extends AsyncDisposable {
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  /** The CA of its certificate (PEM), for `cacert`. */
  readonly caCert: string;
  /** The endless responses begun, oldest first. */
  readonly endless: readonly EndlessResponse[];
  /** Requests received by `mode` (a path's last segment), of `method` or of any. */
  received(mode: string, method?: string): number;
  /** When each `flaky` request of `key` came (`Date.now()`), oldest first. */
  flakyArrivals(key: string): readonly number[];
}

const encoder = new TextEncoder();
const CHUNK_BYTES = 64 * 1024;
const TRICKLE_MS = 50;

/** About 1 KB of NDJSON lines, repeated to fill `size` bytes. */
function ndjson(size: number): Uint8Array {
  const line = JSON.stringify({
    type: "ADDED",
    object: { kind: "Pod", metadata: { name: "p" }, data: "x".repeat(1000) },
  }) + "\n";
  return encoder.encode(line.repeat(Math.ceil(size / line.length)));
}

/** Base64 of random bytes: what a store without compression keeps byte for byte. */
function incompressible(size: number): Uint8Array {
  let text = "";
  while (text.length < size) {
    // 30,000 random bytes are 40,000 characters, with no padding.
    text += btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(30_000))));
  }
  return encoder.encode(text.slice(0, size));
}

/** A watch event of about `bytes` bytes, for resourceVersion `rv`. */
function watchEvent(rv: number, bytes: number): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      type: "ADDED",
      object: {
        kind: "Pod",
        apiVersion: "v1",
        metadata: { name: `p${rv}`, resourceVersion: String(rv) },
        pad: "x".repeat(Math.max(0, bytes - 100)),
      },
    }) + "\n",
  );
}

/** Starts an endpoint as described in the module doc. */
export async function hostileEndpoint(): Promise<HostileEndpoint> {
  const { ca, cert, key } = await serverCertificate();
  const stopping = new AbortController();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      stopping.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  const counts = new Map<string, number>();
  const flaky = new Map<string, number[]>();
  const endless: EndlessResponse[] = [];
  const bodies = {
    "endless-ndjson": ndjson(CHUNK_BYTES),
    "endless-body": incompressible(1024 * 1024),
    "endless-line": encoder.encode("x".repeat(CHUNK_BYTES)),
  };

  /** An endless response: `next()` gives each chunk to send. */
  const stream = (mode: string, trickle: number, first: Uint8Array, next: () => Uint8Array) => {
    const closed = Promise.withResolvers<void>();
    const record: EndlessResponse = { mode, sent: 0, closed: closed.promise };
    endless.push(record);
    const close = () => {
      record.closedAt ??= performance.now();
      closed.resolve();
    };
    let started = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // On stop, end it even if the client reads no more (Deno.serve waits for every response).
        stopping.signal.addEventListener("abort", () => {
          if (record.closedAt !== undefined) return;
          close();
          controller.close();
        }, { once: true });
      },
      async pull(controller) {
        if (trickle && started) await sleep(TRICKLE_MS);
        if (stopping.signal.aborted) return;
        const chunk = started ? next() : first;
        started = true;
        record.sent += chunk.length;
        controller.enqueue(chunk.slice());
      },
      cancel: close,
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  };

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, signal: stopping.signal, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const mode = url.pathname.split("/").at(-1)!;
      for (const key of [mode, `${mode} ${request.method}`]) {
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      // KiB every TRICKLE_MS; 0: as fast as the client reads.
      const trickle = url.searchParams.has("trickle")
        ? Number(url.searchParams.get("trickle") || 16)
        : 0;
      switch (mode) {
        case "endless-ndjson":
        case "endless-body":
        case "endless-line": {
          const whole = bodies[mode];
          const size = trickle ? trickle * 1024 : CHUNK_BYTES;
          let at = 0;
          const next = () => {
            if (at + size > whole.length) at = 0;
            return whole.subarray(at, at += size);
          };
          // A line that never ends starts like JSON, and then only ever continues.
          const first = mode === "endless-line" ? encoder.encode('{"data":"') : next();
          return stream(mode, trickle, first, next);
        }
        case "watchable":
        case "watchable-large": {
          if (url.searchParams.get("watch") !== "1") {
            return Response.json({
              kind: "PodList",
              apiVersion: "v1",
              metadata: { resourceVersion: "1" },
              items: [],
            });
          }
          const bytes = mode === "watchable" ? 150 : CHUNK_BYTES;
          let rv = 1;
          const next = () => watchEvent(++rv, bytes);
          return stream(mode, trickle, next(), next);
        }
        case "slow": {
          const ms = Number(url.searchParams.get("ms") ?? 200 + Math.random() * 300);
          await request.body?.cancel();
          await sleep(ms);
          return Response.json({}, { status: request.method === "POST" ? 201 : 200 });
        }
        case "flaky": {
          const key = url.searchParams.get("key") ?? "";
          const arrivals = flaky.get(key) ?? [];
          flaky.set(key, arrivals);
          arrivals.push(Date.now());
          await request.body?.cancel();
          if (arrivals.length > Number(url.searchParams.get("times") ?? 0)) {
            return Response.json({ attempt: arrivals.length });
          }
          const retryAfter = url.searchParams.get("retry-after");
          return Response.json({ kind: "Status", code: Number(url.searchParams.get("status")) }, {
            status: Number(url.searchParams.get("status")),
            headers: retryAfter === null ? {} : { "retry-after": retryAfter },
          });
        }
        case "echo":
          return new Response(url.searchParams.get("body") ?? "", {
            headers: { "content-type": url.searchParams.get("type") ?? "text/plain" },
          });
        case "ok":
          return Response.json({});
        default:
          return Response.json({ kind: "Status", code: 404, reason: "NotFound" }, { status: 404 });
      }
    },
  );
  return {
    url: `https://127.0.0.1:${server.addr.port}`,
    caCert: ca,
    endless,
    received: (mode, method) => counts.get(method ? `${mode} ${method}` : mode) ?? 0,
    flakyArrivals: (key) => flaky.get(key) ?? [],
    async [Symbol.asyncDispose]() {
      stopping.abort();
      await server.finished;
    },
  };
}
