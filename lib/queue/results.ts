/**
 * Writing results: what became of requests, recorded by `omni_kube._finish_requests`, which also
 * announces them on the done channel.
 *
 * @module
 */
import type { Sql } from "../db.ts";

/** Bodies of this many characters and more are written with a statement of their own. */
const LARGE = 64 * 1024;

/**
 * What became of a request. `body` is the raw response text, never parsed here. A `stored`
 * response is in the request row already (see `ResponsePieces` in ./pieces.ts).
 */
export type RequestResult =
  & (
    | {
      id: number;
      outcome: "response";
      status: number;
      body: string | null;
      isJson: boolean;
      /** The answer's `Retry-After` header, if any (an async call's retry honours it). */
      retryAfter?: string;
    }
    | { id: number; outcome: "stored"; status: number; retryAfter?: string }
    | {
      id: number;
      outcome: "failed";
      error: string;
      /** The SQLSTATE its caller gets; absent: OKT01, the call got no HTTP answer. */
      code?: string;
    }
  )
  & {
    /** A dispatched request run before any claim of it committed: its row may still be queued. */
    unclaimed?: boolean;
  };

/** The result statements of one worker, on its queue session. */
export class ResultStatements {
  /** `session` is the worker's queue session; only requests `workerId` runs are written. */
  constructor(readonly session: Sql, readonly workerId: string) {}

  /**
   * Writes results: small ones in one statement, each large one in a statement of its own.
   * Requests a caller abandoned meanwhile stay as they are.
   *
   * A body said to be JSON is cast straight to jsonb, which fails the whole statement if one is
   * not JSON after all (or not storable as jsonb). `tolerant` stores such a body as a JSON string
   * instead, at the price of a subtransaction per row: for writing results one by one after a
   * batch failed. `announce` tells other workers (on the done channel) that these requests
   * finished, so that they release the locks they hold on them; a worker holding all of them
   * itself passes false.
   */
  async complete(
    results: RequestResult[],
    { tolerant = false, announce = true } = {},
  ): Promise<void> {
    if (results.length === 1) return await this.#finishOne(results[0], tolerant, announce);
    const large = (r: RequestResult) => r.outcome === "response" && (r.body?.length ?? 0) >= LARGE;
    // Sent back to back on the session: postgres.js pipelines them.
    await Promise.all([
      this.#finish(results.filter((r) => !large(r)), tolerant, announce),
      ...results.filter(large).map((r) => this.#finishOne(r, tolerant, announce)),
    ]);
  }

  /** Writes `results` in one statement (`omni_kube._finish_requests`). */
  async #finish(results: RequestResult[], tolerant: boolean, announce: boolean): Promise<void> {
    if (results.length === 0) return;
    const ids = results.map((r) => r.id);
    const statuses = results.map((r) => r.outcome === "failed" ? null : r.status);
    const bodies = results.map((r) => r.outcome === "response" ? r.body : null);
    // postgres.js sends a boolean[] parameter as a scalar: pass text and cast.
    const isJson = results.map((r) => r.outcome === "response" && r.isJson ? "t" : "f");
    const stored = results.map((r) => r.outcome === "stored" ? "t" : "f");
    const errors = results.map((r) => r.outcome === "failed" ? r.error : null);
    const codes = results.map((r) => r.outcome === "failed" ? r.code ?? null : null);
    const unclaimed = results.filter((r) => r.unclaimed).map((r) => r.id);
    await this.session`
      select omni_kube._finish_requests(${this.workerId}, ${ids}::bigint[], ${statuses}::int2[],
                                        ${bodies}::text[], ${isJson}::text[]::bool[],
                                        ${stored}::text[]::bool[], ${errors}::text[],
                                        ${codes}::text[], ${tolerant}, ${announce},
                                        ${unclaimed}::bigint[])`;
  }

  /**
   * One result with scalar parameters, made into arrays by the server: a large body, or a batch of
   * one (the usual case, which this spares escaping arrays on both sides). (An array parameter is
   * escaped element by element into a new string: for a body of megabytes, the worker's memory
   * would peak at many times its size.)
   */
  async #finishOne(result: RequestResult, tolerant: boolean, announce: boolean): Promise<void> {
    const response = result.outcome === "response" ? result : undefined;
    const failed = result.outcome === "failed" ? result : undefined;
    const status = result.outcome === "failed" ? null : result.status;
    await this.session`
      select omni_kube._finish_requests(${this.workerId}, array[${result.id}::bigint],
                                        array[${status}::int2],
                                        array[${response?.body ?? null}::text],
                                        array[${response?.isJson ?? false}::bool],
                                        array[${result.outcome === "stored"}::bool],
                                        array[${failed?.error ?? null}::text],
                                        array[${failed?.code ?? null}::text], ${tolerant},
                                        ${announce},
                                        ${result.unclaimed ? [result.id] : []}::bigint[])`;
  }
}
