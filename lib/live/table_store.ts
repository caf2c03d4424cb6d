/**
 * A live table as an informer's store: what the informer hands over is written into the table
 * (as its owner, by omni_kube._live_apply), and what it records between writes goes to the
 * registry. A full list is written in one transaction, so that a reader sees the table as it was
 * or as the list is, never a part: the first, into an empty table, page by page; a relist staged,
 * then reconciled with the table at its end.
 *
 * @module
 */
import { type InformerStore, type ListMetadata, StoreClosed } from "../kube/informer.ts";
import type { WorkerMetrics } from "../metrics.ts";
import type { LiveRegistry } from "./registry.ts";
import type { LiveSessions, OpenTransaction } from "./sessions.ts";

/** JSON texts as one JSON array's text: the database parses it once, with nothing to escape. */
function jsonArray(texts: string[]): string {
  return `[${texts.join(",")}]`;
}

/** SQLSTATE of a write refused because the table is no longer this worker's (or is gone). */
const NOT_OURS = "OKV02";

/** The store of live table `id`, as mirrored by the registry's worker. */
export class LiveTableStore implements InformerStore {
  #list: OpenTransaction | undefined;
  /**
   * How the list under way is written: into an empty table, page by page (`add`); else staged,
   * then reconciled with the table at its end (`replace`).
   */
  #listing: "add" | "replace" = "replace";

  constructor(
    readonly id: number,
    readonly registry: LiveRegistry,
    readonly sessions: LiveSessions,
    readonly metrics?: Pick<WorkerMetrics, "liveWrites" | "liveEvents">,
  ) {}

  async beginReplace(): Promise<void> {
    const table = await this.registry.syncing(this.id);
    this.#ours(table !== undefined);
    this.#listing = table === "empty" ? "add" : "replace";
    this.#list = await this.sessions.begin(this.id);
    if (this.#listing === "replace") await this.#list.sql`select omni_kube._live_stage_begin()`;
  }

  async stageEvents(events: string[]): Promise<void> {
    const list = this.#open();
    const page = jsonArray(events);
    await this.#write(
      "page",
      () =>
        this.#listing === "add"
          ? list.sql`select omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                                ${page}::text::jsonb, null, 'add')`
          : list.sql`select omni_kube._live_stage_events(${page}::text::jsonb)`,
    );
  }

  async stageList(page: string): Promise<ListMetadata> {
    const list = this.#open();
    let metadata: ListMetadata = {};
    await this.#write("page", async () => {
      const [row] = this.#listing === "add"
        ? await list.sql`
          select l.metadata, omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                                   l.events, null, 'add')
            from omni_kube._live_list_events(${page}) l`
        : await list.sql`select omni_kube._live_stage_list(${page}) as metadata`;
      metadata = (row?.metadata ?? {}) as ListMetadata;
    });
    return metadata;
  }

  async endReplace(resourceVersion: string): Promise<void> {
    const list = this.#open();
    const mode = this.#listing === "add" ? "added" : "replace";
    await this.#write("list", async () => {
      await list.sql`select omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                                  '[]'::jsonb, ${resourceVersion}, ${mode})`;
      this.#list = undefined;
      await list.commit();
    });
  }

  async abortReplace(): Promise<void> {
    const list = this.#list;
    this.#list = undefined;
    await list?.rollback();
  }

  async apply(events: string[], resourceVersion: string): Promise<void> {
    const batch = jsonArray(events);
    await this.#write(
      "events",
      () =>
        this.sessions.exclusive(
          this.id,
          (sql) =>
            sql.begin((tx) =>
              tx`select omni_kube._live_apply(${this.id}, ${this.registry.workerId}::uuid,
                                          ${batch}::text::jsonb, ${resourceVersion}, 'events')`
            ),
        ),
    );
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

  #open(): OpenTransaction {
    if (!this.#list) throw new Error("no list is under way");
    return this.#list;
  }

  /** Runs a write; a refusal because the table is not this worker's any more closes the store. */
  async #write(kind: "list" | "page" | "events", write: () => Promise<unknown>): Promise<void> {
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
