/**
 * Case 8, async calls (`omni_kube.api_async`) against the minimal endpoint: what one enqueue costs
 * inside the caller's transaction (beside a function that INSERTs the same row into a table of the
 * same shape and announces it), and how fast the worker completes a committed batch of GETs, beside a direct client
 * running the same GETs at the worker's async concurrency.
 *
 * @module
 */
import {
  type Bed,
  type BridgePart,
  busiestThreadSeconds,
  cpuPerCall,
  type CpuSample,
  cpuSeconds,
  sampleCpu,
  threadCpuSeconds,
} from "./bed.ts";
import type { CpuPerCall, Sizes } from "./cases.ts";
import { forEachConcurrently } from "./stats.ts";
import { DEFAULT_WORKER_CONFIG } from "../lib/worker.ts";

/** The worker's `--async-concurrency` (its default): the direct client runs as many GETs at once. */
const ASYNC_CONCURRENCY = DEFAULT_WORKER_CONFIG.asyncConcurrency;
const LOCAL_PATH = "/bench";

/** Case 8's figures. */
export interface AsyncResult {
  requests: number;
  /**
   * Milliseconds per api_async() inside one transaction, and per call of a function that INSERTs
   * the same row and announces it, checking nothing.
   */
  enqueueMs: number;
  insertMs: number;
  /** Committed GETs completed per second, from the commit to the last result. */
  bridge: number;
  /** The same GETs per second from a direct client with {@linkcode ASYNC_CONCURRENCY} at once. */
  direct: number;
  ratio: number;
  /** CPU per completed request, from the commit to the last result (the enqueue apart). */
  cpu: CpuPerCall;
  /** The endpoint's CPU per call, serving the bridge's calls and the direct client's. */
  endpointCpu: { bridge: number; direct: number };
  /** The direct client's CPU per call (the bench process, which does nothing else meanwhile). */
  directCpu: number;
  /**
   * CPU per call of every process taking part, the two sides' totals: PostgreSQL, the worker and
   * the endpoint; the direct client and the endpoint. On a machine whose cores they share, the
   * calls/s of the two sides go about as the inverse of these.
   */
  allCpu: { bridge: number; direct: number };
  /**
   * The busiest thread of the worker, and of the direct client: the one running its JavaScript.
   * Busy all the time, it bounds the calls/s.
   */
  busiestThread: { bridge: ThreadLoad; direct: ThreadLoad };
}

/** What one thread did during a run. */
export interface ThreadLoad {
  /** Its CPU per call, in milliseconds. */
  cpu: number;
  /** Its CPU over the run's wall time: 1 when it never waited. */
  busy: number;
}

/** Case 8 with `sizes.asyncRequests` requests. */
export async function asyncCalls(bed: Bed, sizes: Sizes): Promise<AsyncResult> {
  const requests = sizes.asyncRequests;
  const sql = bed.sessions(1);
  const { server, caCert } = bed.local;
  try {
    // Warm-up: the first calls plan the statements, and open the worker's connections.
    await sql`select omni_kube.api_async(${LOCAL_PATH}, server => ${server}, cacert => ${caCert!})
                from generate_series(1, 200)`;
    await waitForAll(sql);

    // A local INSERT per call of what one request row holds, into a table of the same shape, by
    // a function that also announces it, as api_async() does, but checks nothing.
    const insertMs = await sql.begin(async (tx) => {
      await tx`create temporary table plain (like omni_kube.async_request including all)
                 on commit drop`;
      await tx`
        create function pg_temp.plain_insert(path text, server text, cacert text) returns bigint
          language plpgsql as $$
        declare
          id bigint;
        begin
          insert into pg_temp.plain (method, path, server, timeout_ms, requested_by,
                                     use_worker_default, cacert, has_secret)
          values ('GET', path, server, 30000, current_user, false, cacert, false)
          returning plain.id into id;
          perform pg_notify('omni_kube_bench', '');
          return id;
        end $$`;
      const started = performance.now();
      await tx`select pg_temp.plain_insert(${LOCAL_PATH}, ${server}, ${caCert!})
                 from generate_series(1, ${requests})`;
      const elapsed = (performance.now() - started) / requests;
      await tx`drop function pg_temp.plain_insert(text, text, text)`;
      return elapsed;
    });

    let cpuBefore!: CpuSample<BridgePart>;
    let workerThreadsBefore!: Map<number, number>;
    const enqueued = await sql.begin(async (tx) => {
      const started = performance.now();
      await tx`select omni_kube.api_async(${LOCAL_PATH}, server => ${server},
                                          cacert => ${caCert!})
                 from generate_series(1, ${requests})`;
      const elapsed = performance.now() - started;
      cpuBefore = await sampleCpu(bed);
      workerThreadsBefore = await threadCpuSeconds(bed.worker.pid);
      return elapsed;
    });
    const commitAt = performance.now();
    const endpointPid = bed.endpoint.process.pid;
    const endpointBefore = await cpuSeconds(endpointPid);
    await waitForAll(sql);
    const seconds = (performance.now() - commitAt) / 1000;
    const cpu = cpuPerCall(cpuBefore, await sampleCpu(bed), requests);
    const workerThread = busiestThreadSeconds(
      workerThreadsBefore,
      await threadCpuSeconds(bed.worker.pid),
    );
    const endpointBridge = await cpuSeconds(endpointPid) - endpointBefore;

    const paths = Array.from({ length: requests }, () => LOCAL_PATH);
    const [selfBefore, selfThreadsBefore, endpointDirectBefore] = [
      await cpuSeconds(Deno.pid),
      await threadCpuSeconds(Deno.pid),
      await cpuSeconds(endpointPid),
    ];
    const directStarted = performance.now();
    await forEachConcurrently(paths, ASYNC_CONCURRENCY, async (path) => {
      const response = await bed.http.fetch(bed.local, { method: "GET", path });
      JSON.parse(await response.text());
    });
    const directSeconds = (performance.now() - directStarted) / 1000;
    const perCallMs = (spent: number) => spent * 1000 / requests;
    const directCpu = perCallMs(await cpuSeconds(Deno.pid) - selfBefore);
    const directThread = busiestThreadSeconds(selfThreadsBefore, await threadCpuSeconds(Deno.pid));
    const endpointDirect = perCallMs(await cpuSeconds(endpointPid) - endpointDirectBefore);
    const bridge = requests / seconds;
    const direct = requests / directSeconds;
    return {
      requests,
      enqueueMs: enqueued / requests,
      insertMs,
      bridge,
      direct,
      ratio: bridge / direct,
      cpu,
      endpointCpu: { bridge: perCallMs(endpointBridge), direct: endpointDirect },
      directCpu,
      allCpu: {
        bridge: cpu.total + perCallMs(endpointBridge),
        direct: directCpu + endpointDirect,
      },
      busiestThread: {
        bridge: { cpu: perCallMs(workerThread), busy: workerThread / seconds },
        direct: { cpu: perCallMs(directThread), busy: directThread / directSeconds },
      },
    };
  } finally {
    await sql.end();
  }
}

/** Waits until no async request is queued or running; throws if one did not answer 200. */
async function waitForAll(sql: ReturnType<Bed["sessions"]>): Promise<void> {
  for (;;) {
    const [{ unfinished }] = await sql`
      select exists (select from omni_kube.async_request where state = 'queued')
             or exists (select from omni_kube.async_request where state = 'running') as unfinished`;
    if (!unfinished) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const [{ failed }] = await sql`
    select count(*)::int as failed from omni_kube.async_request
     where state <> 'done' or status <> 200`;
  if (failed > 0) throw new Error(`${failed} async requests of the bench did not answer 200`);
}
