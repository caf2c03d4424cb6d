/**
 * The worker: notify -> claim -> call -> write back -> release. It composes the parts in
 * ./worker/, which join the queue (SQL, ./queue/) and the Kubernetes client (HTTP, ./kube/);
 * each of those stays ignorant of the other.
 *
 * @module
 */
import { hostname } from "node:os";
import { connect, RenewableSession, type Sql } from "./db.ts";
import { describeMigration, IncompatibleDatabase, migrate, pendingMigrations } from "./migrate.ts";
import { RELEASE } from "./version.ts";
import {
  ASYNC_CHANNEL,
  CANCEL_CHANNEL,
  DONE_CHANNEL,
  idsOf,
  protocolMismatch,
  REQUEST_CHANNEL,
  type RequestKind,
} from "./queue/protocol.ts";
import { type ClaimedRequest, ClaimStatements } from "./queue/claim.ts";
import { LockStatements } from "./queue/locks.ts";
import { ResultStatements } from "./queue/results.ts";
import { MaintenanceStatements } from "./queue/maintenance.ts";
import { ResponsePieces } from "./queue/pieces.ts";
import { asyncDepth, queueDepth } from "./queue/inspect.ts";
import { KubeHttp } from "./kube/client.ts";
import {
  type DefaultCluster,
  defaultCluster,
  kubeconfigFiles,
  podServiceAccount,
} from "./credentials.ts";
import { errorMessage, type Logger, logger } from "./observe.ts";
import { WorkerMetrics } from "./metrics.ts";
import { serveHealth } from "./health.ts";
import { ClaimLoop } from "./worker/claim_loop.ts";
import { Dispatcher } from "./worker/dispatch.ts";
import { LockWindow } from "./worker/lock_window.ts";
import { ResultWriter } from "./worker/result_writer.ts";
import { Caller, type ExplicitServers, type Running } from "./worker/call.ts";
import { ServedClusters } from "./worker/clusters.ts";
import { type CallLimits, DEFAULT_CALL_LIMITS } from "./worker/limits.ts";
import { Maintenance } from "./worker/maintenance.ts";
import { LiveMirror } from "./live/mirror.ts";
import { LIVE_CHANNEL } from "./live/registry.ts";
import { AsyncCalls } from "./async/runner.ts";
import { AsyncStatements } from "./async/statements.ts";
import { AsyncPieces } from "./async/pieces.ts";
import { MemberSessions } from "./member_sessions.ts";

/**
 * Worker settings (see lib/cli.ts for their flags and environment variables); the
 * {@linkcode CallLimits} bound each call.
 */
export interface WorkerConfig extends CallLimits {
  /** The database the queue is in (a postgres:// URL). */
  databaseUrl: string;
  /** api() calls run at once; more wait in the queue. */
  concurrency: number;
  /** Watches run at once, apart from api() calls. */
  watchConcurrency: number;
  /** api_async() calls run at once, apart from api() calls and watches. */
  asyncConcurrency: number;
  /** api() calls of one role run at once (default: half of `concurrency`; see {@linkcode roleLimits}). */
  roleConcurrency?: number;
  /** Watches of one role run at once. */
  roleWatchConcurrency: number;
  /** Requests one role may have queued; an enqueue past it fails with SQLSTATE OKL03. */
  roleQueueLimit: number;
  /** Finished requests are kept this long for inspection. */
  retentionSeconds: number;
  /** Locks held ahead of the id sequence, so callers of new requests wake exactly. */
  lockWindow: number;
  /** How often the worker marks itself alive and does its upkeep (see lib/worker/maintenance.ts). */
  heartbeatMs: number;
  /** Apply pending migrations at start. */
  migrate: boolean;
  /**
   * Kubeconfig files, `:`-separated and merged as kubectl merges them (default `$KUBECONFIG`,
   * then `~/.kube/config`): its current context is the worker's own cluster, and its contexts are
   * the named clusters it serves.
   */
  kubeconfig?: string;
  /** The contexts served as named clusters (default: all of the kubeconfig's). */
  contexts?: string[];
  /**
   * The context that is the worker's own cluster, for calls that name none, instead of the
   * current one (a pod's service account comes first); `none`: no default cluster at all, not
   * even the pod's, so that every call names a cluster (whose grants then govern all use) or a
   * server.
   */
  defaultContext?: string;
  /** Servers calls may name in SQL (`server =>`): any (default), none, or these origins. */
  explicitServers?: ExplicitServers;
  /** How often each named cluster's /version is probed for `omni_kube.clusters`. */
  clusterProbeMs?: number;
  /**
   * How long each watch of a live table runs before the next takes over (default 300 s); the
   * server sends a bookmark shortly before each ends.
   */
  liveWatchSeconds?: number;
  /**
   * Whether live tables list with streaming lists where the server has them (default true), or
   * always in pages, as with a server that has none.
   */
  liveStreamingLists?: boolean;
  /** Where a pod's service account is mounted (default the standard path). */
  serviceAccountDir?: string;
  /** Port of /healthz, /readyz and /metrics (0: any free port); no server when absent. */
  httpPort?: number;
  /** Address the health and metrics endpoints listen on. */
  httpHostname: string;
  /** On stop, calls in flight get this long to finish before they are failed. */
  shutdownGraceMs: number;
}

/** Defaults for {@linkcode WorkerConfig}. */
export const DEFAULT_WORKER_CONFIG: Omit<WorkerConfig, "databaseUrl"> = {
  concurrency: 128,
  watchConcurrency: 1024,
  asyncConcurrency: 64,
  roleWatchConcurrency: 256,
  roleQueueLimit: 100_000,
  retentionSeconds: 600,
  lockWindow: 256,
  heartbeatMs: 1000,
  migrate: true,
  httpHostname: "0.0.0.0",
  shutdownGraceMs: 10_000,
  ...DEFAULT_CALL_LIMITS,
};

/** `--explicit-servers` as `omni_kube.workers.explicit_servers` holds it. */
export function explicitServersSetting(allowed: ExplicitServers = "any"): string {
  return typeof allowed === "string" ? allowed : allowed.join(",");
}

/**
 * Requests of each kind one role runs at once: `roleConcurrency` (else half of `concurrency`, at
 * least one) api() calls and `roleWatchConcurrency` watches.
 */
export function roleLimits(
  config: Pick<WorkerConfig, "concurrency" | "roleConcurrency" | "roleWatchConcurrency">,
): Record<RequestKind, number> {
  return {
    api: config.roleConcurrency ?? Math.max(1, Math.floor(config.concurrency / 2)),
    watch: config.roleWatchConcurrency,
  };
}

/** How often named clusters are probed, by default. */
const CLUSTER_PROBE_MS = 30_000;

/** Large bodies copied at once; more wait (and are read no faster) until a session is free. */
const COPY_SESSIONS = 4;

/** Why a dispatched call is stopped when its claim finds it is not this worker's. */
const notOurs = () =>
  new DOMException("another worker claimed it, or its caller gave up", "AbortError");

/** A running worker. */
export class Worker {
  /** This worker's id in `omni_kube.workers`. */
  readonly id = crypto.randomUUID();
  readonly #config: WorkerConfig;
  readonly #log: Logger;
  readonly #http = new KubeHttp();
  #sql!: Sql;
  /**
   * The queue session: a client of its own with one connection, which holds the worker's locks.
   * (Not `sql.reserve()`: postgres.js crashes the process on a write to a reserved connection
   * whose backend died, porsager/postgres#1208; a one-connection client reconnects instead.)
   */
  #session: Sql | undefined;
  #pieces!: ResponsePieces;
  #defaults: DefaultCluster | undefined;
  /** The named clusters this worker serves. */
  #clusters!: ServedClusters;
  /** Requests this worker is running. */
  readonly #running = new Map<number, Running>();
  /**
   * Dispatched requests running whose rows do not say so yet (see ./worker/dispatch.ts), with
   * what confirms them when this worker's own claim takes one first.
   */
  readonly #unclaimed = new Map<number, (claimed: boolean) => void>();
  #claimLoop: ClaimLoop | undefined;
  #dispatcher: Dispatcher | undefined;
  #window!: LockWindow;
  #caller!: Caller;
  #writer: ResultWriter | undefined;
  #maintenance: Maintenance | undefined;
  /** The live tables this worker mirrors. */
  #live: LiveMirror | undefined;
  /** Async calls (api_async), on sessions of their own. */
  #async: AsyncCalls | undefined;
  #asyncSession: RenewableSession | undefined;
  #callbackSessions: MemberSessions | undefined;
  #upkeep: MaintenanceStatements | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #stopping = false;
  #unlisten: (() => Promise<void>) | undefined;
  #metrics: WorkerMetrics | undefined;
  #httpServer: Deno.HttpServer<Deno.NetAddr> | undefined;

  /** Does nothing until started; `log` receives the worker's log lines. */
  constructor(config: WorkerConfig, log: Logger = logger) {
    this.#config = config;
    this.#log = log;
  }

  /** The worker's metrics (available once started). */
  get metrics(): WorkerMetrics | undefined {
    return this.#metrics;
  }

  /** Ids (in `omni_kube.live_registry`) of the live tables this worker mirrors now. */
  get liveTables(): number[] {
    return this.#live?.tables ?? [];
  }

  /** Address of the health and metrics endpoints, when they are served. */
  get httpAddress(): Deno.NetAddr | undefined {
    return this.#httpServer?.addr;
  }

  /** Null when the worker can serve: database reachable, migrations applied. Else why not. */
  async notReadyReason(): Promise<string | null> {
    if (this.#stopping) return "shutting down";
    const lastHeartbeat = this.#maintenance?.lastHeartbeat ?? 0;
    if (Date.now() - lastHeartbeat > 3 * this.#config.heartbeatMs + 1000) {
      return "no heartbeat reached the database recently";
    }
    try {
      const pending = await pendingMigrations(this.#sql);
      return pending.length > 0 ? `migrations not applied: ${pending.join(", ")}` : null;
    } catch (error) {
      return errorMessage(error);
    }
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
    this.#metrics = new WorkerMetrics(() => queueDepth(this.#sql), () => asyncDepth(this.#sql));
    if (this.#config.httpPort !== undefined) {
      this.#httpServer = serveHealth({
        notReadyReason: () => this.notReadyReason(),
        metrics: () => this.#metrics!.text(),
      }, { hostname: this.#config.httpHostname, port: this.#config.httpPort });
    }
    await this.#prepareDatabase();
    const kubeconfig = {
      KUBECONFIG: this.#config.kubeconfig ?? Deno.env.get("KUBECONFIG"),
      HOME: Deno.env.get("HOME"),
    };
    try {
      this.#defaults = this.#config.defaultContext === "none" ? undefined : await defaultCluster(
        kubeconfig,
        this.#config.serviceAccountDir,
        this.#config.defaultContext,
      );
    } catch (error) {
      this.#log.warn("default cluster unusable; calls must name server and credentials", {
        error: errorMessage(error),
      });
    }
    this.#log.info("default cluster", {
      source: this.#defaults?.source ?? "none",
      server: this.#defaults?.target.server ?? null,
    });
    this.#clusters = new ServedClusters({
      fetch: (target, request) => this.#http.fetch(target, request),
      publish: (clusters) => this.#upkeep!.publishClusters(clusters),
      log: this.#log,
    });
    await this.#clusters.load(
      kubeconfigFiles(kubeconfig),
      this.#config.contexts,
      await podServiceAccount(this.#config.serviceAccountDir),
    );
    const maintenance = this.#compose();
    await maintenance.register();
    await this.#upkeep!.recordRoleQueueLimit(this.#config.roleQueueLimit);
    await this.#clusters.publish();
    if (this.#clusters.size > 0) {
      const probe = () =>
        this.#clusters.probe().catch((error) =>
          this.#log.warn("publishing the clusters failed", { error: errorMessage(error) })
        );
      probe();
      this.#timers.push(setInterval(probe, this.#config.clusterProbeMs ?? CLUSTER_PROBE_MS));
    }
    const requests = await this.#sql.listen(REQUEST_CHANNEL, () => this.wake(), () => {
      // (Re)connected: notifications sent while away are lost, so look for queued work.
      this.wake();
    });
    const done = await this.#sql.listen(DONE_CHANNEL, (payload) => this.#onDone(payload));
    const dispatch = await this.#listenForDispatch();
    const cancel = await this.#sql.listen(
      CANCEL_CHANNEL,
      // Anyone may send it: the check acts only on what the queue's rows say.
      () => maintenance.stopOrphans(),
    );
    const live = this.#live = new LiveMirror({
      sql: this.#sql,
      workerId: this.id,
      openSession: () =>
        connect(this.#config.databaseUrl, {
          max: 1,
          applicationName: "omni_kube_worker_live",
          keepConnections: true,
          // Each use ends by discarding what it left, prepared statements included.
          prepare: false,
        }),
      fetch: (target, request) => this.#http.fetch(target, request),
      target: () => this.#defaults?.target,
      log: this.#log,
      metrics: this.#metrics,
      informer: {
        ...(this.#config.liveWatchSeconds === undefined
          ? {}
          : { watchSeconds: this.#config.liveWatchSeconds }),
        ...(this.#config.liveStreamingLists === undefined
          ? {}
          : { streamingLists: this.#config.liveStreamingLists }),
      },
    });
    // New and dropped live tables are announced; a dead worker's are found by the heartbeat.
    const liveTables = await this.#sql.listen(LIVE_CHANNEL, () => live.sync(), () => live.sync());
    const asyncCalls = this.#startAsync();
    // Committed async requests are announced; retries come due on the runner's own timer.
    const asyncRequests = await this.#sql.listen(
      ASYNC_CHANNEL,
      () => asyncCalls.wake(),
      () => asyncCalls.wake(),
    );
    this.#unlisten = async () => {
      for (const listener of [requests, done, cancel, dispatch, liveTables, asyncRequests]) {
        await listener?.unlisten();
      }
    };
    this.#timers.push(setInterval(() => {
      maintenance.tick();
      live.sync();
      asyncCalls.heartbeat();
    }, this.#config.heartbeatMs));
    this.#log.info("worker started", {
      worker: this.id,
      concurrency: this.#config.concurrency,
      role_limits: roleLimits(this.#config),
      role_queue_limit: this.#config.roleQueueLimit,
    });
    this.wake();
  }

  /**
   * Makes the runner of async calls, with its session and the one its callbacks run in. (One
   * session for claims and results: a claim that finds it hung, as postgres.js can leave it after
   * a crash, replaces it within seconds, which frees the results' write waiting on it too.)
   */
  #startAsync(): AsyncCalls {
    const config = this.#config;
    const session = this.#asyncSession = new RenewableSession(() =>
      connect(config.databaseUrl, {
        max: 1,
        applicationName: "omni_kube_worker_async",
        keepConnections: true,
        settings: { jit: "off" },
      })
    );
    const callbacks = this.#callbackSessions = new MemberSessions(
      () =>
        connect(config.databaseUrl, {
          max: 1,
          applicationName: "omni_kube_worker_callbacks",
          keepConnections: true,
          // Each use ends by discarding what the callback left, prepared statements included.
          prepare: false,
        }),
      1,
    );
    const caller = new Caller({
      fetch: (target, request) => this.#http.fetch(target, request),
      pieces: new AsyncPieces(this.#pieces),
      defaults: () => this.#defaults,
      explicitServers: config.explicitServers,
      log: this.#log,
      metrics: this.#metrics,
      limits: config,
    });
    return this.#async = new AsyncCalls({
      statements: new AsyncStatements(session, this.id),
      runCallback: () => callbacks.exclusive(0, AsyncStatements.runCallback),
      call: (request, running) => caller.run(request, running),
      concurrency: config.asyncConcurrency,
      log: this.#log,
      metrics: this.#metrics,
    });
  }

  /**
   * Listens on the dispatch channel, whose name only the shim's owner reads; without one (an
   * operator deleted the setting) every request is claimed.
   */
  async #listenForDispatch(): Promise<{ unlisten(): Promise<void> } | undefined> {
    const [row] = await this.#sql`
      select value from omni_kube.instance_settings where name = 'dispatch_channel'`;
    if (!row) {
      this.#log.warn("no dispatch channel in omni_kube.instance_settings; every call is claimed");
      return undefined;
    }
    return await this.#sql.listen(
      row.value,
      (payload) => this.#dispatcher?.receive(payload),
      () => {
        // (Re)connected: what was dispatched while away is queued, for a claim.
        this.wake();
      },
    );
  }

  /**
   * Brings the shim to this release, or with `migrate` off checks that nothing stands in the way;
   * then that the database speaks this worker's protocol. Throws `IncompatibleDatabase` with the
   * reason when it cannot be served.
   */
  async #prepareDatabase(): Promise<void> {
    if (this.#config.migrate) {
      this.#log.info(describeMigration(await migrate(this.#sql)));
    } else {
      const pending = await pendingMigrations(this.#sql);
      if (pending.length > 0) {
        this.#log.warn("migrations not applied (--no-migrate): run deno task migrate", { pending });
        return;
      }
    }
    const mismatch = await protocolMismatch(this.#sql);
    if (mismatch) throw new IncompatibleDatabase(mismatch);
    const [{ version }] = await this.#sql`select omni_kube.version() as version`;
    this.#log.info("database ready", { release: RELEASE, database_release: version });
  }

  /** Opens the queue session (lazily: on its first statement) and makes the parts that use it. */
  #compose(): Maintenance {
    const config = this.#config;
    const log = this.#log;
    const metrics = this.#metrics;
    const session = this.#session = connect(config.databaseUrl, {
      max: 1,
      applicationName: "omni_kube_worker_queue",
      keepConnections: true,
      // Its statements are prepared, and a plan made while the queue table was nearly empty (a
      // fresh install) is a sequential scan that would be kept as the table grows, until the next
      // autoanalyze: every one of them has an index that suits it at any size. (Without JIT: the
      // cost that setting gives a sequential scan would compile its small statements with LLVM.)
      settings: { enable_seqscan: "off", jit: "off" },
      // Its locks went with the connection; the next heartbeat registers again.
      onclose: () => maintenance.sessionLost(),
    });
    const locks = new LockStatements(session);
    const window = this.#window = new LockWindow(
      locks,
      config.lockWindow,
      (id) => this.#running.has(id),
    );
    const writer = this.#writer = new ResultWriter({
      results: new ResultStatements(session, this.id),
      release: (ids) => window.release(ids),
      // A lock this worker does not hold is another worker's (its window's): tell it.
      announce: (ids) => ids.some((id) => window.holds(id) === 0),
      log,
      metrics,
    });
    this.#caller = new Caller({
      fetch: (target, request) => this.#http.fetch(target, request),
      pieces: this.#pieces,
      defaults: () => this.#defaults,
      cluster: (name) => this.#clusters.get(name),
      explicitServers: config.explicitServers,
      log,
      metrics,
      limits: config,
    });
    // Only those it can use: a request for one it cannot is left to a worker that can.
    const served = this.#clusters.usable();
    const claims = new ClaimStatements(session, this.id, () => served);
    const claimLoop = this.#claimLoop = new ClaimLoop({
      claims,
      limits: { api: config.concurrency, watch: config.watchConcurrency },
      roleLimits: roleLimits(config),
      run: (request) => this.#run(request),
      advance: (next) => window.advance(next),
      stopping: () => this.#stopping,
      log,
      metrics,
    });
    this.#dispatcher = new Dispatcher({
      window,
      locks,
      claims,
      startUnclaimed: (kind, role, run) => claimLoop.startUnclaimed(kind, role, run),
      run: (request, claimed, afterClaim) => this.#runDispatched(request, claimed, afterClaim),
      isRunning: (id) => this.#running.has(id),
      wake: () => this.wake(),
      log,
      metrics,
    });
    const upkeep = this.#upkeep = new MaintenanceStatements(session, this.id);
    const maintenance = this.#maintenance = new Maintenance({
      statements: upkeep,
      locks,
      window,
      writer,
      // Only those whose rows say so: a dispatched one is queued until its claim commits.
      running: () => [...this.#running.keys()].filter((id) => !this.#unclaimed.has(id)),
      abort: (ids, reason) => this.#abort(ids, reason),
      wake: () => this.wake(),
      stopping: () => this.#stopping,
      readPodAccount: () => podServiceAccount(config.serviceAccountDir),
      onPodAccount: (pod) => {
        this.#clusters.podAccount(pod);
        if (this.#defaults?.source === pod.source) this.#defaults = pod;
      },
      host: hostname(),
      pid: Deno.pid,
      explicitServers: explicitServersSetting(config.explicitServers),
      retentionSeconds: config.retentionSeconds,
      log,
      metrics,
    });
    return maintenance;
  }

  /** Looks for queued requests now. */
  wake(): void {
    this.#claimLoop?.wake();
  }

  /** Runs a claimed request and writes its result back; settles when both are done. */
  #run(request: ClaimedRequest): Promise<void> {
    if (request.locked) this.#window.hold(request.id);
    // Dispatched to this worker and started already: the claim only confirms it.
    const confirm = this.#unclaimed.get(request.id);
    if (confirm) {
      confirm(true);
      return Promise.resolve();
    }
    const running = {
      abort: new AbortController(),
      finish: new AbortController(),
    };
    this.#running.set(request.id, running);
    this.#metrics?.inFlight.inc({ kind: request.kind });
    return this.#caller.run(request, running)
      .then((result) => this.#writer!.write(result))
      .finally(() => {
        this.#running.delete(request.id);
        this.#metrics?.inFlight.dec({ kind: request.kind });
      });
  }

  /**
   * Runs a dispatched request, started before its row says it runs here (unless `afterClaim`):
   * its answer is written only if `claimed` says it does; else the call is aborted and its
   * answer dropped.
   */
  #runDispatched(
    request: ClaimedRequest,
    claimed: Promise<boolean>,
    afterClaim: boolean,
  ): Promise<void> {
    const running: Running = { abort: new AbortController(), finish: new AbortController() };
    this.#running.set(request.id, running);
    const claimedHere = Promise.withResolvers<boolean>();
    this.#unclaimed.set(request.id, claimedHere.resolve);
    this.#metrics?.inFlight.inc({ kind: request.kind });
    const mine = Promise.race([claimed, claimedHere.promise]).then((ok) => {
      this.#unclaimed.delete(request.id);
      if (!ok) {
        running.abort.abort(
          notOurs(),
        );
      }
      return ok;
    });
    running.claimed = async () => {
      this.#dispatcher!.hurry(request.id);
      if (!await mine) {
        throw notOurs();
      }
    };
    // A lock taken outside the window may have been free because an earlier claim of this
    // request was under way: the call waits for this worker's claim.
    const started = afterClaim ? mine : Promise.resolve(true);
    return started
      .then((go) => go ? this.#caller.run(request, running) : undefined)
      .then(async (result) => {
        // Finished before its claim was sent: the write claims it.
        if (result && !afterClaim && this.#dispatcher!.withdraw(request.id)) {
          return this.#writer!.write({ ...result, unclaimed: true });
        }
        if (result && await mine) return this.#writer!.write(result);
        // Its lock is the window's: free it if the request finished elsewhere (the window frees
        // none of a request it runs).
        this.#running.delete(request.id);
        await this.#window.releaseFinished([request.id], (ids) => this.#upkeep!.settled(ids));
      })
      .finally(() => {
        this.#running.delete(request.id);
        this.#unclaimed.delete(request.id);
        this.#metrics?.inFlight.dec({ kind: request.kind });
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

  /** Requests finished (by any worker): release the window locks this worker holds for them. */
  #onDone(payload: string): void {
    // Too many to name in one notification: the heartbeat finds them.
    if (payload === "*") {
      this.#maintenance?.tick();
      return;
    }
    this.#window.releaseFinished(idsOf(payload), (ids) => this.#upkeep!.settled(ids)).catch((
      error,
    ) => this.#log.error("unlock failed", { error: String(error) }));
  }

  /**
   * Graceful shutdown: stops claiming; ends watches at once with the events they have (their
   * callers resume from the final bookmark); gives calls in flight `shutdownGraceMs` to finish,
   * then fails the rest so that their callers are told at once; then disconnects.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const stopped = Date.now();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#unlisten?.().catch(() => {});
    await this.#claimLoop?.idle;
    for (const running of this.#running.values()) running.finish.abort();
    const deadline = Date.now() + this.#config.shutdownGraceMs;
    while (this.#running.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#abort([...this.#running.keys()], "the worker shut down before the call finished");
    while (this.#running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.#writer?.flush();
    await this.#async?.stop(Math.max(this.#config.shutdownGraceMs - (Date.now() - stopped), 0));
    // Before unregistering: while the worker is registered, no other takes its tables.
    await this.#live?.stop();
    await this.#maintenance?.unregister().catch(() => {});
    this.#http.close();
    await this.#httpServer?.shutdown();
    await this.#session?.end({ timeout: 2 });
    await this.#asyncSession?.end();
    await this.#callbackSessions?.close();
    await this.#pieces?.close();
    await this.#sql?.end({ timeout: 2 });
    this.#log.info("worker stopped", { worker: this.id });
  }
}
