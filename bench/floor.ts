/**
 * Case 6, the floor: the cheapest implementation of the bridge's synchronous call shape, measured
 * as the bridge is in cases 1 and 3, so that what the bridge adds to the shape can be told from
 * what the shape costs. A SQL function enqueues through dblink, NOTIFY wakes a worker process, the
 * worker makes the HTTPS call and writes the result back, and the caller, blocked on an advisory
 * lock the worker holds, wakes and reads it (bench/floor.sql, bench/floor_worker.ts). Nothing else:
 * no input checks, fairness, credentials or retention, one worker. The bridge's worker stays idle
 * meanwhile.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { logTail, spawnProcess, waitUntilReady } from "../testbed/process.ts";
import {
  type Bed,
  cpuPerCallByPart,
  type CpuSample,
  type CpuSplit,
  sampleCpuByPart,
} from "./bed.ts";
import { type Latency, latency, type Sizes, SMALL_OBJECT } from "./cases.ts";
import { type FloorTargets, LISTEN_NAME, LOCAL_PREFIX, SESSION_NAME } from "./floor_worker.ts";
import { closedLoop, timeEach } from "./stats.ts";

const SQL_FILE = fileURLToPath(new URL("./floor.sql", import.meta.url));
const WORKER = fileURLToPath(new URL("./floor_worker.ts", import.meta.url));
/** The application_name of the callers' sessions. */
const CALLER_NAME = "omni_kube_floor_caller";
/** The application_name floor.sql gives the callers' dblink connections. */
const DBLINK_NAME = "omni_kube_floor_dblink";
/** A caller gives up after this long, rather than waiting forever on a worker that died. */
const STATEMENT_TIMEOUT_MS = "30000";

/** Where a floor call's CPU goes, by process: what each part's rows of the report mean. */
export const FLOOR_PARTS = {
  callers: "PostgreSQL: the callers' backends (call())",
  dblink: "PostgreSQL: their dblink backends (enqueue())",
  session: "PostgreSQL: the worker's session (update, unlock, window)",
  listen: "PostgreSQL: the worker's LISTEN connection",
  other: "PostgreSQL: its other processes (server, the idle bridge worker's)",
  worker: "the floor worker (Deno)",
} as const;
/** One of {@linkcode FLOOR_PARTS}. */
export type FloorPart = keyof typeof FLOOR_PARTS;

/** CPU per floor call, in milliseconds: as the bridge's, split by process. */
export type FloorCpu = CpuSplit<FloorPart>;

/** Case 6 against the minimal endpoint: `sessions` callers in closed loops. */
export interface FloorLoop {
  sessions: number;
  callsPerSecond: number;
  cpu: FloorCpu;
}

/** Case 6. */
export interface FloorResult {
  /** Sequential GETs of a Namespace from kube-apiserver, from one session. */
  calls: number;
  single: Latency;
  singleCpu: FloorCpu;
  /** Closed loops against the minimal endpoint, one per number of sessions. */
  loops: FloorLoop[];
}

function partOf(applicationName: string | undefined): FloorPart {
  switch (applicationName) {
    case CALLER_NAME:
      return "callers";
    case DBLINK_NAME:
      return "dblink";
    case SESSION_NAME:
      return "session";
    case LISTEN_NAME:
      return "listen";
    default:
      return "other";
  }
}

function sampleCpu(bed: Bed, workerPid: number): Promise<CpuSample<FloorPart>> {
  return sampleCpuByPart(bed.sql, partOf, workerPid, "worker");
}

function cpuPerCall(
  before: CpuSample<FloorPart>,
  after: CpuSample<FloorPart>,
  calls: number,
): FloorCpu {
  return cpuPerCallByPart(before, after, calls, FLOOR_PARTS, "worker");
}

/** Case 6: installs the floor, runs its worker, measures, and removes both. */
export async function floor(bed: Bed, sizes: Sizes, dir: string): Promise<FloorResult> {
  await bed.sql.unsafe(await Deno.readTextFile(SQL_FILE)).simple();
  const targets: FloorTargets = { kube: bed.kube, local: bed.local };
  const worker = await spawnProcess("floor worker", Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", WORKER],
    env: { DATABASE_URL: bed.url, FLOOR_TARGETS: JSON.stringify(targets) },
    logFile: join(dir, "floor_worker.log"),
  });
  try {
    // The worker locks its window once it listens.
    await waitUntilReady(worker, "its lock window", async () => {
      const [{ ready }] = await bed.sql`
        select exists (select from pg_locks where locktype = 'advisory' and granted
                          and classid = omni_kube_floor.lock_class()::oid) as ready`;
      return ready;
    }, { timeoutMs: 60_000 });
    const settings = { application_name: CALLER_NAME, statement_timeout: STATEMENT_TIMEOUT_MS };

    const sql = bed.sessions(1, settings);
    const call = (path: string) => sql`select omni_kube_floor.call(${path}) as o`;
    const [{ o }] = await call(SMALL_OBJECT);
    if (o?.kind !== "Namespace") {
      throw new Error(`floor: GET ${SMALL_OBJECT} answered ${JSON.stringify(o).slice(0, 200)}`);
    }
    await timeEach(sizes.singleWarmup, () => call(SMALL_OBJECT));
    const singleBefore = await sampleCpu(bed, worker.pid);
    const times = await timeEach(sizes.singleCalls, () => call(SMALL_OBJECT));
    const singleCpu = cpuPerCall(singleBefore, await sampleCpu(bed, worker.pid), sizes.singleCalls);
    await sql.end();

    const loops: FloorLoop[] = [];
    for (const sessions of sizes.concurrencies) {
      const sql = bed.sessions(sessions, settings);
      const call = () => sql`select omni_kube_floor.call(${LOCAL_PREFIX}) as o`;
      // Warm-up: every session opens its connection and its dblink connection first.
      await closedLoop(sessions, sizes.loopWarmupMs, call);
      const before = await sampleCpu(bed, worker.pid);
      const loop = await closedLoop(sessions, sizes.loopMs, call);
      const cpu = cpuPerCall(before, await sampleCpu(bed, worker.pid), loop.calls);
      await sql.end();
      loops.push({ sessions, callsPerSecond: loop.callsPerSecond, cpu });
    }
    return { calls: sizes.singleCalls, single: latency(times), singleCpu, loops };
  } catch (error) {
    console.error(`[bench] end of the floor worker's log:\n${await logTail(worker.logFile)}`);
    throw error;
  } finally {
    await worker.stop();
    await bed.sql`drop schema omni_kube_floor cascade`;
  }
}
