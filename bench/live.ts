/**
 * Case 7: live tables (`omni_kube.live_table()`), against the test bed's kube-apiserver.
 *
 * 1. First sync: from calling `live_table()` to `await_live()` returning, for a namespace of
 *    `liveSyncSize` ConfigMaps, against the direct client listing the same namespace in pages of
 *    500 (fetch and JSON.parse of each page); and the worker's peak RSS growth during the sync
 *    against the size of one page as the server sends it. `liveSyncWarmups` syncs come first.
 * 2. Lag at a steady rate: ConfigMaps of a smaller live table are patched from this process at
 *    `liveRate` per second. Each change's lag is from the PATCH's response arriving here to the
 *    commit of the row that holds it: a trigger of ours on the table notifies the change's
 *    resourceVersion, which PostgreSQL delivers at commit, to a LISTEN of this process. Directly:
 *    from the same response to the change's event arriving, parsed, on a watch of this process.
 * 3. Churn: `liveChurnLoops` patch loops without pacing; events applied per second, their lag
 *    (and a direct watch's), and the CPU that kube-apiserver, etcd, PostgreSQL, the worker and
 *    this process used.
 * 4. Churn under the API server: the same ConfigMaps written straight into etcd, where
 *    kube-apiserver stores them, through etcd's JSON gateway, at `liveEtcdRate` changes per second
 *    (each write sent on time, `liveEtcdBatch` objects per etcd transaction). The API server serves
 *    them on its watches as it serves its own writes, at a fraction of a PATCH's cost: this shows
 *    the live table at rates the API server's write path cannot make on a small machine. Lag is
 *    from etcd's answer (whose revision is the resourceVersion).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { withQuery } from "../lib/kube/watch.ts";
import { lines } from "../lib/kube/ndjson.ts";
import { logTail } from "../testbed/process.ts";
import {
  type Bed,
  byProcess,
  type CpuByProcess,
  cpuNow,
  cpuSpent,
  type KubePids,
  kubePids,
  measuredPids,
  medianCpu,
  readMemory,
  resetPeak,
  scrapeMetrics,
  type Sql,
} from "./bed.ts";
import {
  BENCH_SELECTOR,
  configMapName,
  createConfigMaps,
  createNamespace,
  type Sizes,
} from "./cases.ts";
import { closedLoop, median, nowEpochMs, percentile } from "./stats.ts";

/** Objects per page of the direct list (the informer's page size too). */
export const LIVE_PAGE_SIZE = 500;
/** The channel our trigger notifies on. */
const CHANNEL = "bench_live";
/** The annotation of the bookmark that ends a streaming list's initial state. */
const INITIAL_EVENTS_END = "k8s.io/initial-events-end";
/** How long a sync may take before the case fails, in seconds. */
const SYNC_TIMEOUT_SECONDS = 120;
/** How long, after the last patch, changes may take to reach the table before they count as lost. */
const DRAIN_MS = 30_000;

/** Writes into etcd under way at once, at most, in the paced churn (each holds a connection). */
const MAX_WRITES_IN_FLIGHT = 64;

/** Lag percentiles, in milliseconds. */
export interface LagFigures {
  p50: number;
  p99: number;
  max: number;
}

/** The worker's transactions writing watch events into live tables, from its metrics. */
export interface LiveWrites {
  transactions: number;
  /** Mean time of one, in milliseconds. */
  meanMs: number;
  /** Events per transaction: the changes seen committed (by our trigger) over the transactions. */
  eventsPerTransaction: number;
}

/** Case 7, part 1: the first sync of a namespace. */
export interface LiveSyncResult {
  objects: number;
  /** Median over the repeats: live_table() called to await_live() returned, in milliseconds. */
  bridgeMs: number;
  /** Median over as many direct paginated lists. */
  directMs: number;
  ratio: number;
  /** Every sync, and every direct list, in milliseconds. */
  bridgeRuns: number[];
  directRuns: number[];
  /** Syncs made before the timed ones. */
  warmups: number;
  /** Pages of the direct list, and the bytes of its first (full) page as the server sent it. */
  pages: number;
  pageBytes: number;
  /**
   * A streaming list of the namespace through the worker's HTTP client: `complete` (the informer
   * syncs from one), `refused` or `ended early` (it lists in pages instead).
   */
  streamingList: "complete" | "refused" | "ended early";
  /**
   * The same objects as the informer gets them, by the direct client: a streaming list read to
   * its initial-events-end bookmark, each event parsed (median, every run, and the ratio).
   */
  directStreamMs: number;
  directStreamRuns: number[];
  streamRatio: number;
  /** The worker's RSS before a sync and its peak during it (the sync that grew it most). */
  workerRssBefore: number;
  workerPeak: number;
  /** workerPeak - workerRssBefore, and that over pageBytes. */
  workerPeakGrowth: number;
  peakGrowthOverPage: number;
  /** Whether the peak could be reset before each sync (else it is the process's lifetime peak). */
  peakReset: boolean;
  /** CPU ms of each process per sync through the worker (medians over the syncs). */
  cpuPerSync: CpuByProcess;
  /** The same per direct paged list (the bench process is the direct client). */
  cpuPerDirectList: CpuByProcess;
}

/** Case 7, part 2: patches at a steady rate. */
export interface LiveLagResult {
  objects: number;
  targetRate: number;
  /** Patches made, and per second from the first sent to the last answered. */
  changes: number;
  changesPerSecond: number;
  lag: LagFigures;
  /** Changes whose row was not seen committed within the drain time. */
  missing: number;
  /** The same changes as events of a direct watch: from the PATCH's answer to the event parsed. */
  directLag: LagFigures;
  directMissing: number;
  writes: LiveWrites;
}

/** Case 7, parts 3 and 4: unpaced loops of changes. */
export interface LiveChurnResult {
  /** How the changes were made: PATCHes through the API, or writes straight into etcd. */
  through: "api" | "etcd";
  /** Part 3: loops making changes back to back. */
  loops?: number;
  /** Part 4: changes per second asked for, and objects per etcd transaction. */
  targetRate?: number;
  batch?: number;
  /** Changes answered, and per second while the loops ran. */
  changes: number;
  changesPerSecond: number;
  /** Changes seen committed in the table, per second from the first patch to the last seen. */
  events: number;
  eventsPerSecond: number;
  /** That window, in seconds. */
  seconds: number;
  lag: LagFigures;
  missing: number;
  /** The same changes on a direct watch. */
  directLag: LagFigures;
  directMissing: number;
  writes: LiveWrites;
  /** CPU seconds per second of wall time, over the same window. */
  cpu: CpuByProcess;
  /** Cores of this machine, which every process shares. */
  cores: number;
}

/** Case 7. */
export interface LiveResult {
  sync: LiveSyncResult;
  lag: LiveLagResult;
  churn: LiveChurnResult;
  etcdChurn: LiveChurnResult;
  /** Rows of `omni_kube.live_tables` at the end, for errors and relists. */
  tables: {
    table: string;
    state: string;
    objects: number;
    relists: number;
    lastError: string | null;
  }[];
}

/** Matches the answers to changes with the commits of their rows, whichever arrives first. */
class LagRecorder {
  /** {@linkcode changeKey} -> when its change (PATCH or etcd write) was answered, not yet committed. */
  readonly patched = new Map<string, number>();
  /** {@linkcode changeKey} -> when its commit was notified, not yet answered. */
  readonly #notified = new Map<string, number>();
  readonly lags: number[] = [];
  lastSeen = 0;

  committed(key: string, at: number): void {
    const answered = this.patched.get(key);
    if (answered === undefined) {
      this.#notified.set(key, at);
      return;
    }
    this.patched.delete(key);
    this.#match(at - answered, at);
  }

  answered(key: string, at: number): void {
    const seen = this.#notified.get(key);
    if (seen === undefined) {
      this.patched.set(key, at);
      return;
    }
    this.#notified.delete(key);
    this.#match(seen - at, seen);
  }

  #match(lag: number, seen: number): void {
    this.lags.push(lag);
    this.lastSeen = Math.max(this.lastSeen, seen);
  }

  /** Waits until every answered change was seen committed, or `DRAIN_MS` passed. */
  async drain(): Promise<void> {
    const deadline = performance.now() + DRAIN_MS;
    while (this.patched.size > 0 && performance.now() < deadline) await sleep(5);
  }

  figures(): LagFigures {
    return {
      p50: percentile(this.lags, 50),
      p99: percentile(this.lags, 99),
      max: this.lags.length === 0 ? NaN : Math.max(...this.lags),
    };
  }
}

/**
 * What identifies one change: the object's name and the version it made. (One etcd transaction
 * writes several objects at one revision.)
 */
function changeKey(name: string, resourceVersion: string): string {
  return `${name}@${resourceVersion}`;
}

/** A change answered: its {@linkcode changeKey}, and when its answer arrived. */
interface Change {
  key: string;
  at: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The state of live table `table`, and the worker log's tail: what a failure is reported with. */
async function diagnose(bed: Bed, table: string): Promise<string> {
  const rows = await bed.sql`
    select state, objects, resource_version, relists, last_error
      from omni_kube.live_tables where table_name = ${table}`.catch((error) => [{ error }]);
  const tail = await logTail(bed.worker.logFile, 20).catch(() => "(no log)");
  // The bench removes its directory, the worker's log with it: a copy is kept.
  const kept = await Deno.makeTempFile({ prefix: "omni_kube-bench-worker-", suffix: ".log" });
  await Deno.copyFile(bed.worker.logFile, kept).catch(() => {});
  return `live_tables: ${JSON.stringify(rows)}\nworker log (copied to ${kept}):\n${tail}`;
}

/** Makes live table `table` of `namespace`'s bench ConfigMaps and waits for its first sync. */
async function makeLiveTable(bed: Bed, table: string, namespace: string): Promise<void> {
  await bed.sql`
    select omni_kube.live_table(${table}, 'v1', 'configmaps', namespace => ${namespace},
                                label_selector => ${BENCH_SELECTOR})`;
  try {
    await bed.sql`select omni_kube.await_live(${table}::regclass, ${SYNC_TIMEOUT_SECONDS})`;
  } catch (error) {
    throw new Error(`live table ${table} did not sync: ${error}\n${await diagnose(bed, table)}`);
  }
}

async function countRows(bed: Bed, table: string): Promise<number> {
  const [{ n }] = await bed.sql`select count(*)::int as n from ${bed.sql(table)}`;
  return n;
}

/** The direct client's paginated list of `namespace`'s bench ConfigMaps, each page parsed. */
async function directList(
  bed: Bed,
  namespace: string,
): Promise<{ items: number; pages: number; firstPageBytes: number }> {
  const decoder = new TextDecoder();
  let next: string | undefined;
  let items = 0;
  let pages = 0;
  let firstPageBytes = 0;
  do {
    const params: Record<string, string> = {
      labelSelector: BENCH_SELECTOR,
      limit: String(LIVE_PAGE_SIZE),
    };
    if (next) params.continue = next;
    const path = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, params);
    const response = await bed.http.fetch(bed.kube, { method: "GET", path });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
    const page = JSON.parse(decoder.decode(bytes));
    if (pages === 0) firstPageBytes = bytes.length;
    items += page.items.length;
    pages++;
    next = page.metadata?.continue || undefined;
  } while (next);
  return { items, pages, firstPageBytes };
}

/**
 * A streaming list of `namespace`'s bench ConfigMaps, through the worker's HTTP client as the
 * informer sends it; the response, unread, and what ends it.
 */
async function openStreamingList(bed: Bed, namespace: string, timeoutSeconds: number) {
  const path = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
    labelSelector: BENCH_SELECTOR,
    watch: "1",
    sendInitialEvents: "true",
    resourceVersionMatch: "NotOlderThan",
    allowWatchBookmarks: "true",
    timeoutSeconds: String(timeoutSeconds),
  });
  const abort = new AbortController();
  const response = await bed.http.fetch(bed.kube, {
    method: "GET",
    path,
    purpose: "watch",
    signal: abort.signal,
  });
  return { path, response, abort };
}

/**
 * How the worker's informer will list `namespace`: a streaming list is `complete` when its
 * initial-events-end bookmark arrives (the informer uses it), `refused` when the server does not
 * offer them, and `ended early` when the stream ends before that bookmark (the informer then lists
 * in pages).
 */
async function streamingListMode(
  bed: Bed,
  namespace: string,
): Promise<LiveSyncResult["streamingList"]> {
  const { path, response, abort } = await openStreamingList(bed, namespace, 5);
  if (response.status === 400 || response.status === 422) {
    await response.body?.cancel();
    return "refused";
  }
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  try {
    for await (const line of lines(response.body!, { signal: abort.signal })) {
      if (line.text.startsWith('{"type":"BOOKMARK"') && line.text.includes(INITIAL_EVENTS_END)) {
        return "complete";
      }
    }
    return "ended early";
  } finally {
    abort.abort();
  }
}

/** The direct client's streaming list of the bench ConfigMaps, each event parsed; its time. */
async function directStreamingList(bed: Bed, namespace: string): Promise<number> {
  const started = performance.now();
  const { path, response, abort } = await openStreamingList(bed, namespace, 60);
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  try {
    for await (const line of lines(response.body!, { signal: abort.signal })) {
      const event = JSON.parse(line.text);
      if (event.object?.metadata?.annotations?.[INITIAL_EVENTS_END] === "true") {
        return performance.now() - started;
      }
    }
    throw new Error("the direct streaming list ended before its initial-events-end bookmark");
  } finally {
    abort.abort();
  }
}

/** Part 1. Leaves no live table behind. */
async function firstSync(bed: Bed, sizes: Sizes, namespace: string): Promise<LiveSyncResult> {
  const pid = bed.worker.pid;
  const streamingList = await streamingListMode(bed, namespace);
  // Warm-up of both sides: the worker's first large lists also size its heap, and get its hot
  // path compiled by V8's optimizing compiler, whose memory (a few MB, once in the worker's life,
  // on a compiler thread) belongs to no sync.
  const listed = await directList(bed, namespace);
  for (let i = 0; i < sizes.liveSyncWarmups; i++) {
    await makeLiveTable(bed, "bench_live_sync_warmup", namespace);
    await bed.sql`drop table bench_live_sync_warmup`;
  }
  if (listed.items !== sizes.liveSyncSize) {
    throw new Error(`live: the direct list found ${listed.items} of ${sizes.liveSyncSize}`);
  }
  // Taken after the warm-up, once the worker's sessions for the list are open.
  const pids = await measuredPids(bed);
  const bridgeCpu: CpuByProcess[] = [];
  const directCpu: CpuByProcess[] = [];
  const bridgeRuns: number[] = [];
  const directRuns: number[] = [];
  const directStreamRuns: number[] = [];
  let workerRssBefore = 0;
  let workerPeak = 0;
  let peakReset = true;
  for (let i = 0; i < sizes.liveSyncRepeats; i++) {
    const table = `bench_live_sync_${i}`;
    peakReset = await resetPeak(pid) && peakReset;
    const before = await readMemory(pid);
    const cpuBefore = await cpuNow(pids);
    const started = performance.now();
    await makeLiveTable(bed, table, namespace);
    bridgeRuns.push(performance.now() - started);
    bridgeCpu.push(cpuSpent(cpuBefore, await cpuNow(pids)));
    const after = await readMemory(pid);
    if (i === 0 || after.peak - before.rss > workerPeak - workerRssBefore) {
      workerRssBefore = before.rss;
      workerPeak = after.peak;
    }
    const rows = await countRows(bed, table);
    if (rows !== sizes.liveSyncSize) {
      throw new Error(`live: ${table} holds ${rows} rows of ${sizes.liveSyncSize}`);
    }
    await bed.sql`drop table ${bed.sql(table)}`;
    const directCpuBefore = await cpuNow(pids);
    const directStarted = performance.now();
    await directList(bed, namespace);
    directRuns.push(performance.now() - directStarted);
    directCpu.push(cpuSpent(directCpuBefore, await cpuNow(pids)));
    if (streamingList === "complete") {
      directStreamRuns.push(await directStreamingList(bed, namespace));
    }
  }
  const bridgeMs = median(bridgeRuns);
  const directMs = median(directRuns);
  return {
    objects: sizes.liveSyncSize,
    bridgeMs,
    directMs,
    ratio: bridgeMs / directMs,
    bridgeRuns,
    directRuns,
    warmups: sizes.liveSyncWarmups,
    pages: listed.pages,
    pageBytes: listed.firstPageBytes,
    streamingList,
    directStreamMs: median(directStreamRuns),
    directStreamRuns,
    streamRatio: bridgeMs / median(directStreamRuns),
    workerRssBefore,
    workerPeak,
    workerPeakGrowth: workerPeak - workerRssBefore,
    peakGrowthOverPage: (workerPeak - workerRssBefore) / listed.firstPageBytes,
    peakReset,
    cpuPerSync: medianCpu(bridgeCpu),
    cpuPerDirectList: medianCpu(directCpu),
  };
}

/** The value the next patch writes: each patch changes its object (a no-op makes no event). */
let lastTick = 0;

/** A merge patch of one ConfigMap's data: the change it made. */
async function patchConfigMap(bed: Bed, namespace: string, index: number): Promise<Change> {
  const name = configMapName(index);
  const path = `/api/v1/namespaces/${namespace}/configmaps/${name}`;
  const response = await bed.http.fetch(bed.kube, {
    method: "PATCH",
    path,
    body: JSON.stringify({ data: { tick: String(++lastTick) } }),
    patchType: "merge",
  });
  const at = nowEpochMs();
  const text = await response.text();
  if (!response.ok) throw new Error(`PATCH ${path}: ${response.status} ${text.slice(0, 200)}`);
  return { key: changeKey(name, JSON.parse(text).metadata.resourceVersion), at };
}

/** Changes some of the bench's ConfigMaps, by their indexes, in one write; the changes it made. */
interface ChangeMaker {
  through: LiveChurnResult["through"];
  change(indexes: number[]): Promise<Change[]>;
}

/** One PATCH per object. */
function patchesThroughApi(bed: Bed, namespace: string): ChangeMaker {
  return {
    through: "api",
    change: (indexes) => Promise.all(indexes.map((index) => patchConfigMap(bed, namespace, index))),
  };
}

/**
 * Writes `namespace`'s bench ConfigMaps straight into etcd, under the API server that stores them
 * there, as that API server writes them (in JSON, which it reads as it reads its own encoding),
 * each with a new `tick`; the objects of one change in one etcd transaction (a real API server
 * writes one per transaction). etcd's revision of a transaction is the new resourceVersion of each
 * object in it.
 */
async function writesIntoEtcd(
  bed: Bed,
  namespace: string,
  storage: { etcdUrl: string; prefix: string },
): Promise<ChangeMaker> {
  const response = await bed.http.fetch(bed.kube, {
    method: "GET",
    path: withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
      labelSelector: BENCH_SELECTOR,
    }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`listing ${namespace}: ${response.status} ${text}`);
  type ConfigMap = {
    apiVersion?: string;
    kind?: string;
    metadata: { name: string; resourceVersion?: string; managedFields?: unknown };
    data: Record<string, string>;
  };
  const byName = new Map<string, ConfigMap>();
  for (const object of (JSON.parse(text) as { items: ConfigMap[] }).items) {
    // The API server sets an object's version from etcd's revision when it reads it.
    delete object.metadata.resourceVersion;
    delete object.metadata.managedFields;
    byName.set(object.metadata.name, { apiVersion: "v1", kind: "ConfigMap", ...object });
  }
  const base64 = (text: string) => Buffer.from(text).toString("base64");
  return {
    through: "etcd",
    async change(indexes) {
      const names = indexes.map(configMapName);
      const puts = names.map((name) => {
        const object = byName.get(name);
        if (!object) throw new Error(`${namespace}/${name} is not one of the bench's ConfigMaps`);
        object.data = { ...object.data, tick: String(++lastTick) };
        return {
          requestPut: {
            key: base64(`${storage.prefix}/configmaps/${namespace}/${name}`),
            value: base64(JSON.stringify(object)),
          },
        };
      });
      const written = await fetch(`${storage.etcdUrl}/v3/kv/txn`, {
        method: "POST",
        body: JSON.stringify({ success: puts }),
      });
      const at = nowEpochMs();
      const answer = await written.text();
      if (!written.ok) {
        throw new Error(`etcd transaction on ${namespace}: ${written.status} ${answer}`);
      }
      const revision: string = JSON.parse(answer).header.revision;
      return names.map((name) => ({ key: changeKey(name, revision), at }));
    },
  };
}

/**
 * A direct watch of `namespace`'s bench ConfigMaps from now on: each event is parsed as it arrives
 * and its version handed to the recorder. Asks for an uncompressed stream (see the report: this
 * kube-apiserver sends a compressed watch as one gzip member per flush, and Deno's fetch stops
 * reading at the end of the first). Stop it with its `stop`.
 */
async function directWatch(
  bed: Bed,
  namespace: string,
  recorder: () => LagRecorder,
): Promise<{ stop(): Promise<void> }> {
  const listPath = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
    labelSelector: BENCH_SELECTOR,
    limit: "1",
  });
  const listed = await bed.http.fetch(bed.kube, { method: "GET", path: listPath });
  const resourceVersion = JSON.parse(await listed.text()).metadata.resourceVersion;
  const path = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
    labelSelector: BENCH_SELECTOR,
    watch: "1",
    resourceVersion,
    timeoutSeconds: "600",
  });
  const abort = new AbortController();
  const response = await fetch(bed.kube.server + path, {
    headers: {
      accept: "application/json",
      "accept-encoding": "identity",
      authorization: `Bearer ${bed.kube.token}`,
    },
    client: bed.http.clientFor(bed.kube),
    signal: abort.signal,
  });
  if (!response.ok) throw new Error(`watch ${path}: ${response.status} ${await response.text()}`);
  const reading = (async () => {
    for await (const line of lines(response.body!, { signal: abort.signal })) {
      const event = JSON.parse(line.text);
      const metadata = event?.object?.metadata;
      if (event.type === "MODIFIED" && typeof metadata?.resourceVersion === "string") {
        recorder().committed(changeKey(metadata.name, metadata.resourceVersion), nowEpochMs());
      }
    }
  })().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  return {
    async stop() {
      abort.abort();
      await reading;
    },
  };
}

/** The worker's metrics of its transactions writing events. */
const WRITES_COUNT = 'omni_kube_live_write_seconds_count{kind="events"}';
const WRITES_SUM = 'omni_kube_live_write_seconds_sum{kind="events"}';

/** The worker's live-table writes between two scrapes of its metrics, which applied `events`. */
function writesBetween(
  before: Map<string, number>,
  after: Map<string, number>,
  events: number,
): LiveWrites {
  const delta = (name: string) => (after.get(name) ?? NaN) - (before.get(name) ?? 0);
  const transactions = delta(WRITES_COUNT);
  return {
    transactions,
    meanMs: 1000 * delta(WRITES_SUM) / transactions,
    eventsPerTransaction: events / transactions,
  };
}

/** Part 2: `liveRate` patches per second, each sent on time whether the last was answered or not. */
async function pacedLag(
  bed: Bed,
  sizes: Sizes,
  namespace: string,
  listen: (recorder: LagRecorder, direct: LagRecorder) => void,
): Promise<LiveLagResult> {
  const recorder = new LagRecorder();
  const direct = new LagRecorder();
  listen(recorder, direct);
  const metricsBefore = await scrapeMetrics(bed.metricsUrl);
  const patches = pacedWrites(
    sizes,
    sizes.liveLagMs,
    sizes.liveRate,
    1,
    patchesThroughApi(bed, namespace),
  );
  const made = await patches.run((changes) => {
    for (const { key, at } of changes) {
      recorder.answered(key, at);
      direct.answered(key, at);
    }
  });
  await recorder.drain();
  await direct.drain();
  const writes = writesBetween(
    metricsBefore,
    await scrapeMetrics(bed.metricsUrl),
    recorder.lags.length,
  );
  return {
    objects: sizes.liveObjects,
    targetRate: sizes.liveRate,
    changes: made.changes,
    changesPerSecond: made.changes / made.seconds,
    lag: recorder.figures(),
    missing: recorder.patched.size,
    directLag: direct.figures(),
    directMissing: direct.patched.size,
    writes,
  };
}

/** How a churn makes its changes: it hands each answered change to `answered`. */
interface Producer {
  /** Its figures in the result: loops without pacing, or a rate and objects per transaction. */
  shape: Pick<LiveChurnResult, "loops" | "targetRate" | "batch">;
  run(answered: (changes: Change[]) => void): Promise<{ changes: number; seconds: number }>;
}

/**
 * Part 3: `loops` loops making changes back to back for `liveChurnMs`, loop `loop` changing
 * objects loop, loop + loops, ... in turn.
 */
function unpacedLoops(sizes: Sizes, loops: number, { change }: ChangeMaker): Producer {
  const turns = Array.from({ length: loops }, () => 0);
  const slots = Math.max(1, Math.floor(sizes.liveObjects / loops));
  return {
    shape: { loops },
    async run(answered) {
      let changes = 0;
      const made = await closedLoop(loops, sizes.liveChurnMs, async (loop) => {
        const index = (loop + (turns[loop]++ % slots) * loops) % sizes.liveObjects;
        const changed = await change([index]);
        changes += changed.length;
        answered(changed);
      });
      return { changes, seconds: made.seconds };
    },
  };
}

/**
 * Parts 2 and 4: `rate` changes per second for `durationMs`, `batch` objects per write, each write
 * sent on time whether the last was answered or not (up to {@linkcode MAX_WRITES_IN_FLIGHT} at
 * once: past that, the writes fall behind the rate, and the changes made per second say so); the
 * objects of `sizes.liveObjects` in turn.
 */
function pacedWrites(
  sizes: Sizes,
  durationMs: number,
  rate: number,
  batch: number,
  { change }: ChangeMaker,
): Producer {
  return {
    shape: { targetRate: rate, batch },
    async run(answered) {
      const interval = 1000 * batch / rate;
      const inFlight = new Set<Promise<void>>();
      let failure: { error: unknown } | undefined;
      let changes = 0;
      let next = 0;
      let sent = 0;
      const started = performance.now();
      for (;;) {
        const elapsed = performance.now() - started;
        if (elapsed >= durationMs) break;
        for (; sent <= elapsed / interval && inFlight.size < MAX_WRITES_IN_FLIGHT; sent++) {
          const indexes = Array.from({ length: batch }, () => next++ % sizes.liveObjects);
          const write: Promise<void> = change(indexes)
            .then((changed) => {
              changes += changed.length;
              answered(changed);
            })
            .catch((error) => void (failure ??= { error }))
            .finally(() => inFlight.delete(write));
          inFlight.add(write);
        }
        if (failure) break;
        await (inFlight.size < MAX_WRITES_IN_FLIGHT ? sleep(1) : Promise.race(inFlight));
      }
      await Promise.all(inFlight);
      if (failure) throw failure.error;
      return { changes, seconds: (performance.now() - started) / 1000 };
    },
  };
}

/** Parts 3 and 4: the changes `producer` makes (through the API or into etcd), measured. */
async function churn(
  bed: Bed,
  listen: (recorder: LagRecorder, direct: LagRecorder) => void,
  kube: KubePids,
  through: LiveChurnResult["through"],
  producer: Producer,
): Promise<LiveChurnResult> {
  // Taken once every session of the measurement is open (the LISTEN's, the worker's).
  const pids = await measuredPids(bed, kube);
  const recorder = new LagRecorder();
  const direct = new LagRecorder();
  listen(recorder, direct);
  const metricsBefore = await scrapeMetrics(bed.metricsUrl);
  const cpuBefore = await cpuNow(pids);
  const startedEpoch = nowEpochMs();
  const made = await producer.run((changes) => {
    for (const { key, at } of changes) {
      recorder.answered(key, at);
      direct.answered(key, at);
    }
  });
  await recorder.drain();
  const cpuAfter = await cpuNow(pids);
  const writes = writesBetween(
    metricsBefore,
    await scrapeMetrics(bed.metricsUrl),
    recorder.lags.length,
  );
  const seconds = (Math.max(recorder.lastSeen, startedEpoch) - startedEpoch) / 1000;
  const wall = (nowEpochMs() - startedEpoch) / 1000;
  return {
    through,
    ...producer.shape,
    changes: made.changes,
    changesPerSecond: made.changes / made.seconds,
    events: recorder.lags.length,
    eventsPerSecond: recorder.lags.length / seconds,
    seconds,
    lag: recorder.figures(),
    missing: recorder.patched.size,
    directLag: direct.figures(),
    directMissing: direct.patched.size,
    writes,
    cpu: byProcess((process) => (cpuAfter[process] - cpuBefore[process]) / wall),
    cores: navigator.hardwareConcurrency,
  };
}

/** Our trigger on `table`: each row written notifies its change's {@linkcode changeKey} at commit. */
async function attachNotifyTrigger(sql: Sql, table: string): Promise<void> {
  await sql`
    create or replace function public.bench_live_notify() returns trigger
      language plpgsql as $$
    begin
      perform pg_catalog.pg_notify('bench_live',
                                   new.name || '@' || (new.resource -> 'metadata' ->> 'resourceVersion'));
      return null;
    end
    $$`;
  await sql`
    create trigger bench_live_notify after insert or update on ${sql(table)}
      for each row execute function public.bench_live_notify()`;
}

/** Case 7: every part, on fresh namespaces; drops its live tables at the end. */
export async function live(bed: Bed, sizes: Sizes, log: (message: string) => void) {
  const lagTable = "bench_live_lag";
  let listener: { unlisten(): Promise<void> } | undefined;
  let watcher: { stop(): Promise<void> } | undefined;
  try {
    log(`live: creating ${sizes.liveObjects} + ${sizes.liveSyncSize} ConfigMaps`);
    const lagNamespace = await createNamespace(bed, "bench-live-lag");
    await createConfigMaps(bed, lagNamespace, sizes.liveObjects);
    const syncNamespace = await createNamespace(bed, "bench-live-sync");
    await createConfigMaps(bed, syncNamespace, sizes.liveSyncSize);

    // The small table first: it warms up the worker's live path before the sync is timed.
    await makeLiveTable(bed, lagTable, lagNamespace);
    const rows = await countRows(bed, lagTable);
    if (rows !== sizes.liveObjects) {
      throw new Error(`live: ${lagTable} holds ${rows} rows of ${sizes.liveObjects}`);
    }

    log(`live: first sync of ${sizes.liveSyncSize} ConfigMaps`);
    const sync = await firstSync(bed, sizes, syncNamespace);

    await attachNotifyTrigger(bed.sql, lagTable);
    let recorder = new LagRecorder();
    let direct = new LagRecorder();
    listener = await bed.sql.listen(CHANNEL, (payload) => {
      recorder.committed(payload, nowEpochMs());
    });
    watcher = await directWatch(bed, lagNamespace, () => direct);
    const use = (live: LagRecorder, watched: LagRecorder) => {
      recorder = live;
      direct = watched;
    };
    // Warm-up: the patch path, and the trigger's first call.
    await pacedLag(
      bed,
      { ...sizes, liveLagMs: Math.min(1000, sizes.liveLagMs) },
      lagNamespace,
      use,
    );
    log(`live: lag at ${sizes.liveRate} changes/s`);
    const lag = await pacedLag(bed, sizes, lagNamespace, use);
    const kube = await kubePids(bed.kube.server);
    if (!kube.storage) throw new Error("live: cannot tell where the test bed's API server stores");
    log(`live: churn, ${sizes.liveChurnLoops} patch loops`);
    const churned = await churn(
      bed,
      use,
      kube,
      "api",
      unpacedLoops(sizes, sizes.liveChurnLoops, patchesThroughApi(bed, lagNamespace)),
    );
    log(
      `live: churn under the API server, ${sizes.liveEtcdRate} changes/s, ` +
        `${sizes.liveEtcdBatch} per etcd transaction`,
    );
    const etcdChurned = await churn(
      bed,
      use,
      kube,
      "etcd",
      pacedWrites(
        sizes,
        sizes.liveChurnMs,
        sizes.liveEtcdRate,
        sizes.liveEtcdBatch,
        await writesIntoEtcd(bed, lagNamespace, kube.storage),
      ),
    );
    await watcher.stop();

    const tables = await bed.sql`
      select table_name, state, objects, relists, last_error from omni_kube.live_tables
       order by table_name`;
    return {
      sync,
      lag,
      churn: churned,
      etcdChurn: etcdChurned,
      tables: tables.map((t) => ({
        table: t.table_name,
        state: t.state,
        objects: Number(t.objects),
        relists: Number(t.relists),
        lastError: t.last_error,
      })),
    } satisfies LiveResult;
  } catch (error) {
    log(`live: failed; ${await diagnose(bed, lagTable)}`);
    throw error;
  } finally {
    await listener?.unlisten().catch(() => {});
    await watcher?.stop().catch(() => {});
    const leftover = await bed.sql`
      select format('%I.%I', schema_name, table_name) as name from omni_kube.live_tables`;
    for (const { name } of leftover) await bed.sql.unsafe(`drop table if exists ${name}`);
    await bed.sql`drop function if exists public.bench_live_notify()`;
  }
}
