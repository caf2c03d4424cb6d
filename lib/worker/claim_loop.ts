/**
 * Claiming: how many requests of each kind may run at once (slots), and the loop that claims
 * queued requests into the free slots whenever it is woken (a notification, a finished call, the
 * heartbeat).
 *
 * @module
 */
import type { ClaimedRequest, ClaimStatements } from "../queue/claim.ts";
import { REQUEST_KINDS, type RequestKind } from "../queue/protocol.ts";
import type { Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";

/** Slots per kind of request: how many may run at once, and how many do. */
export class Slots {
  readonly #limits: Record<RequestKind, number>;
  readonly #running: Record<RequestKind, number> = { api: 0, watch: 0 };

  /** `limits[kind]` requests of each kind may run at once. */
  constructor(limits: Record<RequestKind, number>) {
    this.#limits = limits;
  }

  /** Free slots of `kind`. */
  room(kind: RequestKind): number {
    return this.#limits[kind] - this.#running[kind];
  }

  /** Takes a slot of `kind` for a request that starts. */
  take(kind: RequestKind): void {
    this.#running[kind]++;
  }

  /**
   * Frees a slot of `kind`. True when it is now the only free one: the kind was full, so a claim
   * may have stopped for want of it.
   */
  free(kind: RequestKind): boolean {
    this.#running[kind]--;
    return this.room(kind) === 1;
  }
}

/** What {@linkcode ClaimLoop} works with. */
export interface ClaimLoopOptions {
  /** The claim statement. */
  claims: Pick<ClaimStatements, "claim">;
  /** Requests of each kind run at once; more stay queued. */
  limits: Record<RequestKind, number>;
  /** Runs a claimed request; settles when it has finished, which frees its slot. */
  run(request: ClaimedRequest): Promise<void>;
  /** After a claim that took requests, with the id after the last one: the lock window follows. */
  advance(next: number): Promise<void>;
  /** True once the worker stops: nothing more is claimed. */
  stopping(): boolean;
  log: Logger;
  metrics?: WorkerMetrics;
}

/** Claims queued requests into free slots; one claim at a time, again when woken meanwhile. */
export class ClaimLoop {
  /** The slots the loop claims into. */
  readonly slots: Slots;
  readonly #options: ClaimLoopOptions;
  #claiming: Promise<void> | undefined;
  #wakeAgain = false;

  /** Claims nothing until woken. */
  constructor(options: ClaimLoopOptions) {
    this.#options = options;
    this.slots = new Slots(options.limits);
  }

  /** Settles when no claim is under way. */
  get idle(): Promise<void> {
    return this.#claiming ?? Promise.resolve();
  }

  /** Looks for queued requests now. */
  wake(): void {
    if (this.#options.stopping()) return;
    if (this.#claiming) {
      this.#wakeAgain = true;
      return;
    }
    this.#claiming = this.#loop().catch((error) => {
      this.#options.log.error("claim failed", { error: String(error) });
    }).finally(() => this.#claiming = undefined);
  }

  async #loop(): Promise<void> {
    const { claims, stopping, metrics } = this.#options;
    do {
      this.#wakeAgain = false;
      while (!stopping()) {
        // Watches have slots of their own: long watches never hold up api() calls.
        const rooms = { api: this.slots.room("api"), watch: this.slots.room("watch") };
        if (rooms.api <= 0 && rooms.watch <= 0) break; // a finishing call wakes us again
        const claimStarted = performance.now();
        const claimed = await claims.claim({
          api: Math.max(rooms.api, 0),
          watch: Math.max(rooms.watch, 0),
        });
        metrics?.queueStatements.observe(
          { statement: "claim" },
          (performance.now() - claimStarted) / 1000,
        );
        for (const request of claimed) this.#start(request);
        if (claimed.length === 0) break;
        await this.#options.advance(claimed[claimed.length - 1].id + 1);
        // A full slot count claimed means more may be waiting: claim again.
        const full = REQUEST_KINDS.some((kind) =>
          rooms[kind] > 0 && claimed.filter((r) => r.kind === kind).length === rooms[kind]
        );
        if (!full) break;
      }
    } while (this.#wakeAgain && !stopping());
  }

  #start(request: ClaimedRequest): void {
    this.slots.take(request.kind);
    this.#options.run(request).finally(() => {
      if (this.slots.free(request.kind) || this.#wakeAgain) this.wake();
    });
  }
}
