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
