/**
 * Running a claimed request: turns a {@linkcode ClaimedRequest} into a {@linkcode RequestResult}
 * through the Kubernetes client, and reports it in metrics and logs. Large bodies go to the
 * database as they arrive (through `ResponsePieces`), so the worker never holds one whole; what
 * it does hold of a stream or a watch, and what goes to the database, is bounded by its
 * {@linkcode CallLimits}.
 *
 * @module
 */
import type { ClaimedRequest } from "../queue/claim.ts";
import { MAX_DURATION_SECONDS } from "../queue/protocol.ts";
import type { RequestResult } from "../queue/results.ts";
import type { ResponsePieces } from "../queue/pieces.ts";
import { type KubeFetch, type KubeTarget, normalizeServer } from "../kube/client.ts";
import { readResponseBody } from "../kube/body.ts";
import { ByteBudget, ResponseLimitExceeded } from "../kube/limits.ts";
import { splitLines } from "../kube/ndjson.ts";
import { watchOnce } from "../kube/watch.ts";
import {
  CallLimitError,
  type CallLimits,
  checkRequestTimeout,
  DEFAULT_CALL_LIMITS,
  overLimit,
} from "./limits.ts";
import type { DefaultCluster } from "../credentials.ts";
import type { NamedCluster, UnusableCluster } from "../kube/clusters.ts";
import { errorMessage, type Logger } from "../observe.ts";
import { statusClass, type WorkerMetrics } from "../metrics.ts";

/**
 * A response body of this many bytes or more is copied into PostgreSQL as it arrives: the worker's
 * memory stays flat however large a list is.
 */
const LARGE_RESPONSE_BYTES = 256 * 1024;

/** A request being run: `abort` fails it; `finish` ends a watch early with what it has seen. */
export interface Running {
  abort: AbortController;
  finish: AbortController;
  /**
   * For a call started before its row says it runs here (dispatched): settles once it does, and
   * rejects if it never will. A large body waits for it: the row is where its pieces end up.
   */
  claimed?: () => Promise<void>;
}

/** What {@linkcode Caller} works with. */
export interface CallerOptions {
  /** Makes the HTTP calls (`KubeHttp.fetch`). */
  fetch: KubeFetch;
  /** Where large bodies go. */
  pieces: Pick<ResponsePieces, "sink" | "assemble" | "discard">;
  /** The worker's own cluster, if it has one (read at each call: its token rotates). */
  defaults(): DefaultCluster | undefined;
  /** The named cluster `name` as this worker serves it (unusable: with why), if it serves it. */
  cluster?(name: string): NamedCluster | UnusableCluster | undefined;
  /** Servers calls may name in SQL (`server =>`): any (the default), none, or these origins. */
  explicitServers?: ExplicitServers;
  log: Logger;
  metrics?: WorkerMetrics;
  /** Bounds on each call; default {@linkcode DEFAULT_CALL_LIMITS}. */
  limits?: CallLimits;
}

/** Which servers a call may name itself: `any`, `none`, or a list of origins (`https://host:port`). */
export type ExplicitServers = "any" | "none" | string[];

/** Runs claimed requests against their API servers. */
export class Caller {
  readonly #options: CallerOptions;
  readonly #limits: CallLimits;

  /** Runs nothing until asked. */
  constructor(options: CallerOptions) {
    this.#options = options;
    this.#limits = options.limits ?? DEFAULT_CALL_LIMITS;
  }

  /** Runs `request`; never throws: a failure is a `failed` result. */
  async run(request: ClaimedRequest, running: Running): Promise<RequestResult> {
    const started = performance.now();
    let result: RequestResult;
    try {
      result = request.kind === "watch"
        ? await this.#watch(request, running)
        : await this.#call(request, running);
    } catch (error) {
      const limited = error instanceof ResponseLimitExceeded
        ? overLimit(error, request.kind)
        : error;
      result = {
        id: request.id,
        outcome: "failed",
        error: errorMessage(limited),
        ...(limited instanceof CallLimitError ? { code: limited.code } : {}),
      };
    }
    this.#observe(request, result, performance.now() - started);
    return result;
  }

  /** Metrics and a log line for a finished request (never its credentials or body). */
  #observe(request: ClaimedRequest, result: RequestResult, durationMs: number): void {
    const { log, metrics } = this.#options;
    const status = result.outcome === "failed" ? undefined : result.status;
    metrics?.latency.observe(
      { kind: request.kind, method: request.method },
      durationMs / 1000,
    );
    metrics?.results.inc({ kind: request.kind, status_class: statusClass(status) });
    const fields = {
      request: request.id,
      kind: request.kind,
      method: request.method,
      path: request.path,
      status: status ?? null,
      duration_ms: Math.round(durationMs * 10) / 10,
    };
    if (result.outcome === "failed") {
      log.warn("call failed", { ...fields, error: result.error });
    } else if (result.status >= 500) {
      log.warn("call answered with a server error", fields);
    } else {
      log.debug("call finished", fields);
    }
  }

  async #watch(request: ClaimedRequest, running: Running): Promise<RequestResult> {
    const { resourceVersion, timeoutSeconds } = JSON.parse(request.body ?? "{}");
    if (
      !Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 ||
      timeoutSeconds > MAX_DURATION_SECONDS
    ) {
      throw new Error(
        `watch timeout ${timeoutSeconds} is not between 1 and ${MAX_DURATION_SECONDS} seconds`,
      );
    }
    checkRequestTimeout(request.timeoutMs, timeoutSeconds * 1000, this.#limits);
    const watch = async (target: KubeTarget) =>
      await watchOnce(this.#options.fetch, target, {
        path: request.path,
        resourceVersion,
        timeoutSeconds,
        signal: running.abort.signal,
        finish: running.finish.signal,
        // The request timeout: what timeoutMs holds beyond the watch's own duration.
        listTimeoutMs: request.timeoutMs > timeoutSeconds * 1000
          ? request.timeoutMs - timeoutSeconds * 1000
          : undefined,
        maxBytes: this.#limits.maxResponseBytes,
        maxEvents: this.#limits.maxWatchEvents,
      });
    const watched = await this.#send(request, running.abort.signal, watch);
    // A failed list or watch answers with one Status object, any other body as text.
    const body = watched.events.length === 1 && watched.status >= 400
      ? watched.events[0]
      : `[${watched.events.join(",")}]`;
    return { id: request.id, outcome: "response", status: watched.status, body, isJson: true };
  }

  async #call(request: ClaimedRequest, running: Running): Promise<RequestResult> {
    checkRequestTimeout(request.timeoutMs, 0, this.#limits);
    return await withDeadline(
      running.abort.signal,
      request.timeoutMs,
      (callSignal) => this.#callUntil(request, running, callSignal),
    );
  }

  /** {@linkcode #call} with `callSignal` ending it (aborted, or out of time). */
  async #callUntil(
    request: ClaimedRequest,
    running: Running,
    callSignal: AbortSignal,
  ): Promise<RequestResult> {
    const { fetch, pieces } = this.#options;
    const { maxResponseBytes } = this.#limits;
    const send = (target: KubeTarget) =>
      fetch(target, {
        method: request.method,
        path: request.path,
        body: request.body ?? undefined,
        patchType: request.patchType ?? undefined,
        signal: callSignal,
      });
    const response = await this.#send(
      request,
      callSignal,
      send,
      (refused) => refused.body?.cancel(),
    );
    const contentType = response.headers.get("content-type") ?? "";
    const isJson = /\bjson\b/i.test(contentType);
    const { id } = request;
    const status = response.status;
    const retryAfterHeader = response.headers.get("retry-after");
    const retryAfter = retryAfterHeader === null ? {} : { retryAfter: retryAfterHeader };
    if (!response.body || request.method === "HEAD") {
      return { id, outcome: "response", status, body: null, isJson, ...retryAfter };
    }
    if (request.stream && response.ok) {
      // Every line is kept: the budget bounds them all, and the line being read.
      const budget = new ByteBudget(maxResponseBytes);
      const items: string[] = [];
      for await (const line of splitLines(response.body, { budget, signal: callSignal })) {
        items.push(line);
      }
      return {
        id,
        outcome: "response",
        status,
        body: `[${items.join(",")}]`,
        isJson,
        ...retryAfter,
      };
    }
    const body = await readResponseBody(response, {
      largeAt: LARGE_RESPONSE_BYTES,
      openSink: async () => {
        await running.claimed?.();
        return pieces.sink(id, callSignal);
      },
      maxBytes: maxResponseBytes,
      signal: callSignal,
    });
    if (body !== null) return { id, outcome: "response", status, body, isJson, ...retryAfter };
    try {
      await pieces.assemble(id, isJson);
    } catch (error) {
      await pieces.discard(id).catch(() => {});
      throw new Error(`the response could not be stored: ${errorMessage(error)}`);
    }
    return { id, outcome: "stored", status, ...retryAfter };
  }

  /** The named cluster `name`, if this worker serves it and can use it; else why not. */
  #cluster(name: string): NamedCluster {
    const cluster = this.#options.cluster?.(name);
    if (!cluster) throw new Error(`this worker does not serve cluster "${name}"`);
    if ("error" in cluster) throw new Error(`cluster "${name}" cannot be used: ${cluster.error}`);
    return cluster;
  }

  /**
   * Server and credentials for a request that names no cluster, as {@linkcode targetFor} says.
   * A server the request names itself must be one `explicitServers` allows.
   */
  #plainTarget(request: ClaimedRequest): KubeTarget {
    if (request.server !== null) checkExplicitServer(request.server, this.#options.explicitServers);
    return targetFor(request, this.#options.defaults());
  }

  /**
   * `send` with the request's server and credentials: its named cluster's (renewed once after a
   * 401, see {@linkcode NamedCluster.send}), else {@linkcode #plainTarget}'s, sent at once.
   */
  #send<T extends { status: number }>(
    request: ClaimedRequest,
    signal: AbortSignal,
    send: (target: KubeTarget) => Promise<T>,
    discard?: (refused: T) => Promise<void> | undefined,
  ): Promise<T> {
    return request.cluster === null
      ? send(this.#plainTarget(request))
      : this.#cluster(request.cluster).send(signal, send, discard);
  }
}

/**
 * Runs `use` with a signal that aborts when `signal` does or after `timeoutMs` (a TimeoutError),
 * and forgets the timer when `use` settles. (`AbortSignal.timeout` cannot be cancelled: each call
 * would keep its timer and signals for the whole timeout, tens of thousands of them at high rates.)
 */
export async function withDeadline<T>(
  signal: AbortSignal,
  timeoutMs: number,
  use: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = new AbortController();
  const follow = () => deadline.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  const timer = setTimeout(
    () => deadline.abort(new DOMException("signal timed out", "TimeoutError")),
    timeoutMs,
  );
  try {
    return await use(deadline.signal);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", follow);
  }
}

/** Throws unless `allowed` lets a call name `server` itself. */
export function checkExplicitServer(server: string, allowed: ExplicitServers = "any"): void {
  if (allowed === "any") return;
  if (allowed === "none") {
    throw new Error(
      "this worker calls no server named in SQL (--explicit-servers none): name a cluster it serves",
    );
  }
  if (!allowed.includes(normalizeServer(server).toLowerCase())) {
    throw new Error(
      `this worker does not call ${server} (--explicit-servers allows ${allowed.join(", ")})`,
    );
  }
}

/**
 * Server and credentials for a request. The worker's own (`defaults`) go only to its own server:
 * its CA with any credentials, its token or client certificate only when the request asks for
 * the worker's default credentials.
 */
export function targetFor(
  request: ClaimedRequest,
  defaults: DefaultCluster | undefined,
): KubeTarget {
  const server = request.server ?? defaults?.target.server;
  if (!server) {
    throw new Error(
      "no server: name one (server parameter or the omni_kube.server setting), or give the " +
        "worker a default cluster (run it in a pod, or set KUBECONFIG)",
    );
  }
  const own = defaults !== undefined &&
    normalizeServer(server) === normalizeServer(defaults.target.server);
  const ownTarget = own ? defaults.target : undefined;
  const clientCert = request.clientCertificate && request.clientPrivateKey
    ? { certificate: request.clientCertificate, privateKey: request.clientPrivateKey }
    : undefined;
  return {
    server,
    caCert: request.cacert ?? ownTarget?.caCert,
    ...(request.useWorkerDefault
      ? { token: ownTarget?.token, clientCert: ownTarget?.clientCert }
      : { token: request.token ?? undefined, clientCert }),
  };
}
