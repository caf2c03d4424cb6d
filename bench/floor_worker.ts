/**
 * The floor's worker (bench/floor.ts, bench/floor.sql): a process of its own, as the bridge's worker
 * is, so that its CPU can be read from /proc. Run as
 * `deno run --allow-net --allow-env --allow-read bench/floor_worker.ts` with `DATABASE_URL` and
 * `FLOOR_TARGETS` (JSON, {@linkcode FloorTargets}).
 *
 * One LISTEN connection and one session. A notification carries a whole request (`id path`), so
 * nothing is claimed: the worker makes the GET with the bridge's HTTP client, then writes the result
 * and releases the request's lock in one round trip. Its session holds the locks of a window of ids
 * ahead of the sequence, so that a caller can block on its request's lock as soon as it has its id.
 *
 * @module
 */
import postgres from "postgres";
import { KubeHttp, type KubeTarget } from "../lib/kube/client.ts";

/** The channel floor.sql's `enqueue` notifies. */
export const CHANNEL = "omni_kube_floor";
/** The application_name of the worker's session, which floor.ts reads to tell backends apart. */
export const SESSION_NAME = "omni_kube_floor_worker";
/** The application_name of the worker's LISTEN connection. */
export const LISTEN_NAME = "omni_kube_floor_listen";
/** Paths under this go to the minimal endpoint (which answers any path), others to the cluster. */
export const LOCAL_PREFIX = "/bench";
/** How many ids ahead of the sequence the worker holds the locks of. */
const WINDOW = 256;

/** Where the worker sends requests: the floor has no credentials or servers in its requests. */
export interface FloorTargets {
  kube: KubeTarget;
  local: KubeTarget;
}

function die(error: unknown): never {
  console.error("floor worker:", error);
  Deno.exit(1);
}

async function main(url: string, targets: FloorTargets) {
  const options = { max: 1, onnotice: () => {}, max_lifetime: null, idle_timeout: 0 } as const;
  // The locks live in this session: if it closes, callers would wait for nothing.
  const sql = postgres(url, {
    ...options,
    connection: { application_name: SESSION_NAME },
    onclose: () => die("the session closed"),
  });
  // postgres.js listens on a connection of its own, made with this client's options.
  const listener = postgres(url, { ...options, connection: { application_name: LISTEN_NAME } });
  const http = new KubeHttp();

  /** Ids whose locks the session holds. */
  const held = new Set<number>();
  /** The window covers the ids below this. */
  let windowEnd = 0;
  const lockRange = async (start: number, end: number) => {
    const rows = await sql<{ id: string }[]>`
      select k as id from generate_series(${start}::int8, ${end - 1}::int8) k
       where pg_try_advisory_lock(omni_kube_floor.lock_class(), omni_kube_floor.lock_key(k))`;
    for (const { id } of rows) held.add(Number(id));
  };
  // Moved every half window, off the calls' path: nothing awaits it.
  const advance = (id: number) => {
    if (id + WINDOW / 2 <= windowEnd) return;
    const start = Math.max(windowEnd, id + 1);
    windowEnd = id + WINDOW;
    lockRange(start, windowEnd).catch(die);
  };

  const run = async (id: number, path: string) => {
    let state = "done";
    let status: number;
    let body: string;
    try {
      const target = path.startsWith(LOCAL_PREFIX) ? targets.local : targets.kube;
      const response = await http.fetch(target, { method: "GET", path });
      status = response.status;
      body = await response.text();
    } catch (error) {
      state = "failed";
      status = 0;
      body = JSON.stringify(String(error));
    }
    // The body travels as text and is parsed by the server (a jsonb parameter would be re-encoded).
    // Sent back to back, they go in one round trip (postgres.js pipelines a connection's queries),
    // and each commits on its own: the lock is released once the result is visible.
    const update = sql`
      update omni_kube_floor.request set state = ${state}, status = ${status},
             response = ${body}::text::jsonb
       where id = ${id}`.execute();
    const unlock = held.delete(id)
      ? sql`select pg_advisory_unlock(omni_kube_floor.lock_class(), omni_kube_floor.lock_key(${id}))`
        .execute()
      : undefined;
    await Promise.all([update, unlock]);
  };

  await listener.listen(CHANNEL, (payload) => {
    const space = payload.indexOf(" ");
    const id = Number(payload.slice(0, space));
    advance(id);
    run(id, payload.slice(space + 1)).catch(die);
  });
  // Listening first, then the window from the next id on: no request is missed.
  const [{ next }] = await sql<{ next: string }[]>`
    select case when is_called then last_value + 1 else last_value end as next
      from omni_kube_floor.request_id_seq`;
  windowEnd = Number(next) + WINDOW;
  await lockRange(Number(next), windowEnd);
  console.log(`floor worker ready: locks from id ${next} held`);
}

if (import.meta.main) {
  const url = Deno.env.get("DATABASE_URL");
  const targets = Deno.env.get("FLOOR_TARGETS");
  if (!url || !targets) die("DATABASE_URL and FLOOR_TARGETS must be set");
  await main(url, JSON.parse(targets) as FloorTargets).catch(die);
}
