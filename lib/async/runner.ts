/**
 * Running async calls (`omni_kube.api_async`): claims due requests into slots of their own (sync
 * calls keep theirs), runs them, decides whether each is tried again, writes the outcomes in
 * batches, runs the callbacks they make pending, and takes over the requests of dead workers.
 * What it holds is bounded by its slots, however many requests are queued.
 *
 * A few claimed requests wait ready for a slot, so that a slot a call frees is taken again at
 * once rather than after the next claim's round trip to the database.
 *
 * @module
 */
import type { Running } from "../worker/call.ts";
import { ResultWriter } from "../worker/result_writer.ts";
import type { RequestResult } from "../queue/results.ts";
import { errorMessage, type Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";
import {
  type AsyncRequest,
  type AsyncResult,
  type AsyncStatements,
  CREDENTIALS_LOST,
  OUTCOME_UNKNOWN,
} from "./statements.ts";
import { retryDelayMs, shouldRetry } from "./retry.ts";

/** Requests one claim takes at most. */
const CLAIM_BATCH = 256;

/** What {@linkcode AsyncCalls} works with. */
export interface AsyncCallsOptions {
  /** The async statements, on a session of their own. */
  statements: Pick<AsyncStatements, "claim" | "complete" | "recover">;
  /** Runs the oldest pending callback; its request's id, null when none is pending. */
  runCallback(): Promise<number | null>;
  /** Makes the HTTP call (`Caller.run`); never throws. */
  call(request: AsyncRequest, running: Running): Promise<RequestResult>;
  /** Async calls run at once; more stay queued. */
  concurrency: number;
  log: Logger;
  metrics?: WorkerMetrics;
}

/** The async calls of one worker. */
export class AsyncCalls {
  readonly #options: AsyncCallsOptions;
  readonly #writer: ResultWriter<AsyncResult>;
  readonly #running = new Map<number, Running>();
  /** Claimed requests waiting for a slot, oldest first; never sent yet. */
  readonly #ready: AsyncRequest[] = [];
  /** At most this many wait in {@linkcode #ready}: half the slots. */
  readonly #readyLimit: number;
  /**
   * Requests this worker claimed (ready, running, or sent) whose outcome it has not yet seen
   * written.
   */
  readonly #unsettled = new Set<number>();
  #claiming: Promise<void> | undefined;
  #wakeAgain = false;
  #callbacks: Promise<void> | undefined;
  #callbacksAgain = false;
  /** The wake-up for the earliest retry this worker scheduled, and when it fires. */
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryAt = Infinity;
  #stopping = false;
  #heartbeating = false;

  /** Claims nothing until woken. */
  constructor(options: AsyncCallsOptions) {
    this.#options = options;
    this.#readyLimit = Math.ceil(options.concurrency / 2);
    this.#writer = new ResultWriter<AsyncResult>({
      results: {
        complete: async (results, options) => {
          const callbacks = await this.#options.statements.complete(results, options);
          for (const result of results) this.#unsettled.delete(result.id);
          if (callbacks > 0) this.wakeCallbacks();
        },
      },
      // Nobody waits on a lock for an async request: result() polls its row.
      release: () => Promise.resolve(),
      log: options.log,
      metrics: options.metrics,
    });
  }

  /** Async calls running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Looks for due requests now. */
  wake(): void {
    if (this.#stopping) return;
    if (this.#claiming) {
      this.#wakeAgain = true;
      return;
    }
    this.#claiming = this.#claimLoop()
      .catch((error) =>
        this.#options.log.error("async claim failed", { error: errorMessage(error) })
      )
      .finally(() => {
        this.#claiming = undefined;
        // Woken after the loop's last look (it ended before its promise settled).
        if (this.#wakeAgain) this.wake();
      });
  }

  /**
   * The heartbeat: writes results kept after a lost session, recovers the requests of dead workers
   * and those this worker claimed without learning it (a claim whose answer was lost), and looks
   * for due requests and pending callbacks (notifications sent while the session was away are
   * lost).
   */
  async heartbeat(): Promise<void> {
    // (One at a time: a slow one, its database away, is not joined by the next second's.)
    if (this.#stopping || this.#heartbeating) return;
    this.#heartbeating = true;
    try {
      await this.#writer.flush();
      // Not while a claim is under way: what it claims is not among the unsettled yet. (A claim
      // woken meanwhile runs after this statement, on the same session.)
      while (this.#claiming) await this.#claiming;
      const { recovered, callbacks } = await this.#options.statements.recover([
        ...this.#unsettled,
      ]);
      if (recovered > 0) {
        this.#options.log.warn("recovered async requests whose calls were lost", {
          count: recovered,
        });
      }
      // Those of a crash, or of a worker that stopped before running them.
      if (callbacks) this.wakeCallbacks();
    } catch (error) {
      this.#options.log.error("async upkeep failed", { error: errorMessage(error) });
    } finally {
      this.#heartbeating = false;
    }
    this.wake();
  }

  /** Runs pending callbacks, one after another, until none is left. */
  wakeCallbacks(): void {
    if (this.#callbacks) {
      this.#callbacksAgain = true;
      return;
    }
    this.#callbacks = (async () => {
      do {
        this.#callbacksAgain = false;
        while (!this.#stopping && await this.#options.runCallback() !== null) {
          this.#options.metrics?.asyncCallbacks.inc();
        }
      } while (this.#callbacksAgain && !this.#stopping);
    })()
      .catch((error) =>
        this.#options.log.error("running callbacks failed", { error: errorMessage(error) })
      )
      .finally(() => {
        this.#callbacks = undefined;
        if (this.#callbacksAgain && !this.#stopping) this.wakeCallbacks();
      });
  }

  async #claimLoop(): Promise<void> {
    const { statements, concurrency } = this.#options;
    do {
      this.#wakeAgain = false;
      while (!this.#stopping) {
        // Free slots and room among the ready, while no more results than slots wait to be
        // written: what the worker holds stays bounded when writes fall behind.
        const held = this.#running.size + this.#ready.length;
        const room = Math.min(
          concurrency + this.#readyLimit - held,
          2 * concurrency + this.#readyLimit - this.#unsettled.size,
          CLAIM_BATCH,
        );
        // Claims of a few requests each would cost a statement per call or two: with calls
        // running, wait until an eighth of the slots are free (finishing calls wake us again).
        if (room <= 0 || (held > 0 && room < concurrency / 8)) break;
        const claimed = await statements.claim(room);
        for (const request of claimed) this.#unsettled.add(request.id);
        this.#ready.push(...claimed);
        this.#startReady();
        if (claimed.length < room) break;
      }
    } while (this.#wakeAgain && !this.#stopping);
  }

  /** Starts ready requests while slots are free. */
  #startReady(): void {
    while (
      !this.#stopping && this.#ready.length > 0 &&
      this.#running.size < this.#options.concurrency
    ) {
      this.#start(this.#ready.shift()!);
    }
  }

  #start(request: AsyncRequest): void {
    const running: Running = { abort: new AbortController(), finish: new AbortController() };
    this.#running.set(request.id, running);
    // The slot is free once the call is: its result waits for the next write without it, and
    // a ready request takes the slot at once.
    this.#attempt(request, running)
      .finally(() => {
        this.#running.delete(request.id);
        this.#startReady();
        this.wake();
      })
      .then((result) => this.#writer.write(result))
      // A written result may let a claim take more (see #claimLoop).
      .finally(() => this.wake());
  }

  /** One attempt at `request`, and what follows it: done, failed, or another attempt. */
  async #attempt(request: AsyncRequest, running: Running): Promise<AsyncResult> {
    const { log, metrics } = this.#options;
    if (request.credentialsLost) {
      metrics?.asyncAttempts.inc({ outcome: "failed" });
      return {
        id: request.id,
        outcome: "failed",
        error: "its token or client certificate is no longer in the database (never written to " +
          "the WAL, they are lost in a crash, and with a claim interrupted before the call); it " +
          "was not sent",
        code: CREDENTIALS_LOST,
      };
    }
    const result = await this.#options.call(request, running);
    if (result.outcome === "failed" && running.abort.signal.aborted && this.#stopping) {
      // Stopped by the worker's shutdown: sent or not, nobody knows.
      if (request.idempotent) return { ...result, retryAt: new Date() };
      return {
        id: request.id,
        outcome: "failed",
        error: `the worker shut down during the call: the ${request.method} may or may not ` +
          "have reached the API server, and is never sent twice",
        code: OUTCOME_UNKNOWN,
      };
    }
    const outcome = result.outcome === "failed"
      ? { refused: result.code !== undefined }
      : { status: result.status, retryAfter: result.retryAfter };
    if (shouldRetry(outcome, request)) {
      const retryAt = new Date(Date.now() + retryDelayMs(request.attempts, outcome.retryAfter));
      log.info("async call will be tried again", {
        request: request.id,
        attempt: request.attempts,
        status: outcome.status ?? null,
        retry_at: retryAt.toISOString(),
      });
      metrics?.asyncAttempts.inc({ outcome: "retry" });
      this.#wakeAt(retryAt.getTime());
      return { ...result, retryAt };
    }
    metrics?.asyncAttempts.inc({ outcome: result.outcome === "failed" ? "failed" : "done" });
    return result;
  }

  /** Looks for due requests at `time` (or at an earlier wake-up already set). */
  #wakeAt(time: number): void {
    if (time >= this.#retryAt) return;
    clearTimeout(this.#retryTimer);
    this.#retryAt = time;
    this.#retryTimer = setTimeout(() => {
      this.#retryAt = Infinity;
      this.wake();
    }, Math.max(time - Date.now(), 0));
  }

  /**
   * Stops claiming; gives calls in flight `graceMs` to finish, then stops the rest (an idempotent
   * one is queued again, any other recorded as of unknown outcome); writes every outcome; queues
   * the ready requests again, unsent and their attempt not counted; lets the callback under way
   * finish.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#retryTimer);
    await this.#claiming;
    const unsent = this.#ready.splice(0);
    for (const request of unsent) this.#unsettled.delete(request.id);
    const deadline = Date.now() + graceMs;
    while (this.#running.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const running of this.#running.values()) {
      running.abort.abort(new DOMException("the worker shut down", "AbortError"));
    }
    while (this.#running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.#writer.flush();
    if (unsent.length > 0) {
      // The recovery queues again what this worker holds as running and did not send.
      await this.#options.statements.recover([...this.#unsettled]).catch((error) =>
        this.#options.log.error("queueing unsent async requests again failed", {
          error: errorMessage(error),
          count: unsent.length,
        })
      );
    }
    await this.#callbacks;
  }
}
