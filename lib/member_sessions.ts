/**
 * The sessions in which the worker runs code members wrote: a live table's triggers (its writes,
 * see sql/functions/live/live_apply.sql) and async calls' callbacks (see
 * sql/functions/async/callbacks.sql), each with its member's rights. What such code leaves in a
 * session (settings, temporary tables, advisory locks, LISTENs) must not reach the next member's:
 * each use of a session is exclusive, and ends by discarding that state.
 *
 * @module
 */
import type postgres from "postgres";
import type { Sql } from "./db.ts";

/**
 * What DISCARD ALL does, but for its DISCARD PLANS: what a trigger can leave in a session goes
 * (cursors, settings and the role, prepared statements, LISTENs, advisory locks, temporary objects,
 * sequence state), while the plans of the tables' writers stay cached from one batch to the next.
 */
const RESET = `close all; set session authorization default; reset all; reset role;
  deallocate all; unlisten *; select pg_advisory_unlock_all(); discard temp; discard sequences`;

/** A transaction on a session, held open across statements until it is ended. */
export interface OpenTransaction {
  sql: postgres.TransactionSql<Record<string, never>>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** A one-connection client used by one writer at a time. */
class Session {
  #tail: Promise<void> = Promise.resolve();
  constructor(readonly sql: Sql) {}

  /** Runs `use` with the session to itself, then discards what it left in the session. */
  async exclusive<T>(use: (sql: Sql) => Promise<T>): Promise<T> {
    const previous = this.#tail;
    const turn = Promise.withResolvers<void>();
    this.#tail = turn.promise;
    await previous;
    try {
      return await use(this.sql);
    } finally {
      await this.sql.unsafe(RESET).catch(() => {});
      turn.resolve();
    }
  }
}

/** A few sessions; each key (a live table's id) uses its own one of them. */
export class MemberSessions {
  readonly #sessions: Session[];

  /** `open` makes a one-connection client without prepared statements. */
  constructor(open: () => Sql, count: number) {
    this.#sessions = Array.from({ length: count }, () => new Session(open()));
  }

  /** Runs `use` on the session of key `id`, to itself. */
  exclusive<T>(id: number, use: (sql: Sql) => Promise<T>): Promise<T> {
    return this.#sessions[id % this.#sessions.length].exclusive(use);
  }

  /**
   * Opens a transaction on the session of key `id` and keeps the session until it ends: for a list
   * gathered over many statements.
   */
  async begin(id: number): Promise<OpenTransaction> {
    const opened = Promise.withResolvers<OpenTransaction>();
    const end = Promise.withResolvers<void>();
    const rollback = new Error("rolled back");
    const done = this.exclusive(id, (sql) =>
      sql.begin(async (tx) => {
        opened.resolve({
          sql: tx,
          commit: async () => {
            end.resolve();
            await done;
          },
          rollback: async () => {
            end.reject(rollback);
            await done.catch((error) => {
              if (error !== rollback) throw error;
            });
          },
        });
        await end.promise;
      }));
    done.catch((error) => opened.reject(error));
    return await opened.promise;
  }

  async close(): Promise<void> {
    await Promise.all(this.#sessions.map((s) => s.sql.end({ timeout: 2 })));
  }
}
