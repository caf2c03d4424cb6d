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

/** The claim statement of one worker, on its queue session. */
export class ClaimStatements {
  /** `session` is the worker's queue session, which also holds its locks. */
  constructor(readonly session: Sql, readonly workerId: string) {}

  /**
   * Claims up to `limits[kind]` queued requests of each kind (oldest first, skipping rows other
   * workers are claiming), marks them running, deletes their credentials and takes their locks,
   * in one statement (`omni_kube._claim_requests`). The result is ordered by id.
   */
  async claim(limits: Record<RequestKind, number>): Promise<ClaimedRequest[]> {
    const rows = await this.session`
      select * from omni_kube._claim_requests(${this.workerId}, ${limits.api}, ${limits.watch})`;
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
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
