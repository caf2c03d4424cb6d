/**
 * Large response bodies of async calls: copied in as sync calls' are (`ResponsePieces`), under
 * the request's id negated (async requests have ids of their own), and assembled into the async
 * request's row.
 *
 * @module
 */
import type { ResponsePieces } from "../queue/pieces.ts";

/** The pieces of async calls' bodies, kept with those of sync calls. */
export class AsyncPieces {
  /** `pieces` copies bodies in; its `workerId` is the worker whose running requests it fills. */
  constructor(readonly pieces: ResponsePieces) {}

  /** A sink for the body of async request `id` (see `ResponsePieces.sink`). */
  sink(id: number, signal: AbortSignal): Promise<WritableStream<Uint8Array>> {
    return this.pieces.sink(-id, signal);
  }

  /** Joins the pieces of async request `id` into its response, as `ResponsePieces.assemble`. */
  async assemble(id: number, isJson: boolean): Promise<void> {
    await this.pieces.sql`
      with pieces as (
        delete from omni_kube.response_piece where request_id = ${-id} returning seq, piece
      )
      update omni_kube.async_request r
         set response = omni_kube._response_jsonb(
               convert_from((select string_agg(piece, ''::bytea order by seq) from pieces), 'UTF8'),
               ${isJson})
       where r.id = ${id} and r.state = 'running' and r.worker_id = ${this.pieces.workerId}`;
  }

  /** Deletes the pieces of a body that will not be assembled. */
  discard(id: number): Promise<void> {
    return this.pieces.discard(-id);
  }
}
