/**
 * The locks the worker holds on request ids. Callers wait for a request by blocking on its lock,
 * so the worker holds the locks of the requests it runs and, so that a caller whose request is
 * not claimed yet wakes exactly too, of the next ids the sequence will issue (the window). A lock
 * may be held more than once (by the window and by the claim): releasing lets go of every hold.
 *
 * @module
 */
import type { LockStatements } from "../queue/locks.ts";

/** The worker's holds on request locks, and the window of them ahead of the id sequence. */
export class LockWindow {
  readonly #locks: Pick<LockStatements, "tryLock" | "unlock">;
  readonly #size: number;
  readonly #isRunning: (id: number) => boolean;
  /** Ids whose locks this worker holds, with how many times. */
  readonly #held = new Map<number, number>();
  #end = 0;

  /**
   * `locks` takes and releases locks on the queue session; the window covers `size` ids;
   * `isRunning` tells the requests this worker runs, whose locks their own results release.
   */
  constructor(
    locks: Pick<LockStatements, "tryLock" | "unlock">,
    size: number,
    isRunning: (id: number) => boolean,
  ) {
    this.#locks = locks;
    this.#size = size;
    this.#isRunning = isRunning;
  }

  /** Ids whose locks this worker holds. */
  get held(): number[] {
    return [...this.#held.keys()];
  }

  /** How many holds this worker has on the lock of `id` (0: none). */
  holds(id: number): number {
    return this.#held.get(id) ?? 0;
  }

  /** Records one more hold on the lock of `id`, taken elsewhere (by the claim). */
  hold(id: number): void {
    this.#held.set(id, (this.#held.get(id) ?? 0) + 1);
  }

  /** Forgets every hold: the session's connection closed, and its locks went with it. */
  clear(): void {
    this.#held.clear();
  }

  /** Starts the window at `next`, the id the sequence issues next, and locks it. */
  async open(next: number): Promise<void> {
    this.#end = next;
    await this.advance(next);
  }

  /** Moves the window up to cover the `size` ids from `next` on; it never moves down. */
  async advance(next: number): Promise<void> {
    const end = next + this.#size;
    if (end <= this.#end) return;
    const start = Math.max(this.#end, end - this.#size);
    this.#end = end;
    await this.#lockRange(start, end);
  }

  /**
   * As {@linkcode advance}, but only once less than half the window is left ahead of `next`: one
   * statement per half window rather than per request, for requests that come one by one.
   */
  async follow(next: number): Promise<void> {
    if (this.#end - next >= this.#size / 2) return;
    await this.advance(next);
  }

  /**
   * Locks the `size` ids from `next` on that nobody holds, wherever the window is: those another
   * worker held before it stopped, or that this worker could not take before.
   */
  async takeOver(next: number): Promise<void> {
    await this.#lockRange(next, next + this.#size);
    this.#end = Math.max(this.#end, next + this.#size);
  }

  /**
   * Locks the ids in [start, end) that this worker does not hold yet (of those, the statement
   * takes only ids the sequence has not issued: see `LockStatements.tryLock`).
   */
  async #lockRange(start: number, end: number): Promise<void> {
    const ids: number[] = [];
    for (let id = start; id < end; id++) if (!this.#held.has(id)) ids.push(id);
    for (const id of await this.#locks.tryLock(ids)) this.hold(id);
  }

  /** Releases every hold on `ids`. */
  async release(ids: number[]): Promise<void> {
    const unlocks: number[] = [];
    for (const id of ids) {
      for (let n = this.#held.get(id) ?? 0; n > 0; n--) unlocks.push(id);
      this.#held.delete(id);
    }
    await this.#locks.unlock(unlocks);
  }

  /**
   * Requests `ids` were announced finished (on DONE_CHANNEL, by any worker, or by anyone at all:
   * a member may NOTIFY it too): releases the locks this worker holds on those of them that
   * `settled` (the queue) says are finished, but not on those it runs itself, whose results
   * release them.
   */
  async releaseFinished(
    ids: number[],
    settled: (ids: number[]) => Promise<number[]>,
  ): Promise<void> {
    const candidates = ids.filter((id) => this.#held.has(id) && !this.#isRunning(id));
    if (candidates.length === 0) return;
    const finished = await settled(candidates);
    if (finished.length > 0) await this.release(finished);
  }
}
