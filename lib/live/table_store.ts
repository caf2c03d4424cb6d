/**
 * A live table as an informer's store: what the informer hands over is written into the table
 * (as its owner, by omni_kube._live_apply), and what it records between writes goes to the
 * registry. A full list is staged in one transaction and reconciled with the table at its end, so
 * that a reader sees the table as it was or as the list is, never a part. A streaming list's
 * objects are copied in as the bytes the server sent (binary COPY): the worker never decodes them.
 *
 * @module
 */
import { type InformerStore, type ListMetadata, StoreClosed } from "../kube/informer.ts";
import type { WorkerMetrics } from "../metrics.ts";
import type { LiveRegistry } from "./registry.ts";
import type { MemberSessions, OpenTransaction } from "../member_sessions.ts";
import { BinaryCopy, CopyRefused, JsonbTupleWriter } from "../copy_binary.ts";
import { addedObjectBytes } from "../kube/watch_event.ts";

/** JSON texts as one JSON array's text: the database parses it once, with nothing to escape. */
function jsonArray(texts: string[]): string {
  return `[${texts.join(",")}]`;
}

/**
 * How long the end of a list's COPY may take: the rows still on their way, parsed. A bound, so that
 * the mirror never waits forever for an end postgres.js leaves unanswered (a connection lost after
 * the end was sent).
 */
const COPY_END_TIMEOUT_MS = 60_000;

/**
 * Rethrows a refusal of the list's COPY as an error that says what to do. PostgreSQL refuses a row
 * it cannot hold: a data exception (class 22, such as 22P05 for a \u0000 in a string) or a limit
 * (class 54). Only the server's message is kept: its detail and context can quote the object, and
 * errors reach logs.
 */
function explainRefusal(error: unknown): never {
  const code = (error as { code?: unknown })?.code;
  const refused = error instanceof CopyRefused ||
    (typeof code === "string" && (code.startsWith("22") || code.startsWith("54")));
  if (!refused) throw error;
  const reason = error instanceof CopyRefused ? "" : `: ${(error as Error).message}`;
  throw new Error(
    `PostgreSQL refused an object of the list${reason}. jsonb cannot hold every JSON text (a \\u0000 in a string, for one): the table keeps what it had, and the list is tried again until the object changes; the server's log names the row`,
    { cause: error },
  );
}

/** SQLSTATE of a write refused because the table is no longer this worker's (or is gone). */
const NOT_OURS = "OKV02";

/** The store of live table `id`, as mirrored by the registry's worker. */
export class LiveTableStore implements InformerStore {
  #list: OpenTransaction | undefined;
  /** The COPY of a streaming list's objects, opened at its first object and ended at its end. */
  #copy: Promise<BinaryCopy> | undefined;
  /** The tuples on their way into that COPY. */
  #tuples: JsonbTupleWriter | undefined;

  constructor(
    readonly id: number,
    readonly registry: LiveRegistry,
    readonly sessions: MemberSessions,
    readonly metrics?: Pick<WorkerMetrics, "liveWrites" | "liveEvents">,
  ) {}

  async beginReplace(): Promise<void> {
    this.#ours(await this.registry.syncing(this.id));
    this.#list = await this.sessions.begin(this.id);
    await this.#list.sql`select omni_kube._live_stage_begin()`;
  }

  stageEvent(event: Uint8Array): Promise<void> | undefined {
    const object = addedObjectBytes(event);
    const waiting = this.#tuples
      ? this.#tuples.add(object)
      : this.#openCopy().then((tuples) => tuples.add(object));
    return waiting?.catch(explainRefusal);
  }

  async #openCopy(): Promise<JsonbTupleWriter> {
    this.#copy ??= BinaryCopy.open(
      this.#listing()
        .sql`copy pg_temp.omni_kube_live_stage (resource) from stdin (format binary)`
        .writable(),
    );
    return this.#tuples ??= new JsonbTupleWriter(await this.#copy);
  }

  async stageList(page: string): Promise<ListMetadata> {
    const [row] = await this.#listing().sql`
      select omni_kube._live_stage_list(${page}) as metadata`;
    return (row?.metadata ?? {}) as ListMetadata;
  }

  async endReplace(resourceVersion: string): Promise<void> {
    const list = this.#listing();
    await this.#write("list", async () => {
      if (this.#copy) {
        const copy = await this.#copy;
        await this.#tuples?.flush().catch(explainRefusal);
        await copy.endThen(() => list.sql`select`, AbortSignal.timeout(COPY_END_TIMEOUT_MS))
          .catch(explainRefusal);
        this.#copy = undefined;
        this.#tuples = undefined;
      }
      await list.sql`select omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                                  '[]'::jsonb, ${resourceVersion}, true)`;
      this.#list = undefined;
      await list.commit();
    });
  }

  async abortReplace(): Promise<void> {
    const list = this.#list;
    const copy = this.#copy;
    this.#list = undefined;
    this.#copy = undefined;
    this.#tuples = undefined;
    // A COPY still open (or opening) must end before the rollback can be sent on its connection.
    (await copy?.catch(() => undefined))?.fail(new Error("the list failed"));
    await list?.rollback();
  }

  async apply(events: string[], resourceVersion: string): Promise<void> {
    await this.#write("events", () =>
      this.sessions.exclusive(
        this.id,
        (sql) =>
          sql.begin((tx) =>
            tx`select omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                          ${
              jsonArray(events)
            }::text::jsonb, ${resourceVersion}, false)`
          ),
      ));
    this.metrics?.liveEvents.inc(events.length);
  }

  async bookmark(resourceVersion: string): Promise<void> {
    this.#ours(await this.registry.bookmark(this.id, resourceVersion));
  }

  async resumed(): Promise<void> {
    this.#ours(await this.registry.resumed(this.id));
  }

  async failed(error: string, _retryMs: number, expired: boolean): Promise<void> {
    this.#ours(await this.registry.failed(this.id, error, expired));
  }

  #listing(): OpenTransaction {
    if (!this.#list) throw new Error("no list is being staged");
    return this.#list;
  }

  /** Runs a write; a refusal because the table is not this worker's any more closes the store. */
  async #write(kind: "list" | "events", write: () => Promise<unknown>): Promise<void> {
    const timer = this.metrics?.liveWrites.startTimer({ kind });
    try {
      await write();
      timer?.();
    } catch (error) {
      if ((error as { code?: string }).code === NOT_OURS) {
        throw new StoreClosed(`live table ${this.id}: ${(error as Error).message}`);
      }
      throw error;
    }
  }

  #ours(stillOurs: boolean): void {
    if (!stillOurs) throw new StoreClosed(`live table ${this.id} is no longer this worker's`);
  }
}
