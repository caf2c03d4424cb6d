/**
 * Claiming: how many requests of each kind may run at once (slots), and the loop that claims
 * queued requests into the free slots whenever it is woken (a notification, a finished call, the
 * heartbeat).
 *
 * @module
 */
import {
  type ClaimedRequest,
  type ClaimRooms,
  type ClaimStatements,
  roomOf,
} from "../queue/claim.ts";
import { REQUEST_KINDS, type RequestKind } from "../queue/protocol.ts";
import type { Logger } from "../observe.ts";
import type { WorkerMetrics } from "../metrics.ts";

/**
 * Slots per kind of request: how many may run at once, in all and of one role, and how many do.
 * A role's share keeps one member's load from taking every slot.
 */
export class Slots {
  readonly #limits: Record<RequestKind, number>;
  readonly #roleLimits: Record<RequestKind, number>;
  readonly #running: Record<RequestKind, number> = { api: 0, watch: 0 };
  /** Requests running of each role that runs any. */
  readonly #byRole = new Map<string, Record<RequestKind, number>>();

  /** `limits[kind]` requests of each kind may run at once, `roleLimits[kind]` of one role. */
  constructor(limits: Record<RequestKind, number>, roleLimits: Record<RequestKind, number>) {
    this.#limits = limits;
    this.#roleLimits = roleLimits;
  }

  /** Free slots of `kind`. */
  room(kind: RequestKind): number {
    return this.#limits[kind] - this.#running[kind];
  }

  /** Free slots of `kind` for `role` (its share, less what it runs), free slots aside. */
  roleRoom(kind: RequestKind, role: string): number {
    return this.#roleLimits[kind] - (this.#byRole.get(role)?.[kind] ?? 0);
  }

  /** What a claim may take: free slots, and each role's room (see {@linkcode ClaimRooms}). */
  claimRooms(): ClaimRooms {
    const busy: ClaimRooms["busy"] = { roles: [], api: [], watch: [] };
    for (const role of this.#byRole.keys()) {
      busy.roles.push(role);
      for (const kind of REQUEST_KINDS) busy[kind].push(Math.max(this.roleRoom(kind, role), 0));
    }
    return {
      slots: { api: Math.max(this.room("api"), 0), watch: Math.max(this.room("watch"), 0) },
      roleSlots: this.#roleLimits,
      busy,
    };
  }

  /** Takes a slot of `kind` for a request of `role` that starts. */
  take(kind: RequestKind, role: string): void {
    this.#running[kind]++;
    let running = this.#byRole.get(role);
    if (!running) this.#byRole.set(role, running = { api: 0, watch: 0 });
    running[kind]++;
  }

  /**
   * Frees a slot of `kind` taken for `role`. True when it is now the only free one of the kind or
   * of the role's share: that was full, so a claim may have stopped for want of it.
   */
  free(kind: RequestKind, role: string): boolean {
    this.#running[kind]--;
    const running = this.#byRole.get(role)!;
    running[kind]--;
    if (running.api === 0 && running.watch === 0) this.#byRole.delete(role);
    return this.room(kind) === 1 || this.roleRoom(kind, role) === 1;
  }
}

/** The kinds and roles of which a claim took all the room `rooms` gave. */
function filledRoles(rooms: ClaimRooms, claimed: ClaimedRequest[]): [RequestKind, string][] {
  const filled: [RequestKind, string][] = [];
  for (const kind of REQUEST_KINDS) {
    const taken = new Map<string, number>();
    for (const r of claimed) {
      if (r.kind === kind) taken.set(r.requestedBy, (taken.get(r.requestedBy) ?? 0) + 1);
    }
    for (const [role, n] of taken) if (n === roomOf(rooms, kind, role)) filled.push([kind, role]);
  }
  return filled;
}

/** What {@linkcode ClaimLoop} works with. */
export interface ClaimLoopOptions {
  /** The claim statement. */
  claims: Pick<ClaimStatements, "claim">;
  /** Requests of each kind run at once; more stay queued. */
  limits: Record<RequestKind, number>;
  /** Requests of each kind one role runs at once; more of its requests stay queued. */
  roleLimits: Record<RequestKind, number>;
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
    this.slots = new Slots(options.limits, options.roleLimits);
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
        const rooms = this.slots.claimRooms();
        if (rooms.slots.api === 0 && rooms.slots.watch === 0) break; // a finishing call wakes us again
        const claimStarted = performance.now();
        const claimed = await claims.claim(rooms);
        metrics?.queueStatements.observe(
          { statement: "claim" },
          (performance.now() - claimStarted) / 1000,
        );
        for (const request of claimed) this.#start(request);
        if (claimed.length === 0) break;
        await this.#options.advance(claimed[claimed.length - 1].id + 1);
        // A full slot count claimed means more may be waiting: claim again. So does a role that
        // took all its room, if calls of it finished during the claim (no wake came for those).
        const full = REQUEST_KINDS.some((kind) =>
          rooms.slots[kind] > 0 &&
          claimed.filter((r) => r.kind === kind).length === rooms.slots[kind]
        ) || filledRoles(rooms, claimed).some(([kind, role]) =>
          this.slots.roleRoom(kind, role) > 0
        );
        if (!full) break;
      }
    } while (this.#wakeAgain && !stopping());
  }

  /**
   * Runs a request that came without a claim (dispatched: see ./dispatch.ts) with `run`, in a
   * slot of its kind and role, as a claimed one would; false, running nothing, when there is no
   * room for it or the worker stops.
   */
  startUnclaimed(kind: RequestKind, role: string, run: () => Promise<void>): boolean {
    if (
      this.#options.stopping() || this.slots.room(kind) <= 0 || this.slots.roleRoom(kind, role) <= 0
    ) {
      return false;
    }
    this.#occupy(kind, role, run);
    return true;
  }

  #start(request: ClaimedRequest): void {
    this.#occupy(request.kind, request.requestedBy, () => this.#options.run(request));
  }

  /** Takes a slot for `run`, freed when it settles; a freed slot may let a claim take more. */
  #occupy(kind: RequestKind, role: string, run: () => Promise<void>): void {
    this.slots.take(kind, role);
    run().finally(() => {
      if (this.slots.free(kind, role) || this.#wakeAgain) this.wake();
    });
  }
}
