/**
 * What the benchmark runs against: a fresh database in a test bed's PostgreSQL, the worker as a
 * separate process (`deno run mod.ts start`, so its memory can be read from /proc and it shares no
 * event loop with the clients), the minimal HTTPS endpoint, and the direct client with the
 * worker's HTTP settings.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import type { TestbedEnvName } from "../testbed/mod.ts";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "../testbed/process.ts";
import { KubeHttp, type KubeTarget } from "../lib/kube/client.ts";
import { type Endpoint, startEndpoint } from "./endpoint.ts";
import { median } from "./stats.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

/** A postgres.js client of the benchmark. */
export type Sql = postgres.Sql<Record<string, never>>;

/** Memory of a process, from /proc/PID/status, in bytes. */
export interface Memory {
  rss: number;
  /** Peak RSS since start or since the last {@linkcode resetPeak}. */
  peak: number;
}

/** Reads VmRSS and VmHWM of `pid`. */
export async function readMemory(pid: number): Promise<Memory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kB = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kB("VmRSS") * 1024, peak: kB("VmHWM") * 1024 };
}

/** Resets the peak RSS of `pid` to its current RSS (Linux 4.0+); false if not permitted. */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Linux's clock tick for /proc's CPU times (USER_HZ), 100 on every architecture we run on. */
const TICKS_PER_SECOND = 100;

/** user + system CPU of `pid` in seconds, from /proc/PID/stat; 0 if it has exited. */
export function cpuSeconds(pid: number): Promise<number> {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** user + system CPU in seconds of each thread of `pid`, by thread id; empty if it has exited. */
export async function threadCpuSeconds(pid: number): Promise<Map<number, number>> {
  const threads = new Map<number, number>();
  try {
    for await (const { name } of Deno.readDir(`/proc/${pid}/task`)) {
      threads.set(Number(name), await statCpuSeconds(`/proc/${pid}/task/${name}/stat`));
    }
  } catch { /* exited */ }
  return threads;
}

/**
 * CPU seconds of the thread that used the most between two {@linkcode threadCpuSeconds} samples.
 * In a process whose JavaScript keeps it busy, that is the thread running it (in `deno run`, its
 * main thread; in `deno test`, another), and while it is busy all the time it bounds the process.
 */
export function busiestThreadSeconds(
  before: Map<number, number>,
  after: Map<number, number>,
): number {
  let busiest = 0;
  for (const [thread, seconds] of after) {
    busiest = Math.max(busiest, seconds - (before.get(thread) ?? 0));
  }
  return busiest;
}

/** user + system CPU in seconds from a process's or a thread's `stat` file; 0 if it is gone. */
async function statCpuSeconds(path: string): Promise<number> {
  try {
    const stat = await Deno.readTextFile(path);
    // Fields after the command name (which may hold spaces) start at state (field 3).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** The postmaster and its children: every process of the PostgreSQL server `sql` talks to. */
export async function postgresPids(sql: Sql): Promise<number[]> {
  const [{ pid }] = await sql`select pg_backend_pid() as pid`;
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const postmaster = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  const pids = [postmaster];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const child = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      if (Number(child.slice(child.lastIndexOf(")") + 2).split(" ")[1]) === postmaster) {
        pids.push(Number(entry.name));
      }
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** The command line of `pid`, one argument per element; empty if it has exited. */
async function commandLine(pid: number): Promise<string[]> {
  try {
    return (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** The test bed's kube-apiserver and etcd processes, where they run on this machine. */
export interface KubePids {
  apiserver?: number;
  etcd?: number;
  /** Where the API server stores: etcd's client URL and the prefix of its keys. */
  storage?: { etcdUrl: string; prefix: string };
}

/**
 * Finds the kube-apiserver serving `server` (`https://127.0.0.1:PORT`, by its `--secure-port`) and
 * the etcd it stores in (by its `--etcd-servers` and etcd's `--listen-client-urls`), from /proc.
 */
export async function kubePids(server: string): Promise<KubePids> {
  const port = new URL(server).port;
  const processes: { pid: number; args: string[] }[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    const args = await commandLine(pid);
    if (args.length > 0) processes.push({ pid, args });
  }
  const apiserver = processes.find(({ args }) =>
    args[0].endsWith("kube-apiserver") && args.includes(`--secure-port=${port}`)
  );
  const flag = (name: string) =>
    apiserver?.args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const etcdUrl = flag("etcd-servers");
  const etcd = etcdUrl === undefined
    ? undefined
    : processes.find(({ args }) =>
      args[0].endsWith("etcd") && args.includes(`--listen-client-urls=${etcdUrl}`)
    );
  return {
    apiserver: apiserver?.pid,
    etcd: etcd?.pid,
    // (kube-apiserver's default prefix is /registry.)
    storage: etcdUrl === undefined
      ? undefined
      : { etcdUrl: etcdUrl.split(",")[0], prefix: flag("etcd-prefix") ?? "/registry" },
  };
}

/** The processes whose CPU the batch and the live cases report, each in all of its processes. */
const PROCESSES = ["kubeApiserver", "etcd", "postgres", "worker", "bench"] as const;

/**
 * CPU by process, in the unit its use says. `bench` is this process: the direct client, and
 * whatever else the case runs in it (patch loops, a LISTEN, a direct watch).
 */
export type CpuByProcess = Record<typeof PROCESSES[number], number>;

/** A {@linkcode CpuByProcess} with `of(process)` for each process. */
export function byProcess(of: (process: keyof CpuByProcess) => number): CpuByProcess {
  return Object.fromEntries(PROCESSES.map((process) => [process, of(process)])) as CpuByProcess;
}

/** The processes {@linkcode cpuNow} reads: the test bed's API server and etcd, PostgreSQL's, the worker. */
export interface MeasuredPids extends KubePids {
  postgres: number[];
  worker: number;
}

/**
 * The processes to measure, found now: take it once every session of the measurement is open (a
 * backend that starts later is not counted). `kube`: the API server's and etcd's, if known already.
 */
export async function measuredPids(bed: Bed, kube?: KubePids): Promise<MeasuredPids> {
  return {
    ...kube ?? await kubePids(bed.kube.server),
    postgres: await postgresPids(bed.sql),
    worker: bed.worker.pid,
  };
}

/** CPU seconds so far of each of {@linkcode MeasuredPids}' processes (NaN where one is unknown). */
export async function cpuNow(pids: MeasuredPids): Promise<CpuByProcess> {
  const of = async (pid: number | undefined) => pid === undefined ? NaN : await cpuSeconds(pid);
  const postgres = (await Promise.all(pids.postgres.map(cpuSeconds))).reduce((a, b) => a + b, 0);
  return {
    kubeApiserver: await of(pids.apiserver),
    etcd: await of(pids.etcd),
    postgres,
    worker: await of(pids.worker),
    bench: await of(Deno.pid),
  };
}

/** CPU ms each process spent between two readings of {@linkcode cpuNow}. */
export function cpuSpent(before: CpuByProcess, after: CpuByProcess): CpuByProcess {
  return byProcess((process) => (after[process] - before[process]) * 1000);
}

/** Each process's median over `runs`. */
export function medianCpu(runs: CpuByProcess[]): CpuByProcess {
  return byProcess((process) => median(runs.map((run) => run[process])));
}

/** Tells which part of a call a PostgreSQL process does, by its `application_name`. */
export type PartOf<P extends string> = (applicationName: string | undefined) => P;

/** CPU seconds so far of each process measured, with the part of a call it does. */
export type CpuSample<P extends string> = Map<number, { part: P; seconds: number }>;

/** CPU per call in milliseconds: in all, on each side, and by part. */
export interface CpuSplit<P extends string> {
  total: number;
  postgres: number;
  worker: number;
  parts: Record<P, number>;
}

/**
 * CPU used so far by every PostgreSQL process, each with its part, and by the worker process
 * `workerPid` (as `workerPart`). Take it once the sessions of the measurement are open: a backend
 * that exits takes its CPU time with it.
 */
export async function sampleCpuByPart<P extends string>(
  sql: Sql,
  partOf: PartOf<P>,
  workerPid: number,
  workerPart: P,
): Promise<CpuSample<P>> {
  const rows = await sql`select pid, application_name as name from pg_stat_activity`;
  const names = new Map<number, string>(rows.map(({ pid, name }) => [pid, name]));
  const sample: CpuSample<P> = new Map();
  const read = async (pid: number, part: P) => {
    const seconds = await cpuSeconds(pid);
    // 0: it exited before it was read (or has not run a tick yet); absent, it counts as 0 anyway.
    if (seconds > 0) sample.set(pid, { part, seconds });
  };
  await Promise.all((await postgresPids(sql)).map((pid) => read(pid, partOf(names.get(pid)))));
  await read(workerPid, workerPart);
  return sample;
}

/** Milliseconds of CPU per call between two samples; `parts` lists every part, zero at first. */
export function cpuPerCallByPart<P extends string>(
  before: CpuSample<P>,
  after: CpuSample<P>,
  calls: number,
  parts: Record<P, unknown>,
  workerPart: P,
): CpuSplit<P> {
  const perCall = Object.fromEntries(Object.keys(parts).map((part) => [part, 0])) as Record<
    P,
    number
  >;
  // A process that started in between counts from zero.
  for (const [pid, { part, seconds }] of after) {
    perCall[part] += (seconds - (before.get(pid)?.seconds ?? 0)) * 1000 / calls;
  }
  const worker = perCall[workerPart];
  const total = Object.values<number>(perCall).reduce((a, b) => a + b, 0);
  return { total, postgres: total - worker, worker, parts: perCall };
}

/** The `application_name` of the bench's SQL sessions: the callers. */
export const CALLER_NAME = "omni_kube_bench";

/** Where a bridge call's CPU goes, by process: what each part's rows of the report mean. */
export const BRIDGE_PARTS = {
  callers: "PostgreSQL: the callers' backends (api(), _call, _await)",
  dblink: "PostgreSQL: their dblink backends (_insert_requests)",
  queue: "PostgreSQL: the worker's queue session (results, unlocks, claims)",
  sessions: "PostgreSQL: the worker's other sessions (LISTEN, pool)",
  other: "PostgreSQL: its other processes (server, bench)",
  worker: "the worker (Deno)",
} as const;
/** One of {@linkcode BRIDGE_PARTS}. */
export type BridgePart = keyof typeof BRIDGE_PARTS;

function bridgePartOf(applicationName: string | undefined): BridgePart {
  if (applicationName === CALLER_NAME) return "callers";
  if (applicationName === "omni_kube_autonomous") return "dblink";
  if (applicationName === "omni_kube_worker_queue") return "queue";
  if (applicationName?.startsWith("omni_kube_worker")) return "sessions";
  return "other";
}

/**
 * CPU used so far by PostgreSQL (every backend, the callers' and their dblink connections' and the
 * worker's, and the server's own processes) and by the worker, by part.
 */
export function sampleCpu(bed: Bed): Promise<CpuSample<BridgePart>> {
  return sampleCpuByPart(bed.sql, bridgePartOf, bed.worker.pid, "worker");
}

/** Milliseconds of CPU per bridge call between two samples, in total, per side and by part. */
export function cpuPerCall(
  before: CpuSample<BridgePart>,
  after: CpuSample<BridgePart>,
  calls: number,
): CpuSplit<BridgePart> {
  return cpuPerCallByPart(before, after, calls, BRIDGE_PARTS, "worker");
}

/** The benchmark's surroundings; stop it to end the processes and drop the database. */
export interface Bed {
  /** Superuser connection URL of the benchmark's database. */
  url: string;
  worker: ManagedProcess;
  /** Where the worker serves /metrics. */
  metricsUrl: string;
  endpoint: Endpoint;
  /** The API server, as the worker's default cluster reaches it (admin token, run's CA). */
  kube: KubeTarget;
  /** The minimal endpoint, as calls naming it reach it. */
  local: KubeTarget;
  /** The direct client: the worker's HTTP client class, with the same settings. */
  http: KubeHttp;
  /** One connection, for setup and inspection. */
  sql: Sql;
  /**
   * A client of up to `max` sessions (each one a PostgreSQL backend with its own dblink), with
   * `settings` as startup parameters (application_name, ...).
   */
  sessions(max: number, settings?: Record<string, string>): Sql;
  stop(): Promise<void>;
}

/** Starts the worker process against a new database in the test bed described by `env`. */
export async function startBed(env: Record<TestbedEnvName, string>, dir: string): Promise<Bed> {
  const database = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin`create database ${admin(database)}`;
  await admin.end();
  const dbUrl = new URL(env.DATABASE_URL);
  dbUrl.pathname = `/${database}`;
  const url = dbUrl.href;
  const clients: Sql[] = [];
  const sessions = (max: number, settings: Record<string, string> = {}) => {
    const client = postgres(url, {
      max,
      onnotice: () => {},
      max_lifetime: null,
      idle_timeout: 0,
      connection: { application_name: CALLER_NAME, ...settings },
    });
    clients.push(client);
    return client;
  };
  const sql = sessions(1, { application_name: "omni_kube_bench_setup" });
  const httpPort = freePort();
  const worker = await spawnProcess("worker", Deno.execPath(), {
    args: ["run", "--allow-all", MOD, "start", "--http-host=127.0.0.1", `--http-port=${httpPort}`],
    env: {
      DATABASE_URL: url,
      KUBECONFIG: env.KUBECONFIG,
      OMNI_KUBE_LOG_LEVEL: Deno.env.get("OMNI_KUBE_LOG_LEVEL") ?? "warn",
    },
    logFile: join(dir, "worker.log"),
  });
  const endpoint = await startEndpoint(dir).catch(async (error) => {
    await worker.stop();
    throw error;
  });
  const http = new KubeHttp();
  const stop = async () => {
    http.close();
    await worker.stop();
    await endpoint.stop();
    for (const client of clients) await client.end({ timeout: 5 });
    const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin`drop database if exists ${admin(database)} with (force)`;
    await admin.end();
  };
  try {
    await waitUntilReady(worker, "serving", async () => {
      // The worker installs the shim first: until then the function does not exist.
      const [{ installed }] = await sql`
        select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                        where n.nspname = 'omni_kube' and c.relname = 'workers') as installed`;
      if (!installed) return false;
      const [{ alive }] = await sql`select omni_kube._worker_alive() as alive`;
      return alive;
    }, { timeoutMs: 60_000, intervalMs: 100 });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    worker,
    metricsUrl: `http://127.0.0.1:${httpPort}/metrics`,
    endpoint,
    kube: {
      server: env.KUBE_SERVER,
      caCert: await Deno.readTextFile(env.KUBE_CA_FILE),
      token: env.KUBE_ADMIN_TOKEN,
    },
    local: { server: endpoint.url, caCert: endpoint.caCert },
    http,
    sql,
    sessions,
    stop,
  };
}

/** Samples of the worker's Prometheus histograms and counters, by series. */
export async function scrapeMetrics(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = line.match(/^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+|NaN)$/);
    if (match) values.set(match[1], Number(match[2]));
  }
  return values;
}
