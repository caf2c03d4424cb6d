/**
 * Writing results back: batched, so that results finishing while a write is under way share the
 * next statement, and each batch's locks are released right after it commits.
 *
 * @module
 */
import postgres from "postgres";
import type { RequestResult } from "../queue/results.ts";
import { errorMessage, type Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";

/** What {@linkcode ResultWriter} works with. */
export interface ResultWriterOptions<R extends RequestResult = RequestResult> {
  /** The result statements, on the queue session. */
  results: {
    complete(results: R[], options?: { tolerant?: boolean; announce?: boolean }): Promise<unknown>;
  };
  /** Releases the locks on `ids` (their callers wake), on the same session. */
  release(ids: number[]): Promise<void>;
  /**
   * Whether another worker may hold a lock on one of `ids`: then their results are announced
   * (always, when absent).
   */
  announce?(ids: number[]): boolean;
  log: Logger;
  metrics?: WorkerMetrics;
}

/** Writes results in batches: results arriving during a write go in the next one. */
export class ResultWriter<R extends RequestResult = RequestResult> {
  readonly #options: ResultWriterOptions<R>;
  #pending: R[] = [];
  #flushing: Promise<void> | undefined;

  /** Writes nothing until given a result. */
  constructor(options: ResultWriterOptions<R>) {
    this.#options = options;
  }

  /** Results waiting to be written (kept after a lost session, until the next flush). */
  get pending(): number {
    return this.#pending.length;
  }

  /** Writes `result` with whatever else is pending; settles once it was written or kept. */
  write(result: R): Promise<void> {
    this.#pending.push(result);
    return this.flush();
  }

  /** Writes the pending results, after the write under way if there is one. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    if (this.#pending.length === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = [];
    this.#flushing = (async () => {
      try {
        // Sent back to back on the queue session (postgres.js pipelines them): the unlock that wakes
        // the callers runs right after the results commit, without waiting a round trip.
        const started = performance.now();
        const ids = batch.map((r) => r.id);
        await Promise.all([
          this.#options.results.complete(batch, {
            announce: this.#options.announce?.(ids) ?? true,
          }),
          this.#options.release(ids),
        ]);
        this.#options.metrics?.queueStatements.observe(
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
   * by one, recording a refused one as failed; if the session was lost (whether or not the
   * statement committed: writing again changes nothing), keep the rest for the next heartbeat,
   * which reconnects and writes them then.
   */
  async #completeAfterFailure(batch: R[], error: unknown): Promise<void> {
    const { results, log } = this.#options;
    const keep = (rest: R[], cause: unknown) => {
      log.error("writing results failed; will retry", {
        error: String(cause),
        count: rest.length,
      });
      this.#pending.unshift(...rest);
    };
    if (sessionLost(error)) return keep(batch, error);
    for (const [i, result] of batch.entries()) {
      try {
        await results.complete([result], { tolerant: true });
        continue;
      } catch (refused) {
        if (sessionLost(refused)) return keep(batch.slice(i), refused);
        log.error("result refused by the database", {
          request: result.id,
          error: String(refused),
        });
        const failed = {
          id: result.id,
          outcome: "failed",
          error: `the response could not be stored: ${errorMessage(refused)}`,
          ...(result.unclaimed ? { unclaimed: true } : {}),
          // (A failed result is every R: what R adds to RequestResult is optional.)
        } as R;
        try {
          await results.complete([failed]);
        } catch (lost) {
          if (sessionLost(lost)) return keep([failed, ...batch.slice(i + 1)], lost);
        }
      }
    }
  }
}

/**
 * Whether a statement failed because the session was lost, rather than refused by the database:
 * no answer at all, a connection exception (SQLSTATE class 08) or the server shutting down or
 * crashing (57P).
 */
export function sessionLost(error: unknown): boolean {
  return !(error instanceof postgres.PostgresError) || /^(08|57P)/.test(error.code);
}
