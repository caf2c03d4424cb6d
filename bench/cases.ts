/**
 * The benchmark's cases. Each measures the same work twice: through the bridge (SQL sessions
 * calling `omni_kube.api()` or `omni_kube.watch()`) and directly (the worker's HTTP client class
 * in this process, same settings, same concurrency).
 *
 * @module
 */
import { DEFAULT_WORKER_CONFIG } from "../lib/worker.ts";
import type { KubeTarget } from "../lib/kube/client.ts";
import { watchOnce, withQuery } from "../lib/kube/watch.ts";
import { DEFAULT_CALL_LIMITS } from "../lib/worker/limits.ts";
import {
  type Bed,
  type BridgePart,
  byProcess,
  type CpuByProcess,
  cpuNow,
  cpuPerCall,
  cpuSpent,
  type CpuSplit,
  measuredPids,
  medianCpu,
  readMemory,
  resetPeak,
  sampleCpu,
  scrapeMetrics,
} from "./bed.ts";
import {
  closedLoop,
  forEachConcurrently,
  mean,
  median,
  nowEpochMs,
  percentile,
  timeEach,
} from "./stats.ts";

/** How much work each case does. */
export interface Sizes {
  singleWarmup: number;
  singleCalls: number;
  batchSize: number;
  batchRepeats: number;
  concurrencies: number[];
  loopWarmupMs: number;
  loopMs: number;
  listSize: number;
  listRepeats: number;
  watchChanges: number;
  watchTimeoutSeconds: number;
  /**
   * Case 7 (bench/live.ts): ConfigMaps of the first sync, how many syncs are timed, and how many
   * go before them untimed.
   */
  liveSyncSize: number;
  liveSyncRepeats: number;
  liveSyncWarmups: number;
  /** Case 7: ConfigMaps of the table whose changes are timed, and the paced phase's rate and length. */
  liveObjects: number;
  liveRate: number;
  liveLagMs: number;
  /** Case 7: patch loops of the unpaced phase, and its length. */
  liveChurnLoops: number;
  liveChurnMs: number;
  /**
   * The churn under the API server: changes per second written straight into etcd, and objects
   * per etcd transaction.
   */
  liveEtcdRate: number;
  liveEtcdBatch: number;
  /** Case 8 (bench/async.ts): async GETs enqueued in one transaction, then completed. */
  asyncRequests: number;
}

/** The sizes the issue asks for. */
export const FULL: Sizes = {
  singleWarmup: 200,
  singleCalls: 2000,
  batchSize: 1000,
  batchRepeats: 5,
  concurrencies: [1, 8, 32],
  loopWarmupMs: 500,
  loopMs: 5000,
  listSize: 10_000,
  listRepeats: 3,
  watchChanges: 1000,
  watchTimeoutSeconds: 10,
  liveSyncSize: 10_000,
  liveSyncRepeats: 3,
  liveSyncWarmups: 8,
  liveObjects: 200,
  liveRate: 200,
  liveLagMs: 10_000,
  liveChurnLoops: 32,
  liveChurnMs: 10_000,
  liveEtcdRate: 2_500,
  liveEtcdBatch: 1,
  asyncRequests: 20_000,
};

/** A tiny run that exercises every case (for the harness's own test). */
export const QUICK: Sizes = {
  singleWarmup: 3,
  singleCalls: 20,
  batchSize: 20,
  batchRepeats: 1,
  concurrencies: [1, 8, 32],
  loopWarmupMs: 50,
  loopMs: 200,
  listSize: 50,
  listRepeats: 1,
  watchChanges: 20,
  watchTimeoutSeconds: 2,
  liveSyncSize: 100,
  liveSyncRepeats: 1,
  liveSyncWarmups: 1,
  liveObjects: 20,
  liveRate: 200,
  liveLagMs: 500,
  liveChurnLoops: 8,
  liveChurnMs: 500,
  liveEtcdRate: 200,
  liveEtcdBatch: 4,
  asyncRequests: 200,
};

/** Latency percentiles in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  mean: number;
}

/** The percentiles and mean of `times` (milliseconds). */
export function latency(times: number[]): Latency {
  return { p50: percentile(times, 50), p99: percentile(times, 99), mean: mean(times) };
}

/** CPU per bridge call in our processes (PostgreSQL and the worker), in milliseconds. */
export type CpuPerCall = CpuSplit<BridgePart>;

/** Case 1: sequential GETs of one small object from one session. */
export interface SingleResult {
  calls: number;
  bridge: Latency;
  direct: Latency;
  /** CPU per bridge call, read from /proc around the measured calls. */
  cpu: CpuPerCall;
  /** bridge - direct, per percentile. */
  overhead: { p50: number; p99: number };
  /** Where a bridge call's time goes, from the request rows' timestamps and the worker's metrics. */
  profile: Profile;
}

/** Medians of one bridge call's phases, in milliseconds. */
export interface Profile {
  /** Call sent by the client to the request row inserted (api(), checks, dblink). */
  enqueue: number;
  /**
   * Row inserted to its result written: the notification's delivery, the HTTP call and the
   * statement that writes the result (and claims a dispatched GET: no claim comes before it).
   */
  toResult: number;
  /** Of that, the HTTP call (the worker's own measure, mean). */
  http: number;
  /** Row updated to the client's answer: commit, unlock, the caller's wake, read and return. */
  wakeRead: number;
  /** The worker's mean time of the statement that writes results (its metrics), for reference. */
  completeStatement: number;
  /** Median end-to-end time of the calls profiled. */
  total: number;
}

/** Case 2: one batch api() against the same GETs run directly at the worker's concurrency. */
export interface BatchResult {
  size: number;
  concurrency: number;
  /** Medians over the repeats, in milliseconds. */
  bridgeMs: number;
  directMs: number;
  ratio: number;
  /**
   * CPU per GET of every process on the machine's side of each run, in milliseconds (medians over
   * the repeats): where the two cores go, and so how short a batch could be on them.
   */
  cpuPerGet: { bridge: CpuByProcess; direct: CpuByProcess };
}

/** Case 3: calls per second with `sessions` callers in closed loops. */
export interface ThroughputResult {
  target: "kube-apiserver" | "minimal endpoint";
  sessions: number;
  bridge: number;
  direct: number;
  /** bridge / direct */
  ratio: number;
  /** CPU per bridge call, read from /proc around the measured loop. */
  cpu: CpuPerCall;
}

/** Case 4: one big list. */
export interface ListResult {
  items: number;
  responseBytes: number;
  /** Medians over the repeats, in milliseconds. */
  bridgeMs: number;
  directMs: number;
  ratio: number;
  /** The worker's RSS before the call and its peak during it (the highest over the repeats). */
  workerRssBefore: number;
  workerPeak: number;
  /** workerPeak - workerRssBefore, and that over responseBytes. */
  workerPeakGrowth: number;
  peakGrowthOverResponse: number;
  /** Whether the peak could be reset before the call (else it is the process's lifetime peak). */
  peakReset: boolean;
}

/** Case 5, one side: a watch during which `changes` objects are created. */
export interface WatchSide {
  events: number;
  /** From the last write's answer to the watch's return. */
  lastWriteToReturnMs: number;
  /** From the moment the watch was asked for plus its timeout, to its return. */
  afterDeadlineMs: number;
}

/** Case 5. */
export interface WatchResult {
  changes: number;
  timeoutSeconds: number;
  /** How long the writes took (the watch's timeout is chosen to outlast them). */
  writesMs: number;
  bridge: WatchSide;
  direct: WatchSide;
}

/** What the single GET fetches: a Namespace. */
export const SMALL_OBJECT = "/api/v1/namespaces/default";
const LOCAL_PATH = "/bench";
/** Concurrency of fixture writes. */
const WRITERS = 32;

/** GET `path` directly and parse the answer, as postgres.js parses the bridge's jsonb. */
async function directGet(bed: Bed, target: KubeTarget, path: string): Promise<unknown> {
  const response = await bed.http.fetch(target, { method: "GET", path });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function directPost(bed: Bed, path: string, body: unknown): Promise<void> {
  const response = await bed.http.fetch(bed.kube, {
    method: "POST",
    path,
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST ${path}: ${response.status} ${text}`);
}

/** Creates a namespace with a fresh name and returns the name. */
export async function createNamespace(bed: Bed, prefix: string): Promise<string> {
  const name = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  await directPost(bed, "/api/v1/namespaces", { metadata: { name } });
  return name;
}

/** ConfigMap names used by the list and batch cases. */
export function configMapName(i: number): string {
  return `cm-${String(i).padStart(5, "0")}`;
}

/**
 * The label on the bench's ConfigMaps, which its lists and watches select: the cluster adds a
 * ConfigMap of its own (`kube-root-ca.crt`) to every namespace.
 */
const BENCH_LABELS = { app: "omni-kube-bench" };
/** The label selector of the bench's ConfigMaps. */
export const BENCH_SELECTOR = `app=${BENCH_LABELS.app}`;

/** Creates `count` small ConfigMaps in `namespace`. */
export async function createConfigMaps(bed: Bed, namespace: string, count: number) {
  const indexes = Array.from({ length: count }, (_, i) => i);
  await forEachConcurrently(
    indexes,
    WRITERS,
    (i) =>
      directPost(bed, `/api/v1/namespaces/${namespace}/configmaps`, {
        metadata: { name: configMapName(i), labels: BENCH_LABELS },
        data: { index: String(i), mode: "benchmark" },
      }),
  );
}

/** Case 1, with the profile of the bridge's calls. */
export async function single(bed: Bed, sizes: Sizes): Promise<SingleResult> {
  const sql = bed.sessions(1);
  const bridgeCall = () => sql`select omni_kube.api(${SMALL_OBJECT}) as o`;
  const directCall = () => directGet(bed, bed.kube, SMALL_OBJECT);
  await timeEach(sizes.singleWarmup, bridgeCall);
  await timeEach(sizes.singleWarmup, directCall);

  const [{ last }] = await bed
    .sql`select coalesce(max(id), 0)::int8 as last from omni_kube.request`;
  const metricsBefore = await scrapeMetrics(bed.metricsUrl);
  const spans: { start: number; end: number }[] = [];
  const cpuBefore = await sampleCpu(bed);
  for (let i = 0; i < sizes.singleCalls; i++) {
    const start = nowEpochMs();
    await bridgeCall();
    spans.push({ start, end: nowEpochMs() });
  }
  const cpu = cpuPerCall(cpuBefore, await sampleCpu(bed), sizes.singleCalls);
  const metricsAfter = await scrapeMetrics(bed.metricsUrl);
  const direct = await timeEach(sizes.singleCalls, directCall);
  const bridge = spans.map((s) => s.end - s.start);

  const rows = await bed.sql`
    select extract(epoch from created_at) * 1000 as created,
           extract(epoch from finished_at) * 1000 as finished
      from omni_kube.request where id > ${last} and path = ${SMALL_OBJECT} order by id`;
  if (rows.length !== spans.length) {
    throw new Error(`profile: ${rows.length} request rows for ${spans.length} calls`);
  }
  const delta = (name: string) => (metricsAfter.get(name) ?? 0) - (metricsBefore.get(name) ?? 0);
  const meanOf = (series: string, labels: string) =>
    1000 * delta(`${series}_sum{${labels}}`) / delta(`${series}_count{${labels}}`);
  const http = meanOf("omni_kube_call_duration_seconds", 'kind="api",method="GET"');
  const phase = (f: (i: number) => number) => median(spans.map((_, i) => f(i)));
  const num = (i: number, column: string) => Number(rows[i][column]);
  const profile: Profile = {
    enqueue: phase((i) => num(i, "created") - spans[i].start),
    toResult: phase((i) => num(i, "finished") - num(i, "created")),
    http,
    wakeRead: phase((i) => spans[i].end - num(i, "finished")),
    completeStatement: meanOf("omni_kube_queue_statement_seconds", 'statement="complete"'),
    total: median(bridge),
  };
  return {
    calls: sizes.singleCalls,
    bridge: latency(bridge),
    direct: latency(direct),
    cpu,
    overhead: {
      p50: percentile(bridge, 50) - percentile(direct, 50),
      p99: percentile(bridge, 99) - percentile(direct, 99),
    },
    profile,
  };
}

/** Case 2: one api() of `batchSize` GETs of distinct ConfigMaps. */
export async function batch(bed: Bed, sizes: Sizes, namespace: string): Promise<BatchResult> {
  const paths = Array.from(
    { length: sizes.batchSize },
    (_, i) => `/api/v1/namespaces/${namespace}/configmaps/${configMapName(i)}`,
  );
  const concurrency = DEFAULT_WORKER_CONFIG.concurrency;
  const bridgeRun = async () => {
    const [{ ok }] = await bed.sql`
      select count(*) filter (where status = 200)::int as ok from omni_kube.api(${paths}::text[])`;
    if (ok !== paths.length) throw new Error(`batch: ${ok} of ${paths.length} answered 200`);
  };
  const directRun = () =>
    forEachConcurrently(paths, concurrency, (path) => directGet(bed, bed.kube, path));
  await bridgeRun();
  // Both warmed up: the first large body in a worker also opens its COPY session and sizes its heap.
  await directRun();
  await bridgeRun();
  // Taken once the caller's session and its dblink connection are open.
  const pids = await measuredPids(bed);
  const perGet = (run: CpuByProcess) => byProcess((process) => run[process] / paths.length);
  const bridge: number[] = [];
  const direct: number[] = [];
  const bridgeCpu: CpuByProcess[] = [];
  const directCpu: CpuByProcess[] = [];
  for (let i = 0; i < sizes.batchRepeats; i++) {
    let before = await cpuNow(pids);
    bridge.push(...await timeEach(1, bridgeRun));
    bridgeCpu.push(perGet(cpuSpent(before, await cpuNow(pids))));
    before = await cpuNow(pids);
    direct.push(...await timeEach(1, directRun));
    directCpu.push(perGet(cpuSpent(before, await cpuNow(pids))));
  }
  const bridgeMs = median(bridge);
  const directMs = median(direct);
  return {
    size: paths.length,
    concurrency,
    bridgeMs,
    directMs,
    ratio: bridgeMs / directMs,
    cpuPerGet: { bridge: medianCpu(bridgeCpu), direct: medianCpu(directCpu) },
  };
}

/** Case 3 for one target and one number of sessions. */
async function throughputAt(
  bed: Bed,
  sizes: Sizes,
  target: ThroughputResult["target"],
  sessions: number,
): Promise<ThroughputResult> {
  const sql = bed.sessions(sessions);
  const bridgeCall = target === "kube-apiserver"
    ? () => sql`select omni_kube.api(${SMALL_OBJECT}) as o`
    : () =>
      sql`select omni_kube.api(${LOCAL_PATH}, server => ${bed.local.server},
                               cacert => ${bed.local.caCert!}) as o`;
  const directTarget = target === "kube-apiserver" ? bed.kube : bed.local;
  const directPath = target === "kube-apiserver" ? SMALL_OBJECT : LOCAL_PATH;
  const directCall = () => directGet(bed, directTarget, directPath);
  // Warm-up: every session opens its connection and its dblink connection first.
  await closedLoop(sessions, sizes.loopWarmupMs, bridgeCall);
  const cpuBefore = await sampleCpu(bed);
  const bridge = await closedLoop(sessions, sizes.loopMs, bridgeCall);
  const cpu = cpuPerCall(cpuBefore, await sampleCpu(bed), bridge.calls);
  await sql.end();
  await closedLoop(sessions, sizes.loopWarmupMs, directCall);
  const direct = await closedLoop(sessions, sizes.loopMs, directCall);
  return {
    target,
    sessions,
    bridge: bridge.callsPerSecond,
    direct: direct.callsPerSecond,
    ratio: bridge.callsPerSecond / direct.callsPerSecond,
    cpu,
  };
}

/** Case 3: every number of sessions, against kube-apiserver and against the minimal endpoint. */
export async function throughput(bed: Bed, sizes: Sizes): Promise<ThroughputResult[]> {
  const results: ThroughputResult[] = [];
  for (const target of ["kube-apiserver", "minimal endpoint"] as const) {
    for (const sessions of sizes.concurrencies) {
      results.push(await throughputAt(bed, sizes, target, sessions));
    }
  }
  return results;
}

/** Case 4: the list of the bench's ConfigMaps in `namespace` (`sizes.listSize` of them). */
export async function list(bed: Bed, sizes: Sizes, namespace: string): Promise<ListResult> {
  const path = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
    labelSelector: BENCH_SELECTOR,
  });
  const pid = bed.worker.pid;
  let responseBytes = 0;
  const directRun = async () => {
    const response = await bed.http.fetch(bed.kube, { method: "GET", path });
    const bytes = new Uint8Array(await response.arrayBuffer());
    responseBytes = bytes.length;
    const items = JSON.parse(new TextDecoder().decode(bytes)).items.length;
    if (items !== sizes.listSize) throw new Error(`list: ${items} items directly`);
  };
  const bridgeRun = async () => {
    const [{ items }] = await bed
      .sql`select jsonb_array_length(omni_kube.api(${path}) -> 'items') as items`;
    if (items !== sizes.listSize) throw new Error(`list: ${items} items through the bridge`);
  };
  // Both warmed up: the first large body in a worker also opens its COPY session and sizes its heap.
  await directRun();
  await bridgeRun();
  const bridge: number[] = [];
  const direct: number[] = [];
  let workerRssBefore = 0;
  let workerPeak = 0;
  let peakReset = true;
  for (let i = 0; i < sizes.listRepeats; i++) {
    peakReset = await resetPeak(pid) && peakReset;
    const before = await readMemory(pid);
    bridge.push(...await timeEach(1, bridgeRun));
    const after = await readMemory(pid);
    if (i === 0 || after.peak - before.rss > workerPeak - workerRssBefore) {
      workerRssBefore = before.rss;
      workerPeak = after.peak;
    }
    direct.push(...await timeEach(1, directRun));
  }
  const bridgeMs = median(bridge);
  const directMs = median(direct);
  return {
    items: sizes.listSize,
    responseBytes,
    bridgeMs,
    directMs,
    ratio: bridgeMs / directMs,
    workerRssBefore,
    workerPeak,
    workerPeakGrowth: workerPeak - workerRssBefore,
    peakGrowthOverResponse: (workerPeak - workerRssBefore) / responseBytes,
    peakReset,
  };
}

/** Case 5: `watchChanges` ConfigMaps created during a bridge watch and a direct watch. */
export async function watch(bed: Bed, sizes: Sizes): Promise<WatchResult> {
  const namespace = await createNamespace(bed, "bench-watch");
  const path = withQuery(`/api/v1/namespaces/${namespace}/configmaps`, {
    labelSelector: BENCH_SELECTOR,
  });
  const timeoutSeconds = sizes.watchTimeoutSeconds;
  const sql = bed.sessions(1);
  await sql`select omni_kube.api(${SMALL_OBJECT})`; // the session's dblink connection, opened
  const [{ last }] = await bed
    .sql`select coalesce(max(id), 0)::int8 as last from omni_kube.request`;

  const bridgeAsked = nowEpochMs();
  const bridgeWatch = sql`
    select cardinality(events) as events from omni_kube.watch('v1', 'configmaps',
      namespace => ${namespace}, label_selector => ${BENCH_SELECTOR}, timeout => ${timeoutSeconds})`
    .then(([{ events }]) => ({ events: Number(events), returned: nowEpochMs() }));
  const directAsked = nowEpochMs();
  const directWatch = watchOnce((target, request) => bed.http.fetch(target, request), bed.kube, {
    path,
    timeoutSeconds,
    maxBytes: DEFAULT_CALL_LIMITS.maxResponseBytes,
    maxEvents: DEFAULT_CALL_LIMITS.maxWatchEvents,
  }).then((result) => {
    // Parsed, as PostgreSQL parses the bridge's events into jsonb.
    for (const event of result.events) JSON.parse(event);
    return { events: result.events.length, returned: nowEpochMs() };
  });
  // Both list before they watch; writes after the lists are seen. Wait for the worker's claim,
  // then a little for the lists.
  for (let i = 0; i < 500; i++) {
    const [{ running }] = await bed.sql`
      select count(*)::int as running from omni_kube.request
       where id > ${last} and kind = 'watch' and state = 'running'`;
    if (running > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 300));

  const writesStarted = nowEpochMs();
  await createConfigMaps(bed, namespace, sizes.watchChanges);
  const lastWrite = nowEpochMs();
  const [bridge, direct] = await Promise.all([bridgeWatch, directWatch]);
  await sql.end();
  // Each change is one event, plus the closing BOOKMARK.
  for (const [side, got] of [["bridge", bridge], ["direct", direct]] as const) {
    if (got.events !== sizes.watchChanges + 1) {
      throw new Error(`watch (${side}): ${got.events} events for ${sizes.watchChanges} changes`);
    }
  }
  const side = (got: { events: number; returned: number }, asked: number): WatchSide => ({
    events: got.events,
    lastWriteToReturnMs: got.returned - lastWrite,
    afterDeadlineMs: got.returned - (asked + timeoutSeconds * 1000),
  });
  return {
    changes: sizes.watchChanges,
    timeoutSeconds,
    writesMs: lastWrite - writesStarted,
    bridge: side(bridge, bridgeAsked),
    direct: side(direct, directAsked),
  };
}
