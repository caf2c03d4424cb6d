import assert from "node:assert/strict";
import type { KubeFetch, KubeRequest, KubeTarget } from "../../lib/kube/client.ts";
import {
  backoffMs,
  InformerHttpError,
  type InformerOptions,
  type InformerStore,
  type ListMetadata,
  runInformer,
  StoreClosed,
} from "../../lib/kube/informer.ts";
import { promptly } from "./fakes.ts";

// runInformer against synthetic responses: a fake fetch answers each request in turn with a list
// page, a Status or a watch stream the test writes to as it goes, and a fake store records what
// it was given. No server, no PostgreSQL.

const encoder = new TextEncoder();
const TARGET: KubeTarget = { server: "https://kube.test" };
const PATH = "/api/v1/pods?labelSelector=app%3Dweb";
const JSON_HEADERS = { "content-type": "application/json" };

/**
 * A watch stream that stays open until the test ends it: events are sent as lines (a string as
 * is, anything else as JSON). It is pulled, so the test can tell when its reader has taken all.
 */
class Feed {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #readers: (() => void)[] = [];
  #cancelled: { reason: unknown } | undefined;

  constructor(...events: unknown[]) {
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        for (const reader of this.#readers.splice(0)) reader();
      },
      cancel: (reason) => {
        this.#cancelled = { reason };
      },
    }, { highWaterMark: 0 });
    this.send(...events);
  }

  send(...events: unknown[]): this {
    for (const event of events) {
      const line = typeof event === "string" ? event : JSON.stringify(event);
      this.#controller.enqueue(encoder.encode(line + "\n"));
    }
    return this;
  }

  /** The server ends the stream (its timeout). */
  end(): this {
    this.#controller.close();
    return this;
  }

  /** The connection breaks. */
  fail(error: Error): void {
    this.#controller.error(error);
  }

  /** Resolves once the reader has taken everything sent and waits for more. */
  taken(): Promise<void> {
    return promptly(new Promise((resolve) => this.#readers.push(resolve)));
  }

  /** Whether the reader cancelled the stream (closed the connection). */
  get cancelled(): { reason: unknown } | undefined {
    return this.#cancelled;
  }
}

/** An answer of the fake API: a response, a watch stream, or a fetch that throws. */
type Reply = Response | Feed | Error;

/** A fetch that answers with its replies in order, then with quiet streams that never end. */
class FakeApi {
  readonly requests: KubeRequest[] = [];
  /** The quiet streams it answered with once out of replies. */
  readonly quiet: Feed[] = [];
  #replies: Reply[];
  #watchers = new Set<() => void>();

  constructor(...replies: Reply[]) {
    this.#replies = replies;
  }

  readonly fetch: KubeFetch = (target, request) => {
    assert.equal(target, TARGET);
    this.requests.push(request);
    for (const watcher of this.#watchers) watcher();
    // Like fetch, a request whose signal is already aborted gets no response.
    if (request.signal?.aborted) return Promise.reject(request.signal.reason);
    let reply = this.#replies.shift();
    if (!reply) this.quiet.push(reply = new Feed());
    if (reply instanceof Error) return Promise.reject(reply);
    if (reply instanceof Feed) {
      return Promise.resolve(new Response(reply.body, { status: 200, headers: JSON_HEADERS }));
    }
    return Promise.resolve(reply);
  };

  /** Resolves once `count` requests have been made. */
  until(count: number): Promise<void> {
    return promptly(
      new Promise((resolve) => {
        const check = () => {
          if (this.requests.length < count) return;
          this.#watchers.delete(check);
          resolve();
        };
        this.#watchers.add(check);
        check();
      }),
    );
  }

  /** Each request, in short: "streaming list", "page [continue]" or "watch from <version>". */
  get summary(): string[] {
    return this.requests.map((request) => {
      const params = query(request);
      if (params.sendInitialEvents) return "streaming list";
      if (params.watch) return `watch from ${params.resourceVersion}`;
      return params.continue ? `page ${params.continue}` : "page";
    });
  }
}

/** The query parameters of a request's path. */
function query(request: KubeRequest): Record<string, string> {
  return Object.fromEntries(new URL(request.path, TARGET.server).searchParams);
}

type Method = keyof InformerStore;
type StoreCall = [Method, ...unknown[]];

/**
 * A store in memory that records each call (events as "TYPE name version", list pages as the
 * names of their items), with hooks that make a method throw or wait.
 */
class FakeStore implements InformerStore {
  readonly calls: StoreCall[] = [];
  /** Runs when a method is called, after the call is recorded: may throw, or make it wait. */
  readonly hooks: Partial<Record<Method, () => void | Promise<void>>> = {};
  #watchers = new Set<() => void>();

  async beginReplace(): Promise<void> {
    await this.#call(["beginReplace"]);
  }
  stageEvent(event: Uint8Array): Promise<void> | undefined {
    // Decoded at once: the bytes are the informer's read buffer, valid only until this returns.
    this.#record(["stageEvent", summary(decoder.decode(event))]);
    const waiting = this.hooks.stageEvent?.();
    return waiting instanceof Promise ? waiting : undefined;
  }
  async stageList(page: string): Promise<ListMetadata> {
    const list = JSON.parse(page);
    await this.#call(["stageList", list.items.map((item: Pod) => item.metadata.name)]);
    return list.metadata;
  }
  async endReplace(resourceVersion: string): Promise<void> {
    await this.#call(["endReplace", resourceVersion]);
  }
  async abortReplace(): Promise<void> {
    await this.#call(["abortReplace"]);
  }
  async apply(events: string[], resourceVersion: string): Promise<void> {
    await this.#call(["apply", events.map(summary), resourceVersion]);
  }
  async bookmark(resourceVersion: string): Promise<void> {
    await this.#call(["bookmark", resourceVersion]);
  }
  async resumed(): Promise<void> {
    await this.#call(["resumed"]);
  }
  async failed(error: string, retryMs: number, expired: boolean): Promise<void> {
    await this.#call(["failed", error, retryMs, expired]);
  }

  async #call(call: StoreCall): Promise<void> {
    this.#record(call);
    await this.hooks[call[0]]?.();
  }

  #record(call: StoreCall): void {
    this.calls.push(call);
    for (const watcher of this.#watchers) watcher();
  }

  /** The calls of `method`, without its name. */
  of(method: Method): unknown[][] {
    return this.calls.filter((call) => call[0] === method).map((call) => call.slice(1));
  }

  /** Resolves once `method` has been called `count` times. */
  until(method: Method, count = 1): Promise<void> {
    return promptly(
      new Promise((resolve) => {
        const check = () => {
          if (this.of(method).length < count) return;
          this.#watchers.delete(check);
          resolve();
        };
        this.#watchers.add(check);
        check();
      }),
    );
  }

  /** The next call of `method` waits until the function returned is called. */
  hold(method: Method): () => void {
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    const previous = this.hooks[method];
    this.hooks[method] = () => {
      this.hooks[method] = previous;
      return released;
    };
    return release;
  }
}

interface Pod {
  kind: string;
  apiVersion: string;
  metadata: { name: string; namespace: string; resourceVersion: string };
}

function pod(name: string, resourceVersion = "1"): Pod {
  return { kind: "Pod", apiVersion: "v1", metadata: { name, namespace: "web", resourceVersion } };
}

function event(type: "ADDED" | "MODIFIED" | "DELETED", name: string, resourceVersion: string) {
  return { type, object: pod(name, resourceVersion) };
}

const added = (name: string, resourceVersion: string) => event("ADDED", name, resourceVersion);

/** A bookmark; `initialEnd`: the one that ends a streaming list's initial state. */
function bookmark(resourceVersion: string, { initialEnd = false } = {}) {
  const annotations = initialEnd ? { "k8s.io/initial-events-end": "true" } : undefined;
  return {
    type: "BOOKMARK",
    object: { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion, annotations } },
  };
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  403: "Forbidden",
  410: "Expired",
  422: "Invalid",
  500: "InternalError",
  503: "ServiceUnavailable",
};

function statusObject(code: number, message: string) {
  return {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message,
    reason: REASONS[code],
    code,
  };
}

/** An ERROR watch event carrying a Status. */
function errorEvent(code: number, message: string) {
  return { type: "ERROR", object: statusObject(code, message) };
}

/** A refusal, with its Status. */
function status(code: number, message: string): Response {
  return new Response(JSON.stringify(statusObject(code, message)), {
    status: code,
    headers: JSON_HEADERS,
  });
}

/** One page of a paginated list of pods. */
function page(names: string[], metadata: ListMetadata): Response {
  const list = { kind: "PodList", apiVersion: "v1", metadata, items: names.map((n) => pod(n)) };
  return new Response(JSON.stringify(list), { status: 200, headers: JSON_HEADERS });
}

const decoder = new TextDecoder();

/** An event as the fake store records it. */
function summary(text: string): string {
  const { type, object } = JSON.parse(text);
  return `${type} ${object.metadata.name} ${object.metadata.resourceVersion}`;
}

/**
 * Starts an informer on `PATH` with a quick, jitter-free backoff (1, 2, 4, 4… ms), recording
 * what `onError` is told.
 */
function start(api: FakeApi, store: FakeStore, options: Partial<InformerOptions> = {}) {
  const abort = new AbortController();
  const errors: { error: unknown; retryMs: number }[] = [];
  let targets = 0;
  const done = runInformer({
    fetch: api.fetch,
    target: () => {
      targets++;
      return TARGET;
    },
    path: PATH,
    store,
    signal: abort.signal,
    backoff: { initialMs: 1, maxMs: 4 },
    random: () => 0.5,
    onError: (error, retryMs) => errors.push({ error, retryMs }),
    ...options,
  });
  return {
    done,
    abort,
    errors,
    get targets() {
      return targets;
    },
    /** Aborts the informer; it must settle at once. */
    async stop() {
      abort.abort();
      await promptly(done);
    },
  };
}

// 1. Streaming lists.

Deno.test("runInformer: a streaming list stages its initial events one by one, ends at the initial-events-end bookmark, and goes on as a watch", async () => {
  const list = new Feed(
    added("a", "1"),
    added("b", "2"),
    bookmark("2"), // a bookmark of progress, not the end: skipped
    added("c", "3"),
    added("d", "4"),
    added("e", "5"),
    bookmark("10", { initialEnd: true }),
  );
  const api = new FakeApi(list);
  const store = new FakeStore();
  const informer = start(api, store);
  await store.until("endReplace");
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["stageEvent", "ADDED b 2"],
    ["stageEvent", "ADDED c 3"],
    ["stageEvent", "ADDED d 4"],
    ["stageEvent", "ADDED e 5"],
    ["endReplace", "10"],
  ]);

  // Changes on the same stream go to apply, in order, with the version of the batch's last event;
  // a bookmark alone is a bookmark.
  list.send(event("MODIFIED", "a", "11"));
  await store.until("apply");
  list.send(bookmark("12"));
  await store.until("bookmark");
  // While the store is busy with a batch, the next one gathers.
  const release = store.hold("apply");
  list.send(event("DELETED", "b", "13"));
  await store.until("apply", 2);
  list.send(event("MODIFIED", "c", "14"), added("f", "15"));
  await list.taken();
  release();
  await store.until("apply", 3);
  assert.deepEqual(store.calls.slice(7), [
    ["apply", ["MODIFIED a 11"], "11"],
    ["bookmark", "12"],
    ["apply", ["DELETED b 13"], "13"],
    ["apply", ["MODIFIED c 14", "ADDED f 15"], "15"],
  ]);

  // The server ends the stream: the next watch starts where it ended.
  list.end();
  await api.until(2);
  assert.deepEqual(query(api.requests[0]), {
    labelSelector: "app=web",
    watch: "1",
    sendInitialEvents: "true",
    resourceVersionMatch: "NotOlderThan",
    allowWatchBookmarks: "true",
    timeoutSeconds: "300",
  });
  assert.deepEqual(query(api.requests[1]), {
    labelSelector: "app=web",
    watch: "1",
    resourceVersion: "15",
    allowWatchBookmarks: "true",
    timeoutSeconds: "300",
  });
  assert.deepEqual(api.requests.map((r) => r.purpose), ["watch", "watch"]);
  await informer.stop();
  assert.equal(store.of("failed").length, 0);
  assert.deepEqual(informer.errors, []);
  // The target is asked for anew before each request.
  assert.equal(informer.targets, 2);
});

Deno.test("runInformer: an empty streaming list replaces the store with nothing", async () => {
  const api = new FakeApi(new Feed(bookmark("7", { initialEnd: true })).end());
  const store = new FakeStore();
  const informer = start(api, store);
  await api.until(2);
  await informer.stop();
  assert.deepEqual(store.calls, [["beginReplace"], ["endReplace", "7"]]);
  assert.deepEqual(api.summary, ["streaming list", "watch from 7"]);
});

Deno.test("runInformer: batches hold at most maxBatch events, a trailing bookmark giving the batch its version", async () => {
  const watch = new Feed();
  const api = new FakeApi(watch);
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "1", maxBatch: 2 });
  const release = store.hold("apply");
  watch.send(event("MODIFIED", "a", "2"));
  await store.until("apply");
  watch.send(
    event("MODIFIED", "b", "3"),
    event("MODIFIED", "c", "4"),
    event("DELETED", "d", "5"),
    added("e", "6"),
    added("f", "7"),
    bookmark("9"),
  );
  await new Promise((resolve) => setTimeout(resolve, 5));
  release();
  watch.end();
  await api.until(2);
  await informer.stop();
  const applied = store.of("apply") as [string[], string][];
  for (const [events] of applied) assert.ok(events.length <= 2, `a batch of ${events.length}`);
  assert.deepEqual(applied.flatMap(([events]) => events), [
    "MODIFIED a 2",
    "MODIFIED b 3",
    "MODIFIED c 4",
    "DELETED d 5",
    "ADDED e 6",
    "ADDED f 7",
  ]);
  // Each batch ends at its last line: an event, or the bookmark after it (then not an event).
  const last = store.calls.at(-1)!;
  assert.ok(
    last[0] === "bookmark" ? last[1] === "9" : last[0] === "apply" && last[2] === "9",
    JSON.stringify(last),
  );
  for (const [events, version] of applied.slice(0, -1)) {
    assert.equal(version, events.at(-1)!.split(" ")[2]);
  }
  assert.deepEqual(api.summary, ["watch from 1", "watch from 9"]);
});

// 2. Paginated lists.

for (const code of [400, 422]) {
  Deno.test(`runInformer: a server answering ${code} to a streaming list gets paginated lists from then on`, async () => {
    const api = new FakeApi(
      status(code, "sendInitialEvents is not supported"),
      page(["a", "b"], { resourceVersion: "100", continue: "token-1" }),
      page(["c"], { resourceVersion: "101" }),
      status(410, "too old resource version: 100 (150)"),
      page(["a"], { resourceVersion: "200" }),
    );
    const store = new FakeStore();
    const informer = start(api, store, { pageSize: 2 });
    await api.until(6);
    await informer.stop();
    assert.deepEqual(api.summary, [
      "streaming list",
      "page",
      "page token-1",
      "watch from 100",
      // The relist is paginated too: streaming lists are not tried again.
      "page",
      "watch from 200",
    ]);
    assert.deepEqual(api.requests.map((r) => r.purpose), [
      "watch",
      "call",
      "call",
      "watch",
      "call",
      "watch",
    ]);
    assert.deepEqual(query(api.requests[1]), { labelSelector: "app=web", limit: "2" });
    assert.deepEqual(query(api.requests[2]), {
      labelSelector: "app=web",
      limit: "2",
      continue: "token-1",
    });
    // The watch starts from the version of the list's first page.
    assert.deepEqual(query(api.requests[3]), {
      labelSelector: "app=web",
      watch: "1",
      resourceVersion: "100",
      allowWatchBookmarks: "true",
      timeoutSeconds: "300",
    });
    assert.deepEqual(store.calls, [
      ["beginReplace"],
      ["stageList", ["a", "b"]],
      ["stageList", ["c"]],
      ["endReplace", "100"],
      [
        "failed",
        `410 from GET ${api.requests[3].path}: too old resource version: 100 (150)`,
        0,
        true,
      ],
      ["beginReplace"],
      ["stageList", ["a"]],
      ["endReplace", "200"],
    ]);
    // Falling back is no failure.
    assert.equal(informer.errors.length, 1);
    assert.equal(informer.targets, 6);
  });
}

Deno.test("runInformer: with streamingLists false, lists in pages at once", async () => {
  const api = new FakeApi(page(["a"], { resourceVersion: "5" }));
  const store = new FakeStore();
  const informer = start(api, store, { streamingLists: false, watchSeconds: 7 });
  await api.until(2);
  await informer.stop();
  assert.deepEqual(api.summary, ["page", "watch from 5"]);
  assert.deepEqual(query(api.requests[0]), { labelSelector: "app=web", limit: "500" });
  assert.equal(query(api.requests[1]).timeoutSeconds, "7");
  assert.deepEqual(store.calls, [["beginReplace"], ["stageList", ["a"]], ["endReplace", "5"]]);
});

Deno.test("runInformer: any other refusal of a streaming list is a failure, and streaming lists are tried again", async () => {
  const api = new FakeApi(
    status(403, 'pods is forbidden: User "bridge" cannot watch pods'),
    new Feed(bookmark("3", { initialEnd: true })).end(),
  );
  const store = new FakeStore();
  const informer = start(api, store);
  await api.until(3);
  await informer.stop();
  assert.deepEqual(api.summary, ["streaming list", "streaming list", "watch from 3"]);
  assert.deepEqual(store.calls, [
    [
      "failed",
      `403 from GET ${api.requests[0].path}: pods is forbidden: User "bridge" cannot watch pods`,
      1,
      false,
    ],
    ["beginReplace"],
    ["endReplace", "3"],
  ]);
  const [{ error, retryMs }] = informer.errors;
  assert.ok(error instanceof InformerHttpError);
  assert.equal(error.status, 403);
  assert.equal(error.path, api.requests[0].path);
  assert.equal(retryMs, 1);
});

// 3, 4. Expired versions.

Deno.test("runInformer: an ERROR event with code 410 lists again at once", async () => {
  const api = new FakeApi(
    page(["a"], { resourceVersion: "100" }),
    new Feed(
      event("MODIFIED", "a", "101"),
      errorEvent(410, "too old resource version: 101 (180)"),
      event("MODIFIED", "a", "999"), // after the error: never read
    ),
    page(["a", "b"], { resourceVersion: "200" }),
  );
  const store = new FakeStore();
  const informer = start(api, store, { streamingLists: false });
  await api.until(4);
  await informer.stop();
  assert.deepEqual(api.summary, ["page", "watch from 100", "page", "watch from 200"]);
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageList", ["a"]],
    ["endReplace", "100"],
    // The events before the error are stored first.
    ["apply", ["MODIFIED a 101"], "101"],
    ["failed", "the watch failed: 410 Expired too old resource version: 101 (180)", 0, true],
    ["beginReplace"],
    ["stageList", ["a", "b"]],
    ["endReplace", "200"],
  ]);
  assert.equal(informer.errors[0].retryMs, 0);
});

Deno.test("runInformer: an HTTP 410 to a watch lists again at once", async () => {
  const api = new FakeApi(
    new Feed(added("a", "1"), bookmark("10", { initialEnd: true })).end(),
    status(410, "too old resource version: 10 (20)"),
    new Feed(added("a", "1"), added("b", "21"), bookmark("25", { initialEnd: true })),
  );
  const store = new FakeStore();
  const informer = start(api, store);
  await store.until("endReplace", 2);
  await informer.stop();
  assert.deepEqual(api.summary, ["streaming list", "watch from 10", "streaming list"]);
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["endReplace", "10"],
    ["failed", `410 from GET ${api.requests[1].path}: too old resource version: 10 (20)`, 0, true],
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["stageEvent", "ADDED b 21"],
    ["endReplace", "25"],
  ]);
});

Deno.test("runInformer: only the first expiry in a row is retried at once; the next waits", async () => {
  const api = new FakeApi(
    new Feed(errorEvent(410, "too old resource version: 5 (80)")),
    page(["a"], { resourceVersion: "90", continue: "token-1" }),
    status(410, "The provided continue parameter is too old"),
    page(["a"], { resourceVersion: "95" }),
  );
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "5", streamingLists: false });
  await api.until(5);
  await informer.stop();
  assert.deepEqual(api.summary, ["watch from 5", "page", "page token-1", "page", "watch from 95"]);
  assert.deepEqual(store.of("failed").map(([, retryMs, expired]) => [retryMs, expired]), [
    [0, true],
    [2, true], // the second failure in a row
  ]);
  assert.deepEqual(store.of("endReplace"), [["95"]]);
});

// 5. Other failures.

Deno.test("runInformer: other failures back off, growing, and resume from the last version without a list", async () => {
  const watch = new Feed(event("MODIFIED", "a", "6"), event("MODIFIED", "b", "7"));
  const api = new FakeApi(
    status(500, "etcdserver: request timed out"),
    new TypeError("connection refused"),
    watch,
    status(503, "the server is shutting down"),
  );
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "5" });
  await store.until("apply", 2);
  watch.fail(new Error("connection reset"));
  await api.until(5);
  await informer.stop();
  assert.deepEqual(api.summary, [
    "watch from 5",
    "watch from 5",
    "watch from 5",
    // The version the store reached before the stream broke.
    "watch from 7",
    "watch from 7",
  ]);
  assert.deepEqual(store.calls, [
    ["failed", `500 from GET ${api.requests[0].path}: etcdserver: request timed out`, 1, false],
    ["failed", "connection refused", 2, false],
    ["resumed"],
    ["apply", ["MODIFIED a 6"], "6"],
    ["apply", ["MODIFIED b 7"], "7"],
    ["failed", "connection reset", 4, false],
    ["failed", `503 from GET ${api.requests[3].path}: the server is shutting down`, 4, false],
    ["resumed"],
  ]);
  assert.deepEqual(informer.errors.map((e) => e.retryMs), [1, 2, 4, 4]);
  assert.ok(informer.errors[0].error instanceof InformerHttpError);
  assert.ok(informer.errors[1].error instanceof TypeError);
});

Deno.test("runInformer: a streaming list's stream that breaks after the list resumes as a watch, without listing again", async () => {
  const list = new Feed(added("a", "1"), bookmark("10", { initialEnd: true }));
  const api = new FakeApi(list);
  const store = new FakeStore();
  const informer = start(api, store);
  await store.until("endReplace");
  list.send(event("MODIFIED", "a", "11"));
  await store.until("apply");
  list.fail(new Error("connection reset"));
  await api.until(2);
  await informer.stop();
  assert.deepEqual(api.summary, ["streaming list", "watch from 11"]);
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["endReplace", "10"],
    ["apply", ["MODIFIED a 11"], "11"],
    ["failed", "connection reset", 1, false],
    ["resumed"],
  ]);
});

Deno.test("runInformer: a line that is not JSON fails the watch, not the process", async () => {
  const api = new FakeApi(new Feed("<html>502 Bad Gateway</html>"));
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "5" });
  await api.until(2);
  await informer.stop();
  assert.deepEqual(api.summary, ["watch from 5", "watch from 5"]);
  assert.deepEqual(store.calls.map(([method]) => method), ["failed", "resumed"]);
  const [[error, retryMs, expired]] = store.of("failed");
  assert.match(error as string, /JSON/);
  assert.deepEqual([retryMs, expired], [1, false]);
});

Deno.test("backoffMs: doubles from initialMs, up to maxMs, with ±50% jitter", () => {
  const backoff = { initialMs: 100, maxMs: 1000 };
  const none = () => 0.5;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 30].map((failures) => backoffMs(failures, backoff, none)),
    [100, 100, 200, 400, 800, 1000, 1000, 1000],
  );
  // Jitter: from half to one and a half times the wait, never over maxMs.
  assert.equal(backoffMs(1, backoff, () => 0), 50);
  assert.equal(backoffMs(1, backoff, () => 0.999999), 150);
  assert.equal(backoffMs(3, backoff, () => 0.25), 300);
  assert.equal(backoffMs(10, backoff, () => 0), 500);
  assert.equal(backoffMs(10, backoff, () => 0.999999), 1000);
  assert.equal(backoffMs(4, backoff, () => 0.9), 1000);
  // Math.random by default.
  for (let i = 0; i < 200; i++) {
    const wait = backoffMs(2, backoff);
    assert.ok(wait >= 100 && wait <= 300, `${wait}`);
  }
});

// 6. Stopping.

for (
  const [method, expected] of [
    ["beginReplace", ["beginReplace"]],
    ["stageEvent", ["beginReplace", "stageEvent", "abortReplace"]],
    ["endReplace", ["beginReplace", "stageEvent", "endReplace", "abortReplace"]],
    ["apply", ["beginReplace", "stageEvent", "endReplace", "apply"]],
    ["bookmark", ["beginReplace", "stageEvent", "endReplace", "apply", "bookmark"]],
  ] as [Method, Method[]][]
) {
  Deno.test(`runInformer: a store closed in ${method} stops the informer at once, closing its stream`, async () => {
    const list = new Feed(
      added("a", "1"),
      bookmark("10", { initialEnd: true }),
      event("MODIFIED", "a", "11"),
      bookmark("12"),
    );
    const api = new FakeApi(list);
    const store = new FakeStore();
    store.hooks[method] = () => {
      throw new StoreClosed("the table is gone");
    };
    const informer = start(api, store);
    // The stream stays open: the informer stops by itself, and does not report a failure.
    await promptly(informer.done);
    assert.deepEqual(store.calls.map(([m]) => m), expected);
    assert.equal(api.requests.length, 1);
    assert.deepEqual(informer.errors, []);
    assert.ok(list.cancelled, "the stream was not closed");
  });
}

Deno.test("runInformer: a store closed when told of a failure stops the informer", async () => {
  const api = new FakeApi(status(500, "etcdserver: leader changed"));
  const store = new FakeStore();
  store.hooks.failed = () => {
    throw new StoreClosed("another worker owns the table");
  };
  const informer = start(api, store, { resourceVersion: "5" });
  await promptly(informer.done);
  assert.equal(api.requests.length, 1);
  assert.deepEqual(store.calls.map(([m]) => m), ["failed"]);
});

Deno.test("runInformer: other store failures are retried", async () => {
  const watch = new Feed(event("MODIFIED", "a", "6"));
  const api = new FakeApi(watch);
  const store = new FakeStore();
  store.hooks.apply = () => {
    store.hooks.apply = undefined;
    throw new Error("deadlock detected");
  };
  const informer = start(api, store, { resourceVersion: "5" });
  await api.until(2);
  await informer.stop();
  assert.deepEqual(api.summary, ["watch from 5", "watch from 5"]);
  assert.deepEqual(store.calls, [
    ["apply", ["MODIFIED a 6"], "6"],
    ["failed", "deadlock detected", 1, false],
    ["resumed"],
  ]);
  // The stream the failed batch came from was closed, though the server kept it open.
  assert.ok(watch.cancelled, "the stream was not closed");
});

Deno.test("runInformer: an abort stops a quiet watch at once, closing its stream", async () => {
  const api = new FakeApi();
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "5" });
  await api.until(1);
  await informer.stop();
  assert.ok(api.quiet[0].cancelled, "the stream was not closed");
  // Stopping is no failure.
  assert.deepEqual(store.calls, []);
  assert.deepEqual(informer.errors, []);
});

Deno.test("runInformer: an abort stops the wait after a failure at once", async () => {
  const api = new FakeApi(status(500, "etcdserver: request timed out"));
  const store = new FakeStore();
  const informer = start(api, store, {
    resourceVersion: "5",
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  await store.until("failed");
  await informer.stop();
  assert.equal(api.requests.length, 1);
  assert.deepEqual(store.of("failed").map(([, retryMs]) => retryMs), [60_000]);
});

Deno.test("runInformer: an abort during a list stops it, and the store keeps what it had", async () => {
  // The second page never comes.
  const api = new FakeApi(page(["a"], { resourceVersion: "5", continue: "token-1" }));
  const store = new FakeStore();
  const informer = start(api, store, { streamingLists: false });
  await api.until(2);
  await informer.stop();
  assert.deepEqual(store.calls, [["beginReplace"], ["stageList", ["a"]], ["abortReplace"]]);
});

Deno.test("runInformer: an informer aborted before it starts makes no request", async () => {
  const api = new FakeApi();
  const store = new FakeStore();
  const abort = new AbortController();
  abort.abort();
  await promptly(runInformer({
    fetch: api.fetch,
    target: () => TARGET,
    path: PATH,
    store,
    signal: abort.signal,
  }));
  assert.equal(api.requests.length, 0);
  assert.deepEqual(store.calls, []);
});

// 7. Lists that fail half way.

Deno.test("runInformer: a paginated list failing half way is aborted, never ended, and listed again from its start", async () => {
  const api = new FakeApi(
    page(["a", "b"], { resourceVersion: "100", continue: "token-1" }),
    status(500, "etcdserver: request timed out"),
    page(["c"], { resourceVersion: "200" }),
  );
  const store = new FakeStore();
  const informer = start(api, store, { streamingLists: false, pageSize: 2 });
  await api.until(4);
  await informer.stop();
  assert.deepEqual(api.summary, ["page", "page token-1", "page", "watch from 200"]);
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageList", ["a", "b"]],
    ["abortReplace"],
    ["failed", `500 from GET ${api.requests[1].path}: etcdserver: request timed out`, 1, false],
    ["beginReplace"],
    ["stageList", ["c"]],
    ["endReplace", "200"],
  ]);
});

Deno.test("runInformer: a list page the store refuses aborts the list", async () => {
  const api = new FakeApi(
    page(["a"], { resourceVersion: "100", continue: "token-1" }),
    page(["b"], { resourceVersion: "100" }),
    page(["a", "b"], { resourceVersion: "300" }),
  );
  const store = new FakeStore();
  let pages = 0;
  store.hooks.stageList = () => {
    if (++pages === 2) throw new Error("value too long for type character varying(253)");
  };
  const informer = start(api, store, { streamingLists: false });
  await api.until(4);
  await informer.stop();
  assert.deepEqual(store.calls.map(([method]) => method), [
    "beginReplace",
    "stageList",
    "stageList",
    "abortReplace",
    "failed",
    "beginReplace",
    "stageList",
    "endReplace",
  ]);
  assert.deepEqual(store.of("endReplace"), [["300"]]);
  assert.deepEqual(api.summary, ["page", "page token-1", "page", "watch from 300"]);
});

Deno.test("runInformer: a streaming list reads nothing more while the store holds it back", async () => {
  const feed = new Feed(added("a", "1"), added("b", "2"));
  const api = new FakeApi(feed);
  const store = new FakeStore();
  const release = store.hold("stageEvent");
  const informer = start(api, store);
  await store.until("stageEvent");
  // The second object came with the first, but waits until the store lets the informer go on.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(store.of("stageEvent"), [["ADDED a 1"]]);
  release();
  await store.until("stageEvent", 2);
  feed.send(bookmark("9", { initialEnd: true }));
  await store.until("endReplace");
  await informer.stop();
  assert.deepEqual(store.of("stageEvent"), [["ADDED a 1"], ["ADDED b 2"]]);
  assert.deepEqual(store.of("endReplace"), [["9"]]);
});

Deno.test("runInformer: a streaming list whose stream ends before its initial state is complete is aborted, and pages follow", async () => {
  const api = new FakeApi(
    new Feed(added("a", "1"), added("b", "2")).end(),
    page(["a", "b"], { resourceVersion: "20" }),
  );
  const store = new FakeStore();
  const informer = start(api, store);
  await store.until("endReplace");
  await informer.stop();
  assert.deepEqual(api.summary, ["streaming list", "page", "watch from 20"]);
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["stageEvent", "ADDED b 2"],
    ["abortReplace"],
    ["beginReplace"],
    ["stageList", ["a", "b"]],
    ["endReplace", "20"],
  ]);
});

Deno.test("runInformer: an ERROR event in a streaming list's initial state aborts the list", async () => {
  const api = new FakeApi(
    new Feed(added("a", "1"), errorEvent(500, "etcdserver: request timed out")),
    new Feed(bookmark("30", { initialEnd: true })),
  );
  const store = new FakeStore();
  const informer = start(api, store);
  await store.until("endReplace");
  await informer.stop();
  assert.deepEqual(store.calls, [
    ["beginReplace"],
    ["stageEvent", "ADDED a 1"],
    ["abortReplace"],
    ["failed", "the watch failed: 500 InternalError etcdserver: request timed out", 1, false],
    ["beginReplace"],
    ["endReplace", "30"],
  ]);
});

// 8. Resuming.

Deno.test("runInformer: with a resourceVersion, watches from it without listing", async () => {
  const api = new FakeApi(new Feed(event("MODIFIED", "a", "43"), event("DELETED", "b", "44")));
  const store = new FakeStore();
  const informer = start(api, store, { resourceVersion: "42", watchSeconds: 5 });
  await store.until("apply", 2);
  await informer.stop();
  assert.deepEqual(query(api.requests[0]), {
    labelSelector: "app=web",
    watch: "1",
    resourceVersion: "42",
    allowWatchBookmarks: "true",
    timeoutSeconds: "5",
  });
  assert.equal(api.requests[0].purpose, "watch");
  assert.equal(api.requests.length, 1);
  assert.deepEqual(store.of("apply").flatMap(([events]) => events as string[]), [
    "MODIFIED a 43",
    "DELETED b 44",
  ]);
  assert.equal(store.of("beginReplace").length, 0);
});
