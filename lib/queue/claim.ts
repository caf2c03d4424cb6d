/**
 * Claiming queued requests: the statement that takes requests off the queue for this worker.
 *
 * @module
 */
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
  /** `session` is the worker's queue session, which also holds its locks. */
  constructor(readonly session: Sql, readonly workerId: string) {}

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
        ${busy.watch}::int[])`;
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
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
      locked: r.locked,
    }));
  }
}
