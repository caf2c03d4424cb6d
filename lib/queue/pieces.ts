/**
 * Large response bodies, copied into PostgreSQL as they arrive and then assembled into their
 * request's row, so that the worker never holds one whole.
 *
 * @module
 */
import type { Sql } from "../db.ts";
import { BinaryCopy, pieceHeader } from "../copy_binary.ts";

/**
 * Large response bodies, copied in piece by piece. Each piece is a chunk of the body as it came
 * off the network, in COPY's binary format: no decoding, no escaping, no parameter strings. The
 * queue session stays free meanwhile.
 *
 * Each COPY runs on a session of its own, taken from a few kept for it: postgres.js would
 * pipeline another statement onto a connection whose COPY has not begun yet, which the server
 * refuses by closing the connection. (Not `sql.reserve()`: see the queue session in worker.ts.)
 */
export class ResponsePieces {
  readonly #idle: Sql[] = [];
  readonly #all: Sql[] = [];
  readonly #waiting: ((session: Sql) => void)[] = [];

  /**
   * `sql` runs the other statements; `openCopySession` opens a one-connection client for COPY,
   * of which at most `maxCopies` are kept (more bodies wait for one to be free).
   */
  constructor(
    readonly sql: Sql,
    readonly workerId: string,
    readonly openCopySession: () => Sql,
    readonly maxCopies: number,
  ) {}

  /**
   * A sink for the body of request `id`: every chunk written becomes a piece; closing commits
   * them, aborting discards them. `signal` bounds the wait for the commit (postgres.js never
   * reports a connection lost after the end of a COPY was sent).
   */
  async sink(id: number, signal: AbortSignal): Promise<WritableStream<Uint8Array>> {
    const session = await this.#acquire();
    let copy: BinaryCopy;
    try {
      copy = await BinaryCopy.open(
        session`copy omni_kube.response_piece (request_id, seq, piece) from stdin (format binary)`
          .writable(),
      );
    } catch (error) {
      this.#release(session);
      throw error;
    }
    let seq = 0;
    return new WritableStream<Uint8Array>({
      write: async (piece) => {
        await copy.write(pieceHeader(id, seq++, piece.length));
        await copy.write(piece);
      },
      close: async () => {
        try {
          await copy.end(signal);
        } finally {
          this.#release(session);
        }
      },
      abort: (reason) => {
        copy.fail(reason);
        this.#release(session);
      },
    });
  }

  async #acquire(): Promise<Sql> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#all.length < this.maxCopies) {
      const session = this.openCopySession();
      this.#all.push(session);
      return session;
    }
    return await new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(session: Sql): void {
    const next = this.#waiting.shift();
    if (next) next(session);
    else this.#idle.push(session);
  }

  /** Closes the COPY sessions. */
  async close(): Promise<void> {
    await Promise.all(this.#all.map((session) => session.end({ timeout: 2 })));
  }

  /**
   * Joins the pieces of request `id` into its response and deletes them. A body said to be JSON
   * that is not (or is not storable as jsonb) is stored as a JSON string, as `complete` does; a
   * body that is not UTF-8 fails with PostgreSQL's error, which names the byte.
   */
  async assemble(id: number, isJson: boolean): Promise<void> {
    await this.sql`
      with pieces as (
        delete from omni_kube.response_piece where request_id = ${id} returning seq, piece
      )
      update omni_kube.request r
         set response = omni_kube._response_jsonb(
               convert_from((select string_agg(piece, ''::bytea order by seq) from pieces), 'UTF8'),
               ${isJson})
       where r.id = ${id} and r.state = 'running' and r.worker_id = ${this.workerId}`;
  }

  /** Deletes the pieces of a body that will not be assembled. */
  async discard(id: number): Promise<void> {
    await this.sql`delete from omni_kube.response_piece where request_id = ${id}`;
  }
}
