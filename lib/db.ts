/**
 * PostgreSQL connections (postgres.js). The worker uses one pool; its queue session and its LISTEN
 * connection come out of it.
 *
 * @module
 */
import postgres from "postgres";

/** A postgres.js client with no custom types. */
export type Sql = postgres.Sql<Record<string, never>>;

/** Opens a pool to `url`. Notices are dropped: the worker reports through its own log. */
export function connect(
  url: string,
  options: { max?: number; applicationName?: string } = {},
): Sql {
  return postgres(url, {
    max: options.max ?? 4,
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? "omni_kube_worker",
      // The worker runs as the shim's owner: nothing on a user-writable schema may shadow the
      // functions and operators its queries use.
      search_path: "pg_catalog, pg_temp",
    },
    // Response bodies travel as text and are cast to jsonb by the server: no client-side parsing.
    transform: { undefined: null },
  });
}
