/**
 * HTTP to Kubernetes API servers: one reusable `Deno.HttpClient` (connection pool, TLS settings,
 * HTTP/2 when the server offers it) per (server, CA, client certificate), the headers Kubernetes
 * expects, and transport failures turned into errors that name the server and the cause.
 *
 * Knows nothing about PostgreSQL.
 *
 * @module
 */

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
}

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

/** Validates a server URL, returning it without a trailing slash. */
export function normalizeServer(server: string): string {
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

/**
 * A pool of HTTP clients, one per (server, CA, client certificate), reused across calls so that
 * connections (and HTTP/2 sessions) stay open. Close it to release them.
 */
export class KubeHttp implements Disposable {
  readonly #clients = new Map<string, Deno.HttpClient>();

  /** The client for `target`'s TLS settings, created on first use. */
  clientFor(target: KubeTarget): Deno.HttpClient {
    const key = JSON.stringify([
      target.server,
      target.caCert ?? "",
      target.clientCert?.certificate ?? "",
      target.clientCert?.privateKey ?? "",
    ]);
    let client = this.#clients.get(key);
    if (!client) {
      client = Deno.createHttpClient({
        caCerts: target.caCert ? [target.caCert] : undefined,
        ...(target.clientCert
          ? { cert: target.clientCert.certificate, key: target.clientCert.privateKey }
          : {}),
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  /**
   * Sends `request` to `target` and returns the response with its body unread, whatever its status.
   * Throws {@linkcode KubeTransportError} if no response arrives.
   */
  async fetch(target: KubeTarget, request: KubeRequest): Promise<Response> {
    const server = normalizeServer(target.server);
    const headers = new Headers({ accept: "application/json, */*", "user-agent": USER_AGENT });
    if (target.token) {
      // Checked here, not by Headers: its error message would quote the token.
      if (!/^[\x21-\x7e]+$/.test(target.token)) {
        throw new KubeTransportError(
          server,
          undefined,
          "the token contains spaces, control or non-ASCII characters; it was not sent",
        );
      }
      headers.set("authorization", `Bearer ${target.token}`);
    }
    const contentType = contentTypeFor(request.method, request.body, request.patchType);
    if (contentType) headers.set("content-type", contentType);
    // The path is appended to the server, so it must not be able to change the host: a path such
    // as ".evil.example/x" or "@evil.example/x" would send the credentials elsewhere.
    if (!request.path.startsWith("/") || new URL(server + request.path).origin !== server) {
      throw new KubeTransportError(
        server,
        undefined,
        `path "${request.path}" is not an absolute path on this server`,
      );
    }
    let client: Deno.HttpClient;
    try {
      client = this.clientFor({ ...target, server });
    } catch (error) {
      throw new KubeTransportError(server, error, `invalid TLS settings: ${describeCause(error)}`);
    }
    try {
      return await fetch(server + request.path, {
        method: request.method,
        headers,
        body: request.body,
        client,
        signal: request.signal,
        redirect: "manual",
      });
    } catch (error) {
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
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
