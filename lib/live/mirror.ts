/**
 * One worker's share of the live tables: it takes those no live worker mirrors (new ones, and
 * those of a worker that died), runs an informer for each into its table, and stops the informer
 * of a table that was dropped or taken over. Joins the registry (SQL) and the informer (HTTP).
 *
 * @module
 */
import { type KubeFetch, type KubeTarget, normalizeServer } from "../kube/client.ts";
import { type InformerOptions, runInformer } from "../kube/informer.ts";
import { errorMessage, type Logger } from "../observe.ts";
import type { Sql } from "../db.ts";
import type { WorkerMetrics } from "../metrics.ts";
import { LiveRegistry, type LiveTableEntry } from "./registry.ts";
import { MemberSessions } from "../member_sessions.ts";
import { LiveTableStore } from "./table_store.ts";

/** The least time between two syncs asked for while one runs. */
const SYNC_SPACING_MS = 20;

/** Sessions that write live tables, by default: a table's writes are serial on one of them. */
const WRITE_SESSIONS = 2;

/** What {@linkcode LiveMirror} works with. */
export interface LiveMirrorOptions {
  /** The worker's pool, for the registry's statements. */
  sql: Sql;
  workerId: string;
  /** Opens a one-connection client without prepared statements, for writing tables. */
  openSession: () => Sql;
  /** Sessions writing tables (default 2). */
  sessions?: number;
  fetch: KubeFetch;
  /** The worker's own cluster, which live tables mirror; undefined when it has none. */
  target: () => KubeTarget | undefined;
  log: Logger;
  metrics?: WorkerMetrics;
  /** Informer settings (page size, watch length, backoff) for every table. */
  informer?: Partial<
    Pick<
      InformerOptions,
      "streamingLists" | "pageSize" | "watchSeconds" | "maxBatch" | "maxBytes" | "backoff"
    >
  >;
}

interface Mirroring {
  abort: AbortController;
  done: Promise<void>;
}

/** The live tables one worker mirrors. */
export class LiveMirror {
  readonly #options: LiveMirrorOptions;
  readonly #registry: LiveRegistry;
  readonly #sessions: MemberSessions;
  readonly #mirroring = new Map<number, Mirroring>();
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  #stopped = false;

  constructor(options: LiveMirrorOptions) {
    this.#options = options;
    this.#registry = new LiveRegistry(options.sql, options.workerId);
    this.#sessions = new MemberSessions(options.openSession, options.sessions ?? WRITE_SESSIONS);
  }

  /** Ids of the tables this worker runs an informer for. */
  get tables(): number[] {
    return [...this.#mirroring.keys()];
  }

  /**
   * Takes the tables nobody mirrors and stops informers of tables no longer this worker's. Calls
   * while one runs make one more after it, a little later. Failures are logged; the next call
   * retries.
   */
  sync(): Promise<void> {
    if (this.#syncing) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      for (;;) {
        this.#syncAgain = false;
        await this.#syncNow();
        if (!this.#syncAgain || this.#stopped) break;
        // Anyone may notify the channel: a flood of notifications costs a sync every few ms.
        await new Promise((resolve) => setTimeout(resolve, SYNC_SPACING_MS));
      }
    })().catch((error) => {
      this.#options.log.error("live tables: taking over failed", { error: errorMessage(error) });
    }).finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  async #syncNow(): Promise<void> {
    if (this.#stopped) return;
    const held = await this.#registry.held();
    const ids = new Set(held.map((table) => table.id));
    for (const [id, mirroring] of this.#mirroring) {
      if (!ids.has(id)) mirroring.abort.abort();
    }
    // Held but not mirrored: the session that took them was lost before their informers started.
    const unattended = held.filter((table) => !this.#mirroring.has(table.id));
    const server = this.#ownServer();
    const claimed = server ? await this.#registry.claim(server) : [];
    for (const table of [...unattended, ...claimed]) {
      if (this.#stopped) break;
      this.#start(table);
    }
  }

  /** The server of the worker's own cluster; none: the worker mirrors nothing. */
  #ownServer(): string | undefined {
    const own = this.#options.target();
    try {
      return own && normalizeServer(own.server);
    } catch {
      // Not a server the client could call.
      return undefined;
    }
  }

  #start(table: LiveTableEntry): void {
    const { log, fetch, target } = this.#options;
    this.#mirroring.get(table.id)?.abort.abort();
    const abort = new AbortController();
    log.info("live table: mirroring", { live_table: table.id, path: table.path });
    const done = runInformer({
      ...this.#options.informer,
      fetch,
      target: () => {
        const own = target();
        if (!own) {
          throw new Error("the worker has no cluster of its own to mirror live tables from");
        }
        return own;
      },
      path: table.path,
      resourceVersion: table.resourceVersion ?? undefined,
      store: new LiveTableStore(table.id, this.#registry, this.#sessions, this.#options.metrics),
      signal: abort.signal,
      onError: (error, retryMs) =>
        log.warn("live table: mirroring failed; retrying", {
          live_table: table.id,
          error: errorMessage(error),
          retry_ms: retryMs,
        }),
    }).finally(() => {
      if (this.#mirroring.get(table.id)?.abort === abort) this.#mirroring.delete(table.id);
      this.#options.metrics?.liveTables.set(this.#mirroring.size);
      log.info("live table: stopped mirroring", { live_table: table.id });
    });
    this.#mirroring.set(table.id, { abort, done });
    this.#options.metrics?.liveTables.set(this.#mirroring.size);
  }

  /** Stops every informer and lets go of the tables, for another worker to take at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#syncing;
    const running = [...this.#mirroring.values()];
    for (const mirroring of running) mirroring.abort.abort();
    await Promise.all(running.map((mirroring) => mirroring.done));
    await this.#registry.release().catch((error) =>
      this.#options.log.warn("live tables: letting go failed", { error: errorMessage(error) })
    );
    await this.#sessions.close();
  }
}
