/**
 * PostgreSQL connections (postgres.js): the worker's pool, and its queue session.
 *
 * @module
 */
import postgres from "postgres";

/** A postgres.js client with no custom types. */
export type Sql = postgres.Sql<Record<string, never>>;

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  max?: number;
  applicationName?: string;
  /** Called when a connection closes (the next query opens a new one). */
  onclose?: () => void;
  /** Keep connections open indefinitely instead of recycling them after 30-60 minutes. */
  keepConnections?: boolean;
  /** Extra session settings (startup parameters). */
  settings?: Record<string, string>;
  /**
   * Prepare statements once per connection (default true). False for a session whose state is
   * discarded between uses (prepared statements deallocated).
   */
  prepare?: boolean;
}

/** Opens a pool to `url`. Notices are dropped: the worker reports through its own log. */
export function connect(url: string, options: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 4,
    prepare: options.prepare ?? true,
    onnotice: () => {},
    onclose: options.onclose,
    ...(options.keepConnections ? { max_lifetime: null, idle_timeout: 0 } : {}),
    connection: {
      application_name: options.applicationName ?? "omni_kube_worker",
      // The worker runs as the shim's owner: nothing on a user-writable schema may shadow the
      // functions and operators its queries use.
      search_path: "pg_catalog, pg_temp",
      ...options.settings,
    },
    // Response bodies travel as text and are cast to jsonb by the server: no client-side parsing.
    transform: { undefined: null },
  });
}

/** A statement on a {@linkcode RenewableSession} that did not settle in time. */
export class StatementHung extends Error {
  /** `what` names the statement. */
  constructor(what: string, timeoutMs: number) {
    super(`${what} did not finish within ${timeoutMs / 1000} s; the session was opened anew`);
    this.name = "StatementHung";
  }
}

/**
 * A one-connection client that is replaced when a statement hangs. postgres.js can leave a client's
 * queries pending forever when it reconnects while the server is still starting, as it is after a
 * crash (seen with 3.4.9, porsager/postgres#1193); a fresh client connects to the running server.
 */
export class RenewableSession {
  #sql: Sql;

  /** `open` makes the one-connection client, now and each time it is replaced. */
  constructor(readonly open: () => Sql) {
    this.#sql = open();
  }

  /**
   * Runs `use` on the session. If it has not settled after `timeoutMs`, the client is ended (what
   * it was doing is rolled back, unless it had committed) and replaced, and this throws
   * {@linkcode StatementHung}.
   */
  async run<T>(what: string, timeoutMs: number, use: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.#sql;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StatementHung(what, timeoutMs)), timeoutMs);
    });
    try {
      return await Promise.race([use(sql), hung]);
    } catch (error) {
      if (error instanceof StatementHung && this.#sql === sql) {
        this.#sql = this.open();
        sql.end({ timeout: 0 }).catch(() => {});
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the client. */
  async end(): Promise<void> {
    await this.#sql.end({ timeout: 2 });
  }
}
