/**
 * Dispatched requests: api() GETs and HEADs with the worker's own credentials arrive whole on
 * the secret dispatch channel (see `omni_kube._insert_requests`). The worker holding a request's
 * lock starts the call at once, with no claim round trip before it, and marks the request running
 * in a statement sent alongside the call. A request it cannot take stays queued for a claim:
 * another worker holds its lock, or its kind or role has no room here.
 *
 * Starting before the row says so is safe for these methods only: if another worker's claim
 * takes the request meanwhile, or its caller gives up, the call is aborted and its answer
 * dropped, and sending a GET twice changes nothing.
 *
 * @module
 */
import { type ClaimedRequest, type ClaimStatements, parseDispatch } from "../queue/claim.ts";
import type { RequestKind } from "../queue/protocol.ts";
import type { LockWindow } from "./lock_window.ts";
import { errorMessage, type Logger } from "../observe.ts";

/** What {@linkcode Dispatcher} works with. */
export interface DispatcherOptions {
  /** The worker's request locks. */
  window: Pick<LockWindow, "holds" | "follow" | "take">;
  /** The statement that marks dispatched requests running. */
  claims: Pick<ClaimStatements, "claimDispatched">;
  /** Runs `run` in a slot of `kind` for `role`; false, running nothing, when there is no room. */
  startUnclaimed(kind: RequestKind, role: string, run: () => Promise<void>): boolean;
  /**
   * Runs a dispatched request; `claimed` settles once the database answered whether this worker
   * runs it (false: drop the answer).
   */
  run(request: ClaimedRequest, claimed: Promise<boolean>): Promise<void>;
  /** Looks for queued requests: those left to a claim. */
  wake(): void;
  log: Logger;
}

/** Starts the dispatched requests this worker may run. */
export class Dispatcher {
  readonly #options: DispatcherOptions;

  /** Starts nothing until it receives a payload. */
  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  /** A notification on the dispatch channel. */
  receive(payload: string): void {
    let requests: ClaimedRequest[];
    try {
      requests = parseDispatch(payload);
    } catch (error) {
      this.#options.log.error("malformed dispatch; its requests are left to a claim", {
        error: errorMessage(error),
      });
      this.#options.wake();
      return;
    }
    this.#dispatch(requests).catch((error) => {
      this.#options.log.error("dispatch failed; its requests are left to a claim", {
        error: errorMessage(error),
      });
      this.#options.wake();
    });
  }

  async #dispatch(requests: ClaimedRequest[]): Promise<void> {
    const { window, claims, startUnclaimed, run, wake } = this.#options;
    if (requests.length === 0) return;
    // Ids come in order: keep the window ahead of the newest.
    await window.follow(requests[requests.length - 1].id + 1);
    const mine: ClaimedRequest[] = [];
    for (const request of requests) {
      // Not in the window (issued after a jump of the sequence, or the window's lock was taken
      // by another worker): it is this worker's only if nobody holds its lock.
      if (window.holds(request.id) > 0 || await window.take(request.id)) mine.push(request);
    }
    if (mine.length === 0) return;
    const claim = Promise.withResolvers<Set<number>>();
    const started = mine.filter((request) =>
      startUnclaimed(
        request.kind,
        request.requestedBy,
        () => run(request, claim.promise.then((claimed) => claimed.has(request.id), () => false)),
      )
    );
    // No room for some: a claim takes them when a slot frees, in their role's turn.
    if (started.length < mine.length) wake();
    if (started.length === 0) return;
    claims.claimDispatched(started.map((r) => r.id)).then(claim.resolve, (error) => {
      this.#options.log.error(
        "marking dispatched requests running failed; they are left to a claim",
        {
          error: errorMessage(error),
        },
      );
      claim.resolve(new Set());
      wake();
    });
  }
}
