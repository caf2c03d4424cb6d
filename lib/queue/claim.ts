/**
 * Claiming queued requests: the statement that takes requests off the queue for this worker.
 *
 * @module
 */
import type postgres from "postgres";
import type { Sql } from "../db.ts";
import type { HttpMethod, PatchType, RequestKind } from "./protocol.ts";

/** A claimed request, with its credentials (deleted from the database by the claim). */
export interface ClaimedRequest {
  id: number;
  kind: RequestKind;
  /** The role that made it (`requested_by`): the one whose share of the slots it takes. */
  requestedBy: string;
  method: HttpMethod;
  path: string;
  /** JSON text, or null. */
  body: string | null;
  stream: boolean;
  patchType: PatchType | null;
  server: string | null;
  timeoutMs: number;
  useWorkerDefault: boolean;
  cacert: string | null;
  clientCertificate: string | null;
  clientPrivateKey: string | null;
  token: string | null;
  /** Whether the claim took this request's lock (false: it was already held, e.g. by the window). */
  locked: boolean;
  /** The named cluster it goes to (its server and credentials are the worker's), or null. */
  cluster: string | null;
}

/** How much one claim may take, in total and of each role. */
export interface ClaimRooms {
  /** Free slots of each kind. */
  slots: Record<RequestKind, number>;
  /** What a role the worker runs no request of may take of each kind. */
  roleSlots: Record<RequestKind, number>;
  /** The roles the worker runs requests of, and what each may still take of each kind. */
  busy: { roles: string[]; api: number[]; watch: number[] };
}

/** What `rooms` lets a claim take of `role`'s requests of `kind`. */
export function roomOf(rooms: ClaimRooms, kind: RequestKind, role: string): number {
  const busy = rooms.busy.roles.indexOf(role);
  return busy >= 0 ? rooms.busy[kind][busy] : rooms.roleSlots[kind];
}

/** The claim statement of one worker, on its queue session. */
export class ClaimStatements {
  /**
   * `session` is the worker's queue session, which also holds its locks; `clusters` gives the
   * named clusters the worker serves, whose requests its claims take.
   */
  constructor(
    readonly session: Sql,
    readonly workerId: string,
    readonly clusters: () => string[] = () => [],
  ) {}

  /**
   * Marks the dispatched requests of `ids` running for this worker, which started them on
   * receiving them (`omni_kube._claim_dispatched`). Returns those claimed: the others were no
   * longer queued (their caller gave up, or another worker's claim took them first).
   */
  async claimDispatched(ids: number[]): Promise<Set<number>> {
    const rows = await this.session`
      select id from omni_kube._claim_dispatched(${this.workerId}, ${ids}::bigint[]) as id`;
    return new Set(rows.map((r) => Number(r.id)));
  }

  /**
   * Claims up to `rooms.slots[kind]` queued requests of each kind, role by role (the oldest of
   * each role first, then the second of each, ...) within each role's room, skipping rows other
   * workers are claiming; marks them running, deletes their credentials and takes their locks, in
   * one statement (`omni_kube._claim_requests`). The result is ordered by id.
   */
  async claim(rooms: ClaimRooms): Promise<ClaimedRequest[]> {
    const { slots, roleSlots, busy } = rooms;
    const rows = await this.session`
      select * from omni_kube._claim_requests(${this.workerId}, ${slots.api}, ${slots.watch},
        ${roleSlots.api}, ${roleSlots.watch}, ${busy.roles}::name[], ${busy.api}::int[],
        ${busy.watch}::int[], ${this.clusters()}::text[])`;
    return rows.map((r) => claimedFromRow(r));
  }
}

/**
 * A claimed request from a claim's row (`omni_kube._claim_requests`, `omni_kube._async_claim`):
 * their columns of the same names; `kind`, `locked` and `cluster` where the row has them.
 */
export function claimedFromRow(r: postgres.Row): ClaimedRequest {
  return {
    id: Number(r.id),
    kind: r.kind ?? "api",
    requestedBy: r.requested_by,
    method: r.method,
    path: r.path,
    body: r.body,
    stream: r.stream,
    patchType: r.patch_type,
    server: r.server,
    timeoutMs: r.timeout_ms,
    useWorkerDefault: r.use_worker_default,
    cacert: r.cacert,
    clientCertificate: r.client_certificate,
    clientPrivateKey: r.client_private_key,
    token: r.token,
    locked: r.locked ?? false,
    cluster: r.cluster ?? null,
  };
}

/**
 * The requests of a notification on the dispatch channel (`omni_kube._insert_requests`): api()
 * GETs and HEADs with no body that carry no secret (the worker's own credentials, or none), as
 * `[role, stream, server, timeout_ms, use_worker_default, cacert, [[id, method, path], ...]]`.
 * Throws on anything else: only the shim's owner can name the channel, so a payload it did not
 * write is a bug, not input.
 */
export function parseDispatch(payload: string): ClaimedRequest[] {
  const parsed: unknown = JSON.parse(payload);
  const fields: unknown[] = Array.isArray(parsed) ? parsed : [];
  const [role, stream, server, timeoutMs, useWorkerDefault, cacert, entries] = fields;
  if (
    fields.length !== 7 || typeof role !== "string" || typeof stream !== "boolean" ||
    (server !== null && typeof server !== "string") || typeof timeoutMs !== "number" ||
    !Number.isSafeInteger(timeoutMs) || typeof useWorkerDefault !== "boolean" ||
    (cacert !== null && typeof cacert !== "string") || !Array.isArray(entries)
  ) {
    throw new Error(
      "a dispatch payload is [role, stream, server, timeout_ms, use_worker_default, cacert, " +
        "requests]",
    );
  }
  return entries.map((entry: unknown): ClaimedRequest => {
    const request: unknown[] = Array.isArray(entry) ? entry : [];
    const [id, method, path] = request;
    if (
      request.length !== 3 || typeof id !== "number" || !Number.isSafeInteger(id) ||
      (method !== "GET" && method !== "HEAD") || typeof path !== "string"
    ) {
      throw new Error(
        `a dispatched request is [id, GET or HEAD, path], got ${
          JSON.stringify(request.slice(0, 2))
        }`,
      );
    }
    return {
      id,
      kind: "api",
      requestedBy: role,
      method,
      path,
      body: null,
      stream,
      patchType: null,
      server,
      timeoutMs,
      useWorkerDefault,
      cacert,
      clientCertificate: null,
      clientPrivateKey: null,
      token: null,
      // The lock is the window's, held before the request was made.
      locked: false,
      // A named cluster's requests are claimed, never dispatched.
      cluster: null,
    };
  });
}
