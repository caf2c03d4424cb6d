/**
 * The worker's upkeep on its queue session: registering (at start, and again after the session
 * was lost with its locks), and each heartbeat: releasing locks nobody waits on, stopping calls
 * nobody waits for, writing results kept after a failure, taking over window locks, purging, and
 * publishing the pod's rotating service-account token.
 *
 * @module
 */
import type { MaintenanceStatements } from "../queue/maintenance.ts";
import type { LockStatements } from "../queue/locks.ts";
import type { DefaultCluster } from "../credentials.ts";
import type { Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";
import type { LockWindow } from "./lock_window.ts";
import type { ResultWriter } from "./result_writer.ts";

/** How often finished requests are purged at most (sooner when the retention is shorter). */
const PURGE_INTERVAL_MS = 30_000;
/** Why an orphan is stopped, for the log. */
const ORPHANED = "cancelled, or its caller is gone";
/** The least time between two checks for orphans asked for by notifications. */
const ORPHAN_CHECK_SPACING_MS = 20;

/** What {@linkcode Maintenance} works with. */
export interface MaintenanceOptions {
  /** The upkeep statements, on the queue session. */
  statements: Pick<
    MaintenanceStatements,
    | "register"
    | "publishPodCredentials"
    | "heartbeat"
    | "settled"
    | "orphaned"
    | "purge"
    | "unregister"
  >;
  /** For the id sequence's position. */
  locks: Pick<LockStatements, "nextRequestId">;
  window: Pick<LockWindow, "held" | "clear" | "open" | "release" | "takeOver">;
  writer: Pick<ResultWriter, "pending" | "flush">;
  /** Ids of the requests this worker runs. */
  running(): number[];
  /** Stops the running requests `ids`, failing them with `reason`. */
  abort(ids: number[], reason: string): void;
  /** Wakes the claim loop. */
  wake(): void;
  /** True once the worker stops. */
  stopping(): boolean;
  /** Reads the pod's service account (absent outside a pod). */
  readPodAccount(): Promise<DefaultCluster | undefined>;
  /** Given each fresh read of the pod's service account: the default cluster may be the pod's. */
  onPodAccount(pod: DefaultCluster): void;
  /** Registered as running on this host, with this process id. */
  host: string;
  pid: number;
  /** The worker's --explicit-servers, as `omni_kube.workers` records it. */
  explicitServers: string;
  /** Finished requests are kept this long. */
  retentionSeconds: number;
  log: Logger;
  metrics?: WorkerMetrics;
}

/** Keeps the worker registered and its queue session's state sound. */
export class Maintenance {
  readonly #options: MaintenanceOptions;
  #sessionLost = false;
  #ticking = false;
  #lastPurge = 0;
  #lastHeartbeat = 0;
  #orphanCheck: Promise<void> | undefined;
  #orphanCheckAgain = false;

  /** Does nothing until registered. */
  constructor(options: MaintenanceOptions) {
    this.#options = options;
  }

  /** When a heartbeat (or the registration) last reached the database, in epoch ms; 0: never. */
  get lastHeartbeat(): number {
    return this.#lastHeartbeat;
  }

  /** The queue session's connection closed: its locks went with it; the next tick registers. */
  sessionLost(): void {
    this.#options.window.clear();
    this.#sessionLost = true;
  }

  /**
   * Registers the worker on the queue session, publishes the pod's credentials and opens the
   * lock window. Called at start and after the session was lost.
   */
  async register(): Promise<void> {
    const { statements, locks, window } = this.#options;
    this.#sessionLost = false;
    window.clear();
    await statements.register(this.#options.host, this.#options.pid, this.#options.explicitServers);
    this.#lastHeartbeat = Date.now();
    await this.#publishPodCredentials();
    await window.open(await locks.nextRequestId());
  }

  /** Removes the worker's registration: it stopped. */
  async unregister(): Promise<void> {
    await this.#options.statements.unregister();
  }

  /** Re-reads the pod's service account (its token rotates) and publishes it. */
  async #publishPodCredentials(): Promise<void> {
    const pod = await this.#options.readPodAccount();
    if (!pod) return;
    this.#options.onPodAccount(pod);
    await this.#options.statements.publishPodCredentials(pod.target.token!, pod.target.caCert);
  }

  /**
   * Stops the calls nobody waits for any more: cancelled, or whose caller is gone (the check each
   * heartbeat makes, made now: a cancellation was announced). Calls while a check runs make one
   * more after it, a little later, so that a flood of announcements costs a check every few ms.
   */
  stopOrphans(): Promise<void> {
    if (this.#orphanCheck) {
      this.#orphanCheckAgain = true;
      return this.#orphanCheck;
    }
    this.#orphanCheck = (async () => {
      do {
        this.#orphanCheckAgain = false;
        await this.#stopOrphansNow();
        if (this.#orphanCheckAgain) {
          await new Promise((resolve) => setTimeout(resolve, ORPHAN_CHECK_SPACING_MS));
        }
      } while (this.#orphanCheckAgain && !this.#options.stopping());
    })().catch((error) => {
      this.#options.log.error("checking for cancelled calls failed", { error: String(error) });
    }).finally(() => this.#orphanCheck = undefined);
    return this.#orphanCheck;
  }

  async #stopOrphansNow(): Promise<void> {
    const running = this.#options.running();
    if (running.length === 0) return;
    this.#options.abort(await this.#options.statements.orphaned(running), ORPHANED);
  }

  /** One heartbeat; skipped while the previous one runs. Failures are logged and retried. */
  async tick(): Promise<void> {
    const { statements, locks, window, writer, log, metrics } = this.#options;
    if (this.#ticking || this.#options.stopping()) return;
    this.#ticking = true;
    try {
      if (this.#sessionLost && !this.#options.stopping()) {
        metrics?.reconnects.inc();
        log.warn("queue session lost; registering again");
        await this.register();
      }
      await statements.heartbeat();
      this.#lastHeartbeat = Date.now();
      // Locks held for requests that another worker ran, or that were abandoned or never issued.
      await window.release(await statements.settled(window.held));
      await this.#stopOrphansNow();
      if (writer.pending > 0) await writer.flush();
      // Take over window locks that another worker held before it stopped.
      await window.takeOver(await locks.nextRequestId());
      const retentionSeconds = this.#options.retentionSeconds;
      const purgeEvery = Math.min(PURGE_INTERVAL_MS, retentionSeconds * 1000);
      if (Date.now() - this.#lastPurge > purgeEvery) {
        await this.#publishPodCredentials();
        this.#lastPurge = Date.now();
        const purged = await statements.purge(retentionSeconds);
        if (purged > 0) log.debug("purged finished requests", { count: purged });
      }
      this.#options.wake();
    } catch (error) {
      // The session reconnects by itself on the next query; registration follows at the next
      // heartbeat once it has succeeded.
      log.error("heartbeat failed; retrying", { error: String(error) });
    } finally {
      this.#ticking = false;
    }
  }
}
