/**
 * An informer's reflector: keeps a store equal to one collection of the API server. It lists the
 * collection, then watches from the list's resourceVersion, handing the store every change in
 * order, batched while the store is busy; it resumes from the last version it reached, lists
 * again when the server says that version is gone (410), and backs off (exponentially, with
 * jitter, capped) after errors.
 *
 * The list is a streaming list (KEP-3157: a watch with `sendInitialEvents`, whose initial state
 * ends with a bookmark annotated `k8s.io/initial-events-end`) where the server supports one, else
 * pages of `limit` objects. The store gets a streaming list object by object as it is read, a
 * paginated one page by page; the informer keeps no more than one page or one batch of changes:
 * the store is where objects live.
 *
 * Objects stay as the server sent them: a streaming list's objects as bytes (never decoded here),
 * watch events as text; only bookmarks, errors and the last event of a batch (for its version) are
 * parsed here. Knows nothing about PostgreSQL.
 *
 * @module
 */
import type { KubeFetch, KubeTarget } from "./client.ts";
import { readResponseText } from "./body.ts";
import { ByteBudget } from "./limits.ts";
import { byteLines } from "./ndjson.ts";
import { withQuery } from "./watch.ts";
import { startsWith } from "./watch_event.ts";

/** What a paginated list's page says of the list. */
export interface ListMetadata {
  resourceVersion?: string;
  continue?: string;
}

/**
 * Where an informer keeps the collection. A full list (the first, or a relist) is given as
 * `beginReplace`, pages, then `endReplace` (or `abortReplace` if it failed): the store must show
 * either its old content or the whole list, never a part. Every method may throw
 * {@linkcode StoreClosed} to stop the informer for good.
 */
export interface InformerStore {
  /** A full list begins; nothing of it is shown until `endReplace`. */
  beginReplace(): Promise<void>;
  /**
   * One object of a streaming list: an ADDED watch event, the bytes of one JSON line as the
   * server sent it (UTF-8, no line ending). They are the informer's read buffer, which the next
   * read overwrites: the store copies what it keeps before it returns, or before the promise it
   * returns settles. A promise holds the informer back: it reads nothing more until it settles.
   */
  stageEvent(event: Uint8Array): Promise<void> | undefined;
  /** One page of a paginated list, as the server sent it; returns the page's list metadata. */
  stageList(page: string): Promise<ListMetadata>;
  /** The list is complete, as of `resourceVersion`: the store becomes it. */
  endReplace(resourceVersion: string): Promise<void>;
  /** The list failed: the store keeps what it had. */
  abortReplace(): Promise<void>;
  /** Watch events (ADDED, MODIFIED, DELETED) in order, as JSON text; then the store is at `resourceVersion`. */
  apply(events: string[], resourceVersion: string): Promise<void>;
  /** Nothing changed up to `resourceVersion` (a bookmark). */
  bookmark(resourceVersion: string): Promise<void>;
  /** A watch runs again after failures, from the store's version. */
  resumed?(): Promise<void>;
  /** An attempt failed and is retried in `retryMs`; `expired`: the store's version is gone. */
  failed(error: string, retryMs: number, expired: boolean): Promise<void>;
}

/** Thrown by a store that no longer takes changes (its table is gone, or another owns it). */
export class StoreClosed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreClosed";
  }
}

/** The server answered a status of 400 or more. */
export class InformerHttpError extends Error {
  constructor(readonly status: number, readonly path: string, body: string) {
    super(`${status} from GET ${path}: ${statusMessage(body)}`);
    this.name = "InformerHttpError";
  }
}

/** The version the informer resumes from is gone (410 Gone, or an ERROR event with code 410). */
class Expired extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Expired";
  }
}

/**
 * A streaming list's stream ended before its initial state was complete (a proxy on the way, or a
 * server that ends it early): the informer lists in pages instead, as client-go's reflector falls
 * back to a list.
 */
class EndedEarly extends Error {
  constructor() {
    super("the stream ended before the list's initial state was complete");
    this.name = "EndedEarly";
  }
}

/** What an informer watches and where it keeps it. */
export interface InformerOptions {
  /** Sends a request (a watch as `purpose: "watch"`). */
  fetch: KubeFetch;
  /** The server and credentials, asked for anew before each request (tokens rotate). */
  target: () => KubeTarget;
  /** The collection's path, with its selectors in the query, e.g. `/api/v1/pods?labelSelector=app%3Dweb`. */
  path: string;
  store: InformerStore;
  /** Where the store is (its last version): the informer watches from there. Absent: it lists. */
  resourceVersion?: string;
  /** Stops the informer; `run` settles soon after. */
  signal: AbortSignal;
  /** Try streaming lists first (default true); false: paginated lists only. */
  streamingLists?: boolean;
  /** Objects per page of a paginated list (default 500). */
  pageSize?: number;
  /** How long one watch runs before the server ends it and the informer starts the next. */
  watchSeconds?: number;
  /** The most events given to the store in one batch (default 1000). */
  maxBatch?: number;
  /** Bytes the informer holds at most: a page, the events waiting for the store, a line. */
  maxBytes?: number;
  /** First and greatest wait after a failure. */
  backoff?: { initialMs: number; maxMs: number };
  /** Called after each failure, with the error. */
  onError?: (error: unknown, retryMs: number) => void;
  /** In [0, 1): jitter. */
  random?: () => number;
}

const INITIAL_EVENTS_END = "k8s.io/initial-events-end";
const DEFAULTS = {
  pageSize: 500,
  watchSeconds: 300,
  maxBatch: 1000,
  maxBytes: 64 * 1024 * 1024,
  backoff: { initialMs: 500, maxMs: 30_000 },
};

/** The wait after the `failures`-th failure in a row: doubling from `initialMs`, capped, ±50% jitter. */
export function backoffMs(
  failures: number,
  backoff: { initialMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, failures - 1));
  return Math.min(backoff.maxMs, Math.round(base * (0.5 + random())));
}

/** Runs an informer until its signal aborts or its store closes; never throws otherwise. */
export async function runInformer(options: InformerOptions): Promise<void> {
  const settings = { ...DEFAULTS, ...options };
  const { signal, store } = options;
  let resourceVersion = options.resourceVersion;
  let streaming = options.streamingLists ?? true;
  let failures = 0;
  // The store reached a version: a watch that fails later resumes from there.
  const reach = (version: string) => resourceVersion = version;
  while (!signal.aborted) {
    try {
      if (!resourceVersion) {
        const listed = streaming
          ? await streamingList(settings, reach, () => failures = 0)
          : await paginatedList(settings);
        if (listed === "unsupported") {
          streaming = false;
          continue;
        }
        resourceVersion = listed;
        failures = 0;
      }
      resourceVersion = await watchFrom(settings, resourceVersion, failures > 0, reach);
      failures = 0;
    } catch (error) {
      if (signal.aborted || error instanceof StoreClosed) return;
      const expired = error instanceof Expired;
      if (expired) resourceVersion = undefined;
      // An expired version is listed again at once, unless the failure before was one too; other
      // failures wait, longer each time.
      failures++;
      const retryMs = expired && failures === 1
        ? 0
        : backoffMs(failures, settings.backoff, settings.random);
      options.onError?.(error, retryMs);
      try {
        await store.failed(describe(error), retryMs, expired);
      } catch (storeError) {
        if (storeError instanceof StoreClosed) return;
      }
      await sleep(retryMs, signal);
    }
  }
}

type Settings = InformerOptions & typeof DEFAULTS;

/**
 * A streaming list: its initial events go to the store as a replacement, then the same stream
 * goes on as a watch. Returns the version it reached, or "unsupported" when the server refuses
 * streaming lists or ends one before its initial state is complete.
 */
async function streamingList(
  settings: Settings,
  reach: (resourceVersion: string) => void,
  synced: () => void,
): Promise<string | "unsupported"> {
  const path = withQuery(settings.path, {
    watch: "1",
    sendInitialEvents: "true",
    resourceVersionMatch: "NotOlderThan",
    allowWatchBookmarks: "true",
    timeoutSeconds: String(settings.watchSeconds),
  });
  const response = await open(settings, path);
  if (!response.ok) {
    const body = await readResponseText(response, { maxBytes: settings.maxBytes });
    // Servers without streaming lists refuse the parameters (400, 422); anything else is an error.
    if (response.status === 400 || response.status === 422) return "unsupported";
    throw statusError(response.status, path, body);
  }
  try {
    await settings.store.beginReplace();
  } catch (error) {
    await response.body?.cancel(error).catch(() => {});
    throw error;
  }
  let replacing = true;
  try {
    return await consume(settings, response, undefined, reach, {
      stage: (event) => settings.store.stageEvent(event),
      end: async (resourceVersion) => {
        await settings.store.endReplace(resourceVersion);
        replacing = false;
        synced();
      },
    });
  } catch (error) {
    if (error instanceof EndedEarly) return "unsupported";
    throw error;
  } finally {
    if (replacing) await settings.store.abortReplace().catch(() => {});
  }
}

/** A paginated list into the store; returns the list's version. */
async function paginatedList(settings: Settings): Promise<string> {
  await settings.store.beginReplace();
  let done = false;
  try {
    let resourceVersion: string | undefined;
    let next: string | undefined;
    do {
      const params: Record<string, string> = { limit: String(settings.pageSize) };
      if (next) params.continue = next;
      const path = withQuery(settings.path, params);
      const response = await open(settings, path, "call");
      const body = await readResponseText(response, {
        maxBytes: settings.maxBytes,
        signal: settings.signal,
      });
      if (!response.ok) throw statusError(response.status, path, body);
      const metadata = await settings.store.stageList(body);
      resourceVersion ??= metadata.resourceVersion;
      next = metadata.continue || undefined;
    } while (next);
    if (!resourceVersion) throw new Error(`the list of ${settings.path} has no resourceVersion`);
    await settings.store.endReplace(resourceVersion);
    done = true;
    return resourceVersion;
  } finally {
    if (!done) await settings.store.abortReplace().catch(() => {});
  }
}

/**
 * One watch from `resourceVersion` until the server ends it; returns the version reached.
 * `recovering`: earlier attempts failed, and the store hears once this one runs.
 */
async function watchFrom(
  settings: Settings,
  resourceVersion: string,
  recovering: boolean,
  reach: (resourceVersion: string) => void,
): Promise<string> {
  const path = withQuery(settings.path, {
    watch: "1",
    resourceVersion,
    allowWatchBookmarks: "true",
    timeoutSeconds: String(settings.watchSeconds),
  });
  const response = await open(settings, path);
  if (!response.ok) {
    const body = await readResponseText(response, { maxBytes: settings.maxBytes });
    throw statusError(response.status, path, body);
  }
  if (recovering) await settings.store.resumed?.();
  return await consume(settings, response, resourceVersion, reach);
}

/** What to do with a streaming list's initial state, until its end. */
interface InitialState {
  stage(event: Uint8Array): Promise<void> | undefined;
  end(resourceVersion: string): Promise<void>;
}

/**
 * Reads a watch stream to its end: events go to the store in batches (while one batch is being
 * stored the next gathers), each with the version it ends at; with `initial`, the events before
 * the initial-events-end bookmark go to `initial.stage` one by one. Returns the last version.
 */
async function consume(
  settings: Settings,
  response: Response,
  resourceVersion: string | undefined,
  reach: (resourceVersion: string) => void,
  initial?: InitialState,
): Promise<string> {
  const { store, signal } = settings;
  const budget = new ByteBudget(settings.maxBytes);
  // Lines waiting for the store (events and bookmarks), and the batch being stored.
  const waiting: { text: string; bytes: number }[] = [];
  let storing: Promise<void> | undefined;
  let failure: unknown;
  // A failure of the store ends the read at once, though the stream be quiet.
  const failed = new AbortController();
  let reached = resourceVersion;
  const drain = async () => {
    while (waiting.length > 0 && failure === undefined) {
      const batch = waiting.splice(0, settings.maxBatch);
      try {
        const last = versionOf(batch[batch.length - 1].text);
        const events = batch.filter((line) => !isBookmark(line.text)).map((line) => line.text);
        if (events.length > 0) await store.apply(events, last ?? reached!);
        else if (last) await store.bookmark(last);
        if (last) reach(reached = last);
      } catch (error) {
        failure = error;
        failed.abort(error);
      } finally {
        for (const line of batch) budget.refund(line.bytes);
      }
    }
  };
  const kick = () => {
    storing ??= drain().finally(() => storing = undefined);
  };
  const settle = async () => {
    while (storing || (waiting.length > 0 && failure === undefined)) {
      kick();
      await storing;
    }
    if (failure !== undefined) throw failure;
  };

  const backstop = AbortSignal.timeout(settings.watchSeconds * 1000 + 10_000);
  const readSignal = AbortSignal.any([signal, backstop, failed.signal]);
  try {
    for await (const raw of byteLines(response.body!, { budget, signal: readSignal })) {
      if (initial) {
        if (startsWith(raw.data, BOOKMARK)) {
          budget.refund(raw.bytes);
          const bookmark = JSON.parse(decoder.decode(raw.data));
          if (bookmark?.object?.metadata?.annotations?.[INITIAL_EVENTS_END] !== "true") continue;
          const version = bookmark.object.metadata.resourceVersion;
          if (typeof version !== "string" || version === "") {
            throw new Error("the initial-events-end bookmark carries no resourceVersion");
          }
          await initial.end(version);
          reach(reached = version);
          initial = undefined;
          continue;
        }
        if (startsWith(raw.data, ERROR)) throw errorEvent(decoder.decode(raw.data));
        if (!startsWith(raw.data, ADDED)) {
          throw new Error(`a streaming list's initial state held a non-ADDED event`);
        }
        // Its bytes are the read buffer's: staged before the next line is read.
        const staging = initial.stage(raw.data);
        if (staging) await staging;
        budget.refund(raw.bytes);
        continue;
      }
      const line = { text: decoder.decode(raw.data), bytes: raw.bytes };
      if (line.text.startsWith(ERROR_PREFIX)) {
        budget.refund(line.bytes);
        await settle();
        throw errorEvent(line.text);
      }
      waiting.push(line);
      kick();
      if (waiting.length >= settings.maxBatch) await settle();
      if (failure !== undefined) throw failure;
    }
  } catch (error) {
    // The backstop ending a watch the server kept open too long is a normal end; nothing else is.
    if (error !== backstop.reason || signal.aborted) {
      await settle().catch(() => {});
      throw error;
    }
  }
  await settle();
  if (initial) throw new EndedEarly();
  if (!reached) throw new Error(`the watch of ${settings.path} ended with no resourceVersion`);
  return reached;
}

async function open(
  settings: Settings,
  path: string,
  purpose: "call" | "watch" = "watch",
): Promise<Response> {
  return await settings.fetch(settings.target(), {
    method: "GET",
    path,
    signal: settings.signal,
    purpose,
  });
}

/** How kube-apiserver begins an event of each type (see ./watch_event.ts), as text and as bytes. */
const BOOKMARK_PREFIX = '{"type":"BOOKMARK"';
const ERROR_PREFIX = '{"type":"ERROR"';

function isBookmark(line: string): boolean {
  return line.startsWith(BOOKMARK_PREFIX);
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const BOOKMARK = encoder.encode(BOOKMARK_PREFIX);
const ERROR = encoder.encode(ERROR_PREFIX);
const ADDED = encoder.encode('{"type":"ADDED"');

function versionOf(line: string): string | undefined {
  const version = JSON.parse(line)?.object?.metadata?.resourceVersion;
  return typeof version === "string" && version !== "" ? version : undefined;
}

function statusError(status: number, path: string, body: string): Error {
  return status === 410
    ? new Expired(`410 from GET ${path}: ${statusMessage(body)}`)
    : new InformerHttpError(status, path, body);
}

/** An ERROR event of a watch: 410 means the version expired. */
function errorEvent(line: string): Error {
  const status = JSON.parse(line)?.object;
  const message = `the watch failed: ${status?.code ?? "?"} ${status?.reason ?? ""} ${
    status?.message ?? ""
  }`.replace(/\s+/g, " ").trim();
  return status?.code === 410 ? new Expired(message) : new Error(message);
}

/** The message of a Status body, else the body's start. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body);
    if (typeof status?.message === "string") return status.message;
  } catch { /* not JSON */ }
  return body.slice(0, 200) || "(no body)";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
