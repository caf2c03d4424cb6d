/**
 * Dispatched requests: api() GETs and HEADs that carry no secret (the worker's own credentials,
 * or none) arrive whole on the secret dispatch channel (see `omni_kube._insert_requests`). The
 * worker holding a request's lock starts the call at once, with no claim round trip before it.
 * The claim follows after {@linkcode CLAIM_DELAY_MS}, for every call started meanwhile; a call
 * that finishes first is claimed by the statement that writes its result. A request the worker
 * cannot take stays queued for a claim: another worker holds its lock, or its kind or role has no
 * room here.
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
import type { LockStatements } from "../queue/locks.ts";
import { errorMessage, type Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";

/** What {@linkcode Dispatcher} works with. */
export interface DispatcherOptions {
  /** The worker's request locks. */
  window: Pick<LockWindow, "holds" | "hold" | "follow">;
  /** The statement that takes the locks of queued requests nobody holds. */
  locks: Pick<LockStatements, "tryLockQueued">;
  /** The statement that marks dispatched requests running. */
  claims: Pick<ClaimStatements, "claimDispatched">;
  /** Runs `run` in a slot of `kind` for `role`; false, running nothing, when there is no room. */
  startUnclaimed(kind: RequestKind, role: string, run: () => Promise<void>): boolean;
  /**
   * Runs a dispatched request; `claimed` settles once the database answered whether this worker
   * runs it (false: drop the answer). With `afterClaim`, the call starts only once it does.
   */
  run(request: ClaimedRequest, claimed: Promise<boolean>, afterClaim: boolean): Promise<void>;
  /** Whether this worker runs request `id` already (its claim took it before its dispatch came). */
  isRunning(id: number): boolean;
  /** Looks for queued requests: those left to a claim. */
  wake(): void;
  log: Logger;
  metrics?: WorkerMetrics;
  /** How long a started call waits for its claim statement; default {@linkcode CLAIM_DELAY_MS}. */
  claimDelayMs?: number;
}

/**
 * How long a dispatched call runs before its claim is sent: most GETs finish sooner, and the
 * statement that writes their result claims them (a claim by another worker leaves a dispatched
 * request alone for a second, see `omni_kube._dispatched_elsewhere`).
 */
export const CLAIM_DELAY_MS = 100;

/** Starts the dispatched requests this worker may run. */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  /** The claim statement under way (settled when none is). */
  #underWay: Promise<void> = Promise.resolve();
  /** The ids the next claim statement will take. */
  #next: ClaimBatch | undefined;

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

  async #dispatch(dispatched: ClaimedRequest[]): Promise<void> {
    const { window, locks, startUnclaimed, run, wake, isRunning } = this.#options;
    if (dispatched.length === 0) return;
    // Ids come in order: keep the window ahead of the newest.
    await window.follow(dispatched[dispatched.length - 1].id + 1);
    const requests = dispatched.filter((request) => !isRunning(request.id));
    // Held by the window since before the request was made: for a second, no other worker's
    // claim takes it (`omni_kube._dispatched_elsewhere`).
    const held = requests.filter((request) => window.holds(request.id) > 0);
    // Not in the window (issued after a jump of the sequence, or another worker's window has it,
    // or the heartbeat released it while the request was being made): this worker's only if it
    // is still queued and nobody holds its lock, and then only once its claim says so, since a
    // claim by another worker may be under way.
    const others = requests.filter((request) => window.holds(request.id) === 0);
    const locked = new Set(
      others.length === 0 ? [] : await locks.tryLockQueued(others.map((r) => r.id)),
    );
    for (const id of locked) window.hold(id);
    const mine = [
      ...held.map((request) => ({ request, afterClaim: false })),
      ...others.filter((r) => locked.has(r.id)).map((request) => ({ request, afterClaim: true })),
    ];
    if (mine.length === 0) return;
    const started = mine.filter(({ request, afterClaim }) =>
      startUnclaimed(
        request.kind,
        request.requestedBy,
        () => run(request, this.#claim(request.id, afterClaim), afterClaim),
      )
    );
    // No room for some: a claim takes them when a slot frees, in their role's turn.
    if (started.length < mine.length) wake();
  }

  /**
   * Whether the request `id`, started, is this worker's: marked running by a claim statement
   * that takes every id started meanwhile. The statement waits `claimDelayMs` (none with `now`),
   * and the one before it: a call that finishes first is {@linkcode withdraw}n and
   * claimed by the statement that writes its result.
   */
  #claim(id: number, now: boolean): Promise<boolean> {
    const batch = this.#next ?? this.#open();
    batch.ids.push(id);
    if (now) batch.close();
    return batch.claimed.promise.then((claimed) => claimed.has(id));
  }

  /** A claim statement to come, sent when closed: by its timer, or sooner. */
  #open(): ClaimBatch {
    let closed = false;
    const batch: ClaimBatch = {
      ids: [],
      claimed: Promise.withResolvers(),
      close: () => {
        if (closed) return;
        closed = true;
        clearTimeout(timer);
        if (this.#next === batch) this.#next = undefined;
        this.#underWay = this.#underWay.then(() => this.#send(batch));
      },
    };
    const timer = setTimeout(batch.close, this.#options.claimDelayMs ?? CLAIM_DELAY_MS);
    return this.#next = batch;
  }

  /** Sends the claim statement still to be sent now, if it takes request `id`. */
  hurry(id: number): void {
    if (this.#next?.ids.includes(id)) this.#next.close();
  }

  /**
   * Takes request `id` out of the claim statement still to be sent; true if it was there (the
   * statement writing its result claims it: see `unclaimed` in ../queue/results.ts), false if that
   * statement was sent.
   */
  withdraw(id: number): boolean {
    const ids = this.#next?.ids ?? [];
    const at = ids.indexOf(id);
    if (at < 0) return false;
    ids.splice(at, 1);
    return true;
  }

  /** Sends one claim statement; on failure its requests are left to a claim. Never rejects. */
  async #send({ ids, claimed }: ClaimBatch): Promise<void> {
    const { claims, metrics, log, wake } = this.#options;
    if (ids.length === 0) {
      claimed.resolve(new Set());
      return;
    }
    const started = performance.now();
    try {
      claimed.resolve(await claims.claimDispatched(ids));
      metrics?.queueStatements.observe(
        { statement: "claim" },
        (performance.now() - started) / 1000,
      );
    } catch (error) {
      log.error("marking dispatched requests running failed; they are left to a claim", {
        error: errorMessage(error),
      });
      claimed.resolve(new Set());
      wake();
    }
  }
}

/** Dispatched requests started, waiting for the claim statement that marks them running. */
interface ClaimBatch {
  ids: number[];
  claimed: PromiseWithResolvers<Set<number>>;
  /** Sends the statement after the one under way, and lets the next ids open another. */
  close(): void;
}
