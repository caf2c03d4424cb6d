/**
 * What the worker and the SQL side agree on outside the tables: notification channels, request
 * kinds, methods, PATCH flavours, states and the longest call. The database's own copy is
 * `omni_kube._protocol()` (sql/functions/protocol/constants.sql); {@linkcode protocolMismatch}
 * compares the two when the worker starts.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import type { Sql } from "../db.ts";

/** Channel on which new requests are announced. */
export const REQUEST_CHANNEL = "omni_kube_request";
/** Channel on which callers announce requests they gave up on (comma-separated ids). */
export const CANCEL_CHANNEL = "omni_kube_cancel";
/** Channel on which finished request ids are announced (comma-separated, or "*"). */
export const DONE_CHANNEL = "omni_kube_done";
/** Channel on which committed async requests are announced (api_async, at commit). */
export const ASYNC_CHANNEL = "omni_kube_async";

/** Kinds of request; each has its own concurrency limit in the worker. */
export const REQUEST_KINDS = ["api", "watch"] as const;
/** One of {@linkcode REQUEST_KINDS}. */
export type RequestKind = typeof REQUEST_KINDS[number];

/** The methods a request may have (the enum `omni_kube.http_method`). */
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
/** One of {@linkcode HTTP_METHODS}. */
export type HttpMethod = typeof HTTP_METHODS[number];

/** The PATCH flavours a request may ask for (`omni_kube.patch_type`). */
export const PATCH_TYPES = ["merge", "json", "strategic", "apply"] as const;
/** One of {@linkcode PATCH_TYPES}. */
export type PatchType = typeof PATCH_TYPES[number];

/** The states of a request (the enum `omni_kube.request_state`; see the protocol's README). */
export const REQUEST_STATES = ["queued", "running", "done", "failed", "cancelled"] as const;

/** The longest a call may be meant to last (a watch's timeout), in seconds. */
export const MAX_DURATION_SECONDS = 3600;

/** The constants as `omni_kube._protocol()` returns them. */
export const PROTOCOL = {
  kinds: REQUEST_KINDS,
  methods: HTTP_METHODS,
  patch_types: PATCH_TYPES,
  states: REQUEST_STATES,
  max_duration_seconds: MAX_DURATION_SECONDS,
} as const;

/** The ids in a payload of {@linkcode CANCEL_CHANNEL} or {@linkcode DONE_CHANNEL}. */
export function idsOf(payload: string): number[] {
  return payload.split(",").map(Number);
}

/**
 * Where the database's constants differ from this worker's, one line per constant; empty when
 * they agree.
 */
export function protocolDifferences(database: Record<string, unknown>): string[] {
  const names = new Set([...Object.keys(PROTOCOL), ...Object.keys(database)]);
  return [...names].sort().flatMap((name) => {
    const ours = (PROTOCOL as Record<string, unknown>)[name];
    const theirs = database[name];
    return isDeepStrictEqual(ours, theirs)
      ? []
      : [`${name}: database ${JSON.stringify(theirs)}, worker ${JSON.stringify(ours)}`];
  });
}

/** Why the database's constants and this worker's disagree, or null when they agree. */
export async function protocolMismatch(sql: Sql): Promise<string | null> {
  const [{ protocol }] = await sql`select omni_kube._protocol() as protocol`;
  const differences = protocolDifferences(protocol);
  return differences.length === 0 ? null : `the database's call protocol differs from this ` +
    `worker's (${differences.join("; ")}): run a worker of the release the database has ` +
    `(omni_kube.version()), or migrate it with this one`;
}
