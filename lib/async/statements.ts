/**
 * The statements of async calls (`omni_kube.api_async`), on the worker's async session: claiming
 * due requests, writing what became of them (or when to try again), recovering those of workers
 * that died, and running callbacks.
 *
 * @module
 */
import type { RenewableSession, Sql } from "../db.ts";
import { claimedFromRow, type ClaimedRequest } from "../queue/claim.ts";
import type { RequestResult } from "../queue/results.ts";

/** SQLSTATE of an async request whose credentials a crash took: it was not sent. */
export const CREDENTIALS_LOST = "OKQ03";
/** SQLSTATE of an async request that may or may not have reached the API server. */
export const OUTCOME_UNKNOWN = "OKQ02";

/** A claimed async request: what {@linkcode ClaimedRequest} holds, and what retries need. */
export interface AsyncRequest extends ClaimedRequest {
  /** Attempts made, this one included. */
  attempts: number;
  /** Further attempts allowed after the first. */
  retries: number;
  /** Whether sending it twice changes nothing (GET, HEAD, PUT, DELETE, server-side apply). */
  idempotent: boolean;
  /** It had secrets, and a crash took them: it must fail unsent. */
  credentialsLost: boolean;
}

/** What became of an attempt; with `retryAt`, the request is tried again then. */
export type AsyncResult = RequestResult & { retryAt?: Date };

/**
 * How long a claim or a recovery may take before its session is taken for hung. A claim given up
 * so costs nothing: what it took was never sent, and the next recovery queues it again.
 */
const SHORT_STATEMENT_MS = 5_000;
/**
 * How long writing results may take (bodies up to the worker's --max-response-bytes); results
 * given up so are kept, and written again.
 */
const WRITE_MS = 60_000;

/** The async statements of one worker. */
export class AsyncStatements {
  /** `session` is the worker's async session; only requests `workerId` runs are written. */
  constructor(readonly session: RenewableSession, readonly workerId: string) {}

  /**
   * Claims up to `slots` due requests (`omni_kube._async_claim`), oldest first; a CA that comes
   * once for a run of rows is given to each of them.
   */
  async claim(slots: number): Promise<AsyncRequest[]> {
    const rows = await this.session.run(
      "an async claim",
      SHORT_STATEMENT_MS,
      (sql) => sql`select * from omni_kube._async_claim(${this.workerId}, ${slots})`,
    );
    let cacert: string | null = null;
    return rows.map((r) => ({
      ...claimedFromRow(r),
      cacert: cacert = r.same_cacert ? cacert : r.cacert,
      attempts: r.attempts,
      retries: r.retries,
      idempotent: r.idempotent,
      credentialsLost: r.credentials_lost,
    }));
  }

  /**
   * Writes results (`omni_kube._async_finish`) in one statement; returns how many callbacks they
   * made pending. `tolerant` stores a body said to be JSON that is not as a JSON string.
   */
  async complete(results: AsyncResult[], { tolerant = false } = {}): Promise<number> {
    if (results.length === 0) return 0;
    const [{ callbacks }] = await this.session.run(
      "writing async results",
      WRITE_MS,
      (sql) =>
        sql`select omni_kube._async_finish(
        ${this.workerId},
        ${results.map((r) => r.id)}::bigint[],
        ${results.map((r) => r.outcome === "failed" ? null : r.status)}::int2[],
        ${results.map((r) => r.outcome === "response" ? r.body : null)}::text[],
        ${results.map((r) => r.outcome === "response" && r.isJson ? "t" : "f")}::text[]::bool[],
        ${results.map((r) => r.outcome === "stored" ? "t" : "f")}::text[]::bool[],
        ${results.map((r) => r.outcome === "failed" ? r.error : null)}::text[],
        ${results.map((r) => r.outcome === "failed" ? r.code ?? null : null)}::text[],
        ${results.map((r) => r.retryAt?.toISOString() ?? null)}::timestamptz[],
        ${tolerant}) as callbacks`,
    );
    return callbacks;
  }

  /**
   * Recovers the requests of workers no longer alive, and this worker's own that it marked
   * running but never sent (`unsettled` are those it sent and has not seen written):
   * `omni_kube._async_recover`. Also tells whether callbacks are pending.
   */
  async recover(unsettled: number[]): Promise<{ recovered: number; callbacks: boolean }> {
    const [row] = await this.session.run(
      "an async recovery",
      SHORT_STATEMENT_MS,
      (sql) =>
        sql`select omni_kube._async_recover(${this.workerId}, ${unsettled}::bigint[]) as recovered,
                 exists (select from omni_kube.async_request where callback_state = 'pending')
                   as callbacks`,
    );
    return { recovered: row.recovered, callbacks: row.callbacks };
  }

  /**
   * Runs the oldest pending callback on `sql` (a session for members' code), in a transaction of
   * its own; its request's id, or null when none is pending.
   */
  static async runCallback(sql: Sql): Promise<number | null> {
    const [{ id }] = await sql`select omni_kube._async_run_callback() as id`;
    return id === null ? null : Number(id);
  }
}
