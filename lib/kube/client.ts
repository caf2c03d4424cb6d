/**
 * HTTP to Kubernetes API servers: reusable `Deno.HttpClient`s (connection pool, TLS settings,
 * HTTP/2 when the server offers it) per (server, CA, client certificate), the headers Kubernetes
 * expects, and transport failures turned into errors that name the server and the cause.
 *
 * Calls and watches never share a client: a client's HTTP/2 connection carries all its requests
 * as streams, and hundreds of long watches on one connection made the calls beside them fail
 * ("stream error received: unspecific protocol error"). Watches are spread over clients of their
 * own, each carrying a bounded number at once.
 *
 * Knows nothing about PostgreSQL.
 *
 * @module
 */
import { byobReader } from "./byob.ts";

/** HTTP methods a Kubernetes call may use (the SQL type `omni_kube.http_method`). */
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
/** One of {@linkcode HTTP_METHODS}. */
export type HttpMethod = typeof HTTP_METHODS[number];

/** PATCH flavours Kubernetes accepts, by the name of their content type. */
export const PATCH_CONTENT_TYPES = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  // JSON is YAML, so a JSON body can be sent as an apply configuration.
  apply: "application/apply-patch+yaml",
} as const;
/** One of the keys of {@linkcode PATCH_CONTENT_TYPES}. */
export type PatchType = keyof typeof PATCH_CONTENT_TYPES;

/** Where an API server is and how to prove who we are to it. */
export interface KubeTarget {
  /** Base URL, `https://host[:port]`. */
  server: string;
  /** PEM CA bundle that signed the server's certificate; the system roots are trusted as well. */
  caCert?: string;
  /** PEM client certificate and its private key, for mutual TLS. */
  clientCert?: { certificate: string; privateKey: string };
  /** Bearer token. */
  token?: string;
}

/** One call. `body` is JSON text, sent as is: it is never parsed here. */
export interface KubeRequest {
  method: HttpMethod;
  /** Absolute path with optional query, e.g. `/api/v1/namespaces?limit=10`. */
  path: string;
  body?: string;
  /** For PATCH: which kind of patch `body` is; inferred from the body when absent. */
  patchType?: PatchType;
  signal?: AbortSignal;
  /** A short `call` (the default), or a long-lived `watch`, which gets a connection apart. */
  purpose?: RequestPurpose;
}

/** What a request is for, which decides the connection it goes on. */
export type RequestPurpose = "call" | "watch";

/**
 * Sends one call and returns the response with its body unread, as {@linkcode KubeHttp.fetch}
 * does: what code that makes calls depends on, so that it can be tested without a server.
 */
export type KubeFetch = (target: KubeTarget, request: KubeRequest) => Promise<Response>;

/** The call never got an HTTP response: refused, TLS, DNS, timeout, aborted. */
export class KubeTransportError extends Error {
  constructor(readonly server: string, cause: unknown, detail: string) {
    super(`request to ${server} failed: ${detail}`, { cause });
    this.name = "KubeTransportError";
  }
}

const USER_AGENT = "omni_kube-bridge/0.1";

/**
 * The content type of a request body. Kubernetes answers 415 to a PATCH sent as
 * `application/json`: unless `patchType` says otherwise, an object body is a JSON merge patch
 * (RFC 7386) and an array a JSON patch (RFC 6902).
 */
export function contentTypeFor(
  method: HttpMethod,
  body: string | undefined,
  patchType?: PatchType,
): string | undefined {
  if (body === undefined) return undefined;
  if (method !== "PATCH") return "application/json";
  if (patchType) return PATCH_CONTENT_TYPES[patchType];
  return PATCH_CONTENT_TYPES[body.trimStart().startsWith("[") ? "json" : "merge"];
}

/** The deepest `message` in an error's cause chain: Deno puts the useful part there. */
function describeCause(error: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e.message && !messages.includes(e.message)) messages.push(e.message);
  }
  return messages.join(": ") || String(error);
}

/**
 * Servers already validated, and their origins: a worker checks the same few servers for every
 * call, and parsing a URL is a measurable part of a call's CPU. Bounded: emptied when full.
 */
const normalizedServers = new Map<string, string>();
const NORMALIZED_SERVERS_KEPT = 256;

/** Validates a server URL, returning it without a trailing slash. */
export function normalizeServer(server: string): string {
  let origin = normalizedServers.get(server);
  if (origin === undefined) {
    origin = parseServer(server);
    if (normalizedServers.size >= NORMALIZED_SERVERS_KEPT) normalizedServers.clear();
    normalizedServers.set(server, origin);
  }
  return origin;
}

function parseServer(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TypeError(
      `server "${server}" is not a URL: give the API server as https://host[:port]`,
    );
  }
  if (url.protocol !== "https:") {
    throw new TypeError(
      `server "${server}" must use https: Kubernetes credentials are never sent in clear text`,
    );
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username) {
    throw new TypeError(
      `server "${server}" must be only https://host[:port]; put the path in the call instead`,
    );
  }
  return url.origin;
}

/** Concurrent watches one client (one HTTP/2 connection) carries at most, by default. */
export const WATCHES_PER_CLIENT = 100;

/** A client taken from a {@linkcode ClientSpread}, to be given back when its stream ends. */
export interface ClientLease<C> {
  /** The client to send the stream on. */
  client: C;
  /** Gives the stream's place back; later calls do nothing. */
  release(): void;
}

/**
 * Long-lived streams spread over clients so that none carries more than `perClient` at once:
 * a stream goes to the first client with room, else to a new one. A client left without streams
 * is closed, except the first, which stays for the next.
 */
export class ClientSpread<C> {
  readonly #clients: { client: C; streams: number }[] = [];

  /** `create` makes a client when all are full; `close` closes one no longer needed. */
  constructor(
    readonly perClient: number,
    readonly create: () => C,
    readonly close: (client: C) => void,
  ) {
    if (!(perClient >= 1)) throw new RangeError(`perClient must be at least 1, got ${perClient}`);
  }

  /** Streams each client carries now, in the order the clients were made. */
  get load(): number[] {
    return this.#clients.map((c) => c.streams);
  }

  /** A client with room for one more stream. */
  acquire(): ClientLease<C> {
    let entry = this.#clients.find((c) => c.streams < this.perClient);
    if (!entry) {
      entry = { client: this.create(), streams: 0 };
      this.#clients.push(entry);
    }
    entry.streams++;
    const taken = entry;
    let released = false;
    return {
      client: taken.client,
      release: () => {
        if (released) return;
        released = true;
        taken.streams--;
        if (taken.streams === 0 && this.#clients[0] !== taken) {
          this.#clients.splice(this.#clients.indexOf(taken), 1);
          this.close(taken.client);
        }
      },
    };
  }

  /** Closes every client. */
  closeAll(): void {
    for (const { client } of this.#clients.splice(0)) this.close(client);
  }
}

/** How {@linkcode KubeHttp} pools its connections. */
export interface KubeHttpOptions {
  /** Concurrent watches per client (per HTTP/2 connection); default {@linkcode WATCHES_PER_CLIENT}. */
  watchesPerClient?: number;
}

/**
 * A pool of HTTP clients per (server, CA, client certificate), reused across calls so that
 * connections (and HTTP/2 sessions) stay open: one for calls, and as many as its watches need
 * (see the module doc). Close it to release them.
 */
export class KubeHttp implements Disposable {
  readonly #calls = new Map<string, Deno.HttpClient>();
  /**
   * The last call's TLS settings and client: consecutive calls mostly share them (often the very
   * same strings), and then need no key made of a CA bundle of kilobytes.
   */
  #lastCall: { tls: KubeTarget; client: Deno.HttpClient } | undefined;
  readonly #watches = new Map<string, ClientSpread<Deno.HttpClient>>();
  readonly #watchesPerClient: number;

  /** Opens nothing until the first request. */
  constructor(options: KubeHttpOptions = {}) {
    this.#watchesPerClient = options.watchesPerClient ?? WATCHES_PER_CLIENT;
  }

  /** The calls' client for `target`'s TLS settings, created on first use. */
  clientFor(target: KubeTarget): Deno.HttpClient {
    const last = this.#lastCall;
    if (last && sameTls(last.tls, target)) return last.client;
    const key = clientKey(target);
    let client = this.#calls.get(key);
    if (!client) {
      client = createClient(target);
      this.#calls.set(key, client);
    }
    // (Not the token: the TLS settings are all that choose a client.)
    const { server, caCert, clientCert } = target;
    this.#lastCall = { tls: { server, caCert, clientCert }, client };
    return client;
  }

  /** A watch's client for `target`'s TLS settings: one with room for another watch. */
  #watchClient(target: KubeTarget): ClientLease<Deno.HttpClient> {
    const key = clientKey(target);
    let spread = this.#watches.get(key);
    if (!spread) {
      spread = new ClientSpread(
        this.#watchesPerClient,
        () => createClient(target),
        (client) => client.close(),
      );
      this.#watches.set(key, spread);
    }
    return spread.acquire();
  }

  /**
   * Sends `request` to `target` and returns the response with its body unread, whatever its status.
   * Throws {@linkcode KubeTransportError} if no response arrives.
   */
  async fetch(target: KubeTarget, request: KubeRequest): Promise<Response> {
    const server = normalizeServer(target.server);
    // Pairs rather than a Headers object, which fetch would copy by iterating it, sorted.
    const headers: [string, string][] = [
      ["accept", "application/json, */*"],
      ["user-agent", USER_AGENT],
    ];
    if (target.token) {
      // Checked here, not by Headers: its error message would quote the token.
      if (!/^[\x21-\x7e]+$/.test(target.token)) {
        throw new KubeTransportError(
          server,
          undefined,
          "the token contains spaces, control or non-ASCII characters; it was not sent",
        );
      }
      headers.push(["authorization", `Bearer ${target.token}`]);
    }
    // A streamed answer uncompressed: kube-apiserver gzips a streaming list as one gzip member per
    // flush, and Deno's fetch ends the body after the first member, cutting the stream short.
    if (request.purpose === "watch") headers.push(["accept-encoding", "identity"]);
    const contentType = contentTypeFor(request.method, request.body, request.patchType);
    if (contentType) headers.push(["content-type", contentType]);
    // The path is appended to the server, so it must not be able to change the host: a path such
    // as ".evil.example/x" or "@evil.example/x" would send the credentials elsewhere.
    if (!request.path.startsWith("/") || new URL(server + request.path).origin !== server) {
      throw new KubeTransportError(
        server,
        undefined,
        `path "${request.path}" is not an absolute path on this server`,
      );
    }
    let lease: ClientLease<Deno.HttpClient>;
    try {
      lease = request.purpose === "watch"
        ? this.#watchClient({ ...target, server })
        : { client: this.clientFor({ ...target, server }), release: () => {} };
    } catch (error) {
      throw new KubeTransportError(server, error, `invalid TLS settings: ${describeCause(error)}`);
    }
    try {
      const response = await fetch(server + request.path, {
        method: request.method,
        headers,
        body: request.body,
        client: lease.client,
        signal: request.signal,
        redirect: "manual",
      });
      return request.purpose === "watch"
        ? onBodyEnd(response, lease.release, request.signal)
        : response;
    } catch (error) {
      lease.release();
      if (request.signal?.aborted) {
        const reason = request.signal.reason;
        const detail = reason instanceof Error && reason.name === "TimeoutError"
          ? "timed out"
          : reason instanceof Error && reason.message
          ? reason.message
          : "cancelled";
        throw new KubeTransportError(server, reason, detail);
      }
      throw new KubeTransportError(server, error, describeCause(error));
    }
  }

  /** Closes every pooled client. */
  close(): void {
    for (const client of this.#calls.values()) client.close();
    this.#calls.clear();
    this.#lastCall = undefined;
    for (const spread of this.#watches.values()) spread.closeAll();
    this.#watches.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Whether two targets have the same server and TLS settings (what {@linkcode clientKey} keys). */
function sameTls(a: KubeTarget, b: KubeTarget): boolean {
  return a.server === b.server && (a.caCert ?? "") === (b.caCert ?? "") &&
    (a.clientCert?.certificate ?? "") === (b.clientCert?.certificate ?? "") &&
    (a.clientCert?.privateKey ?? "") === (b.clientCert?.privateKey ?? "");
}

function clientKey(target: KubeTarget): string {
  return JSON.stringify([
    target.server,
    target.caCert ?? "",
    target.clientCert?.certificate ?? "",
    target.clientCert?.privateKey ?? "",
  ]);
}

function createClient(target: KubeTarget): Deno.HttpClient {
  return Deno.createHttpClient({
    caCerts: target.caCert ? [target.caCert] : undefined,
    ...(target.clientCert
      ? { cert: target.clientCert.certificate, key: target.clientCert.privateKey }
      : {}),
  });
}

/** Statuses whose responses have no body (and a new Response with one may not be made). */
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];

/**
 * `response` with `end` called once its body is finished: read to its end, failed, cancelled,
 * or its request aborted (which ends the body too). Without a body, at once.
 */
function onBodyEnd(response: Response, end: () => void, signal?: AbortSignal): Response {
  if (!response.body || NULL_BODY_STATUSES.includes(response.status)) {
    end();
    return response;
  }
  signal?.addEventListener("abort", end, { once: true });
  const reader = byobReader(response.body);
  // A byte stream, as fetch's own: a reader that brings its own buffer gets the bytes in it, and
  // a default reader's read gets a buffer of `autoAllocateChunkSize`, as fetch would give it.
  const body = new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    async pull(controller) {
      // (With a chunk size to allocate and no high-water mark, every pull answers a read.)
      const request = controller.byobRequest!;
      try {
        const { done, value } = await reader.read(request.view as Uint8Array);
        if (done) {
          end();
          controller.close();
          // The buffer came back empty; the request is answered with it (it was transferred).
          if (value) request.respondWithNewView(value);
        } else request.respondWithNewView(value);
      } catch (error) {
        end();
        controller.error(error);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
