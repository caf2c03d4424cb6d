/**
 * The worker loop: notify -> claim -> call -> write back -> release. It joins the queue (SQL) and
 * the Kubernetes client (HTTP); each stays ignorant of the other.
 *
 * @module
 */
import { hostname } from "node:os";
import postgres from "postgres";
import { connect, type Sql } from "./db.ts";
import { migrate } from "./migrate.ts";
import {
  CANCEL_CHANNEL,
  type ClaimedRequest,
  DONE_CHANNEL,
  Queue,
  queueDepth,
  REQUEST_CHANNEL,
  REQUEST_KINDS,
  type RequestKind,
  type RequestResult,
  ResponsePieces,
} from "./queue.ts";
import { readResponseBody } from "./kube/body.ts";
import { watchOnce } from "./kube/watch.ts";
import { KubeHttp, type KubeTarget, normalizeServer } from "./kube/client.ts";
import { splitLines } from "./kube/ndjson.ts";
import { type DefaultCluster, defaultCluster, podServiceAccount } from "./credentials.ts";
import { errorMessage, type Logger, logger } from "./observe.ts";
import { statusClass, WorkerMetrics } from "./metrics.ts";
import { serveHealth } from "./health.ts";
import { pendingMigrations } from "./migrate.ts";

/** Worker settings (see lib/cli.ts for their flags and environment variables). */
export interface WorkerConfig {
  databaseUrl: string;
  /** api() calls run at once; more wait in the queue. */
  concurrency: number;
  /** Watches run at once, apart from api() calls. */
  watchConcurrency: number;
  /** Finished requests are kept this long for inspection. */
  retentionSeconds: number;
  /** Locks held ahead of the id sequence, so callers of new requests wake exactly. */
  lockWindow: number;
  heartbeatMs: number;
  /** Apply pending migrations at start. */
  migrate: boolean;
  /** Kubeconfig for the worker's own cluster (default `$KUBECONFIG`, then `~/.kube/config`). */
  kubeconfig?: string;
  /** Where a pod's service account is mounted (default the standard path). */
  serviceAccountDir?: string;
  /** Port of /healthz, /readyz and /metrics (0: any free port); no server when absent. */
  httpPort?: number;
  httpHostname: string;
  /** On stop, calls in flight get this long to finish before they are failed. */
  shutdownGraceMs: number;
}

/** Defaults for {@linkcode WorkerConfig}. */
export const DEFAULT_WORKER_CONFIG: Omit<WorkerConfig, "databaseUrl"> = {
  concurrency: 128,
  watchConcurrency: 1024,
  retentionSeconds: 600,
  lockWindow: 256,
  heartbeatMs: 1000,
  migrate: true,
  httpHostname: "0.0.0.0",
  shutdownGraceMs: 10_000,
};

/** A request being run: `abort` fails it; `finish` ends a watch early with what it has seen. */
interface Running {
  kind: RequestKind;
  abort: AbortController;
  finish: AbortController;
}

const PURGE_INTERVAL_MS = 30_000;
/**
 * A response body of this many bytes or more is copied into PostgreSQL as it arrives: the worker's
 * memory stays flat however large a list is.
 */
const LARGE_RESPONSE_BYTES = 256 * 1024;
/** Large bodies copied at once; more wait (and are read no faster) until a session is free. */
const COPY_SESSIONS = 4;

/** A running worker. */
export class Worker {
  readonly id = crypto.randomUUID();
  readonly #config: WorkerConfig;
  readonly #log: Logger;
  readonly #http = new KubeHttp();
  #sql!: Sql;
  #queue!: Queue;
  #pieces!: ResponsePieces;
  #defaults: DefaultCluster | undefined;
  /** Requests this worker is running. */
  readonly #running = new Map<number, Running>();
  readonly #runningCount: Record<RequestKind, number> = { api: 0, watch: 0 };
  #claiming: Promise<void> | undefined;
  #wakeAgain = false;
  #pending: RequestResult[] = [];
  #flushing: Promise<void> | undefined;
  /** Ids whose locks this worker holds, with how many times. */
  readonly #held = new Map<number, number>();
  #windowEnd = 0;
  #timers: ReturnType<typeof setInterval>[] = [];
  #ticking = false;
  #stopping = false;
  #unlisten: (() => Promise<void>) | undefined;
  /**
   * The queue session: a client of its own with one connection, which holds the worker's locks.
   * (Not `sql.reserve()`: postgres.js crashes the process on a write to a reserved connection
   * whose backend died, porsager/postgres#1208; a one-connection client reconnects instead.)
   */
  #sessionSql: Sql | undefined;
  #sessionLost = false;
  #lastPurge = 0;
  #lastHeartbeat = 0;
  #metrics: WorkerMetrics | undefined;
  #httpServer: Deno.HttpServer<Deno.NetAddr> | undefined;

  constructor(config: WorkerConfig, log: Logger = logger) {
    this.#config = config;
    this.#log = log;
  }

  /** The worker's metrics (available once started). */
  get metrics(): WorkerMetrics | undefined {
    return this.#metrics;
  }

  /** Address of the health and metrics endpoints, when they are served. */
  get httpAddress(): Deno.NetAddr | undefined {
    return this.#httpServer?.addr;
  }

  /** Null when the worker can serve: database reachable, migrations applied. Else why not. */
  async notReadyReason(): Promise<string | null> {
    if (this.#stopping) return "shutting down";
    if (Date.now() - this.#lastHeartbeat > 3 * this.#config.heartbeatMs + 1000) {
      return "no heartbeat reached the database recently";
    }
    const pending = await pendingMigrations(this.#sql);
    return pending.length > 0 ? `migrations not applied: ${pending.join(", ")}` : null;
  }

  /** Connects, migrates, registers, takes the lock window and starts serving. */
  async start(): Promise<void> {
    this.#sql = connect(this.#config.databaseUrl, { max: 4 });
    this.#pieces = new ResponsePieces(
      this.#sql,
      this.id,
      () => connect(this.#config.databaseUrl, { max: 1, applicationName: "omni_kube_worker_copy" }),
      COPY_SESSIONS,
    );
    this.#metrics = new WorkerMetrics(() => queueDepth(this.#sql));
    if (this.#config.httpPort !== undefined) {
      this.#httpServer = serveHealth({
        notReadyReason: () => this.notReadyReason(),
        metrics: () => this.#metrics!.text(),
      }, { hostname: this.#config.httpHostname, port: this.#config.httpPort });
    }
    if (this.#config.migrate) {
      const applied = await migrate(this.#sql);
      if (applied.length) this.#log.info("migrations applied", { migrations: applied });
    }
    try {
      this.#defaults = await defaultCluster({
        KUBECONFIG: this.#config.kubeconfig ?? Deno.env.get("KUBECONFIG"),
        HOME: Deno.env.get("HOME"),
      }, this.#config.serviceAccountDir);
    } catch (error) {
      this.#log.warn("default cluster unusable; calls must name server and credentials", {
        error: errorMessage(error),
      });
    }
    this.#log.info("default cluster", {
      source: this.#defaults?.source ?? "none",
      server: this.#defaults?.target.server ?? null,
    });
    await this.#openSession();
    const requests = await this.#sql.listen(REQUEST_CHANNEL, () => this.wake(), () => {
      // (Re)connected: notifications sent while away are lost, so look for queued work.
      this.wake();
    });
    const done = await this.#sql.listen(DONE_CHANNEL, (payload) => this.#onDone(payload));
    const cancel = await this.#sql.listen(
      CANCEL_CHANNEL,
      (payload) => this.#abort(payload.split(",").map(Number), "cancelled by the caller"),
    );
    this.#unlisten = async () => {
      for (const listener of [requests, done, cancel]) await listener.unlisten();
    };
    this.#timers.push(setInterval(() => this.#tick(), this.#config.heartbeatMs));
    this.#log.info("worker started", {
      worker: this.id,
      concurrency: this.#config.concurrency,
    });
    this.wake();
  }

  /**
   * Opens the queue session (once), registers the worker on it and takes the lock window. Called
   * at start and after the session's connection was lost, which also lost every lock it held.
   */
  async #openSession(): Promise<void> {
    this.#sessionSql ??= connect(this.#config.databaseUrl, {
      max: 1,
      applicationName: "omni_kube_worker_queue",
      keepConnections: true,
      // Its statements are prepared, and a plan made while the queue table was nearly empty (a
      // fresh install) is a sequential scan that would be kept as the table grows, until the next
      // autoanalyze: every one of them has an index that suits it at any size. (Without JIT: the
      // cost that setting gives a sequential scan would compile its small statements with LLVM.)
      settings: { enable_seqscan: "off", jit: "off" },
      onclose: () => {
        // Its locks went with the connection; the next heartbeat registers again.
        this.#held.clear();
        this.#sessionLost = true;
      },
    });
    this.#queue ??= new Queue(this.#sessionSql, this.id);
    this.#sessionLost = false;
    this.#held.clear();
    await this.#queue.register(hostname(), Deno.pid);
    this.#lastHeartbeat = Date.now();
    await this.#publishPodCredentials();
    const next = await this.#queue.nextRequestId();
    this.#windowEnd = next;
    await this.#extendWindow(next + this.#config.lockWindow);
  }

  /** Re-reads the pod's service account (its token rotates) and publishes it. */
  async #publishPodCredentials(): Promise<void> {
    const pod = await podServiceAccount(this.#config.serviceAccountDir);
    if (!pod) return;
    if (this.#defaults?.source === pod.source) this.#defaults = pod;
    await this.#queue.publishPodCredentials(pod.target.token!, pod.target.caCert);
  }

  /** Looks for queued requests now. */
  wake(): void {
    if (this.#stopping) return;
    if (this.#claiming) {
      this.#wakeAgain = true;
      return;
    }
    this.#claiming = this.#claimLoop().catch((error) => {
      this.#log.error("claim failed", { error: String(error) });
    }).finally(() => this.#claiming = undefined);
  }

  async #claimLoop(): Promise<void> {
    do {
      this.#wakeAgain = false;
      while (!this.#stopping) {
        // Watches have slots of their own: long watches never hold up api() calls.
        const rooms = { api: this.#room("api"), watch: this.#room("watch") };
        if (rooms.api <= 0 && rooms.watch <= 0) break; // a finishing call wakes us again
        const claimStarted = performance.now();
        const claimed = await this.#queue.claim({
          api: Math.max(rooms.api, 0),
          watch: Math.max(rooms.watch, 0),
        });
        this.#metrics?.queueStatements.observe(
          { statement: "claim" },
          (performance.now() - claimStarted) / 1000,
        );
        for (const request of claimed) this.#start(request);
        if (claimed.length === 0) break;
        await this.#extendWindow(claimed[claimed.length - 1].id + 1 + this.#config.lockWindow);
        // A full slot count claimed means more may be waiting: claim again.
        const full = REQUEST_KINDS.some((kind) =>
          rooms[kind] > 0 && claimed.filter((r) => r.kind === kind).length === rooms[kind]
        );
        if (!full) break;
      }
    } while (this.#wakeAgain && !this.#stopping);
  }

  #room(kind: RequestKind): number {
    const limit = kind === "api" ? this.#config.concurrency : this.#config.watchConcurrency;
    return limit - this.#runningCount[kind];
  }

  #start(request: ClaimedRequest): void {
    if (request.locked) this.#hold(request.id);
    const running = {
      kind: request.kind,
      abort: new AbortController(),
      finish: new AbortController(),
    };
    this.#running.set(request.id, running);
    this.#runningCount[request.kind]++;
    this.#metrics?.inFlight.inc({ kind: request.kind });
    this.#run(request, running).finally(() => {
      this.#running.delete(request.id);
      this.#runningCount[request.kind]--;
      this.#metrics?.inFlight.dec({ kind: request.kind });
      if (this.#wakeAgain || this.#room(request.kind) === 1) this.wake();
    });
  }

  /** Callers gave up on these requests (cancelled statement, caller gone): stop them. */
  #abort(ids: number[], reason: string): void {
    for (const id of ids) {
      const controller = this.#running.get(id)?.abort;
      if (controller && !controller.signal.aborted) {
        this.#log.info("call aborted", { request: id, reason });
        controller.abort(new DOMException(reason, "AbortError"));
      }
    }
  }

  #hold(id: number) {
    this.#held.set(id, (this.#held.get(id) ?? 0) + 1);
  }

  /** Locks the ids in [start, end) that this worker does not hold yet. */
  async #lockRange(start: number, end: number): Promise<void> {
    const ids: number[] = [];
    for (let id = start; id < end; id++) if (!this.#held.has(id)) ids.push(id);
    for (const id of await this.#queue.tryLock(ids)) this.#hold(id);
  }

  /** Extends the window of locks held ahead of the id sequence up to `end` (exclusive). */
  async #extendWindow(end: number): Promise<void> {
    if (end <= this.#windowEnd) return;
    const start = Math.max(this.#windowEnd, end - this.#config.lockWindow);
    this.#windowEnd = end;
    await this.#lockRange(start, end);
  }

  /** Releases every hold on `ids`. */
  async #release(ids: number[]): Promise<void> {
    const unlocks: number[] = [];
    for (const id of ids) {
      for (let n = this.#held.get(id) ?? 0; n > 0; n--) unlocks.push(id);
      this.#held.delete(id);
    }
    await this.#queue.unlock(unlocks);
  }

  /** Another worker finished requests: release the window locks this worker holds for them. */
  #onDone(payload: string): void {
    if (payload === "*") {
      this.#tick();
      return;
    }
    const ids = payload.split(",").map(Number).filter((id) =>
      this.#held.has(id) && !this.#running.has(id)
    );
    if (ids.length > 0) {
      this.#release(ids).catch((error) =>
        this.#log.error("unlock failed", { error: String(error) })
      );
    }
  }

  async #run(request: ClaimedRequest, running: Running): Promise<void> {
    const started = performance.now();
    let result: RequestResult;
    try {
      result = request.kind === "watch"
        ? await this.#watch(request, running)
        : await this.#call(request, running.abort.signal);
    } catch (error) {
      result = {
        id: request.id,
        outcome: "failed",
        error: errorMessage(error),
      };
    }
    this.#observe(request, result, performance.now() - started);
    this.#pending.push(result);
    await this.#flush();
  }

  /** Metrics and a log line for a finished request (never its credentials or body). */
  #observe(request: ClaimedRequest, result: RequestResult, durationMs: number): void {
    const status = result.outcome === "failed" ? undefined : result.status;
    this.#metrics?.latency.observe(
      { kind: request.kind, method: request.method },
      durationMs / 1000,
    );
    this.#metrics?.results.inc({ kind: request.kind, status_class: statusClass(status) });
    const fields = {
      request: request.id,
      kind: request.kind,
      method: request.method,
      path: request.path,
      status: status ?? null,
      duration_ms: Math.round(durationMs * 10) / 10,
    };
    if (result.outcome === "failed") {
      this.#log.warn("call failed", { ...fields, error: result.error });
    } else if (result.status >= 500) {
      this.#log.warn("call answered with a server error", fields);
    } else {
      this.#log.debug("call finished", fields);
    }
  }

  /** Writes pending results in batches: results arriving during a write go in the next one. */
  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.#flush());
    if (this.#pending.length === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = [];
    this.#flushing = (async () => {
      try {
        // Sent back to back on the queue session (postgres.js pipelines them): the unlock that wakes
        // the callers runs right after the results commit, without waiting a round trip.
        const started = performance.now();
        await Promise.all([
          this.#queue.complete(batch),
          this.#release(batch.map((r) => r.id)),
        ]);
        this.#metrics?.queueStatements.observe(
          { statement: "complete" },
          (performance.now() - started) / 1000,
        );
      } catch (error) {
        await this.#completeAfterFailure(batch, error);
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  /**
   * A batch of results could not be written. If the database refused one of them, write them one
   * by one, recording a refused one as failed; if the session was lost, keep them for the next
   * heartbeat, which reconnects and writes them then.
   */
  async #completeAfterFailure(batch: RequestResult[], error: unknown): Promise<void> {
    if (!(error instanceof postgres.PostgresError)) {
      this.#log.error("writing results failed; will retry", {
        error: String(error),
        count: batch.length,
      });
      this.#pending.unshift(...batch);
      return;
    }
    for (const result of batch) {
      try {
        await this.#queue.complete([result], { tolerant: true });
      } catch (refused) {
        this.#log.error("result refused by the database", {
          request: result.id,
          error: String(refused),
        });
        await this.#queue.complete([{
          id: result.id,
          outcome: "failed",
          error: `the response could not be stored: ${errorMessage(refused)}`,
        }]).catch(() => {});
      }
    }
  }

  /** Server and credentials for a request; the worker's own go only to its own server. */
  #target(request: ClaimedRequest): KubeTarget {
    const server = request.server ?? this.#defaults?.target.server;
    if (!server) {
      throw new Error(
        "no server: name one (server parameter or the omni_kube.server setting), or give the " +
          "worker a default cluster (run it in a pod, or set KUBECONFIG)",
      );
    }
    const own = this.#defaults !== undefined &&
      normalizeServer(server) === normalizeServer(this.#defaults.target.server);
    const defaults = own ? this.#defaults!.target : undefined;
    const clientCert = request.clientCertificate && request.clientPrivateKey
      ? { certificate: request.clientCertificate, privateKey: request.clientPrivateKey }
      : undefined;
    return {
      server,
      caCert: request.cacert ?? defaults?.caCert,
      ...(request.useWorkerDefault
        ? { token: defaults?.token, clientCert: defaults?.clientCert }
        : { token: request.token ?? undefined, clientCert }),
    };
  }

  async #watch(request: ClaimedRequest, running: Running): Promise<RequestResult> {
    const { resourceVersion, timeoutSeconds } = JSON.parse(request.body ?? "{}");
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 3600) {
      throw new Error(`watch timeout ${timeoutSeconds} is not between 1 and 3600 seconds`);
    }
    const watched = await watchOnce(this.#http, this.#target(request), {
      path: request.path,
      resourceVersion,
      timeoutSeconds,
      signal: running.abort.signal,
      finish: running.finish.signal,
    });
    // A failed list or watch answers with one Status object, any other body as text.
    const body = watched.events.length === 1 && watched.status >= 400
      ? watched.events[0]
      : `[${watched.events.join(",")}]`;
    return { id: request.id, outcome: "response", status: watched.status, body, isJson: true };
  }

  async #call(request: ClaimedRequest, signal: AbortSignal): Promise<RequestResult> {
    const target = this.#target(request);
    const callSignal = AbortSignal.any([signal, AbortSignal.timeout(request.timeoutMs)]);
    const response = await this.#http.fetch(target, {
      method: request.method,
      path: request.path,
      body: request.body ?? undefined,
      patchType: request.patchType ?? undefined,
      signal: callSignal,
    });
    const contentType = response.headers.get("content-type") ?? "";
    const isJson = /\bjson\b/i.test(contentType);
    const { id } = request;
    const status = response.status;
    if (!response.body || request.method === "HEAD") {
      return { id, outcome: "response", status, body: null, isJson };
    }
    if (request.stream && response.ok) {
      const items: string[] = [];
      for await (const line of splitLines(response.body)) items.push(line);
      return { id, outcome: "response", status, body: `[${items.join(",")}]`, isJson };
    }
    const body = await readResponseBody(response, {
      largeAt: LARGE_RESPONSE_BYTES,
      openSink: () => this.#pieces.sink(id, callSignal),
    });
    if (body !== null) return { id, outcome: "response", status, body, isJson };
    try {
      await this.#pieces.assemble(id, isJson);
    } catch (error) {
      await this.#pieces.discard(id).catch(() => {});
      throw new Error(`the response could not be stored: ${errorMessage(error)}`);
    }
    return { id, outcome: "stored", status };
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopping) return;
    this.#ticking = true;
    try {
      if (this.#sessionLost && !this.#stopping) {
        this.#metrics?.reconnects.inc();
        this.#log.warn("queue session lost; registering again");
        await this.#openSession();
      }
      await this.#queue.heartbeat();
      this.#lastHeartbeat = Date.now();
      // Locks held for requests that another worker ran, or that were abandoned or never issued.
      await this.#release(await this.#queue.settled([...this.#held.keys()]));
      this.#abort(await this.#queue.orphaned([...this.#running.keys()]), "the caller is gone");
      if (this.#pending.length > 0) await this.#flush();
      // Take over window locks that another worker held before it stopped.
      const next = await this.#queue.nextRequestId();
      await this.#lockRange(next, next + this.#config.lockWindow);
      this.#windowEnd = Math.max(this.#windowEnd, next + this.#config.lockWindow);
      const purgeEvery = Math.min(PURGE_INTERVAL_MS, this.#config.retentionSeconds * 1000);
      if (Date.now() - this.#lastPurge > purgeEvery) {
        await this.#publishPodCredentials();
        this.#lastPurge = Date.now();
        const purged = await this.#queue.purge(this.#config.retentionSeconds);
        if (purged > 0) this.#log.debug("purged finished requests", { count: purged });
      }
      this.wake();
    } catch (error) {
      // The session reconnects by itself on the next query; registration follows at the next
      // heartbeat once it has succeeded.
      this.#log.error("heartbeat failed; retrying", { error: String(error) });
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * Graceful shutdown: stops claiming; ends watches at once with the events they have (their
   * callers resume from the final bookmark); gives calls in flight `shutdownGraceMs` to finish,
   * then fails the rest so that their callers are told at once; then disconnects.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const timer of this.#timers) clearInterval(timer);
    await this.#unlisten?.().catch(() => {});
    await this.#claiming;
    for (const running of this.#running.values()) running.finish.abort();
    const deadline = Date.now() + this.#config.shutdownGraceMs;
    while (this.#running.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#abort([...this.#running.keys()], "the worker shut down before the call finished");
    while (this.#running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.#flush();
    await this.#queue?.unregister().catch(() => {});
    this.#http.close();
    await this.#httpServer?.shutdown();
    await this.#sessionSql?.end({ timeout: 2 });
    await this.#pieces?.close();
    await this.#sql?.end({ timeout: 2 });
    this.#log.info("worker stopped", { worker: this.id });
  }
}
