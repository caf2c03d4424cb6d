/**
 * `deno task bench [--json FILE] [--quick] [--only CASE,...]`: starts the test bed and the worker
 * (as its own process), warms up, and measures each case through the bridge and directly, printing
 * one table with both and their ratio (see README.md, "Measured"). Case `floor` measures the
 * cheapest implementation of the bridge's call shape instead (bench/floor.ts); `live` measures
 * live tables: their first sync, and how soon and how fast they follow changes (bench/live.ts);
 * the last, `async`, measures async calls: their enqueue, and how fast committed ones complete
 * (bench/async.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startTestbed, type TestbedEnvName } from "../testbed/mod.ts";
import { type Bed, BRIDGE_PARTS, type CpuByProcess, startBed } from "./bed.ts";
import {
  batch,
  type BatchResult,
  type CpuPerCall,
  createConfigMaps,
  createNamespace,
  FULL,
  list,
  type ListResult,
  QUICK,
  single,
  type SingleResult,
  type Sizes,
  throughput,
  type ThroughputResult,
  watch,
  type WatchResult,
} from "./cases.ts";
import { floor, FLOOR_PARTS, type FloorResult } from "./floor.ts";
import { type LagFigures, live, type LiveResult } from "./live.ts";
import { asyncCalls, type AsyncResult, type ThreadLoad } from "./async.ts";
import { formatMB, formatMs, formatRatio, markdownTable } from "./stats.ts";

/** Everything one run measured (the `--json` file). */
export interface BenchReport {
  startedAt: string;
  quick: boolean;
  machine: { cpus: number; deno: string; os: string };
  sizes: Sizes;
  /** Each case is absent when `--only` left it out. */
  single?: SingleResult;
  batch?: BatchResult;
  throughput?: ThroughputResult[];
  list?: ListResult;
  watch?: WatchResult;
  floor?: FloorResult;
  live?: LiveResult;
  async?: AsyncResult;
}

/** The cases, in the order they run. */
export const CASES = [
  "single",
  "batch",
  "throughput",
  "list",
  "watch",
  "floor",
  "live",
  "async",
] as const;
/** One of {@linkcode CASES}. */
export type CaseName = typeof CASES[number];

function log(message: string) {
  console.error(`[bench] ${message}`);
}

/** Runs every case against the test bed described by `env` (see testbed/mod.ts). */
export async function runBench(
  env: Record<TestbedEnvName, string>,
  options: { quick?: boolean; only?: readonly CaseName[] } = {},
): Promise<BenchReport> {
  const runs = (name: CaseName) => options.only === undefined || options.only.includes(name);
  const sizes = options.quick ? QUICK : FULL;
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-bench-" });
  let bed: Bed | undefined;
  let failed = false;
  try {
    bed = await startBed(env, dir);
    const startedAt = new Date().toISOString();
    log(`worker pid ${bed.worker.pid}`);
    let namespace = "";
    if (runs("batch") || runs("list")) {
      log(`creating ${sizes.listSize} ConfigMaps`);
      namespace = await createNamespace(bed, "bench-list");
      await createConfigMaps(bed, namespace, sizes.listSize);
    }
    const singleResult = runs("single")
      ? (log("1. single GET"), await single(bed, sizes))
      : undefined;
    const batchResult = runs("batch")
      ? (log("2. batch"), await batch(bed, sizes, namespace))
      : undefined;
    const throughputResult = runs("throughput")
      ? (log("3. throughput"), await throughput(bed, sizes))
      : undefined;
    const listResult = runs("list")
      ? (log("4. list"), await list(bed, sizes, namespace))
      : undefined;
    const watchResult = runs("watch") ? (log("5. watch"), await watch(bed, sizes)) : undefined;
    const floorResult = runs("floor") ? (log("6. floor"), await floor(bed, sizes, dir)) : undefined;
    const liveResult = runs("live") ? (log("7. live"), await live(bed, sizes, log)) : undefined;
    const asyncResult = runs("async") ? (log("8. async"), await asyncCalls(bed, sizes)) : undefined;
    return {
      startedAt,
      quick: options.quick ?? false,
      machine: {
        cpus: navigator.hardwareConcurrency,
        deno: Deno.version.deno,
        os: `${Deno.build.os} ${Deno.build.arch}`,
      },
      sizes,
      single: singleResult,
      batch: batchResult,
      throughput: throughputResult,
      list: listResult,
      watch: watchResult,
      floor: floorResult,
      live: liveResult,
      async: asyncResult,
    };
  } catch (error) {
    failed = true;
    if (bed) log(`worker log: ${dir}/worker.log (kept)`);
    throw error;
  } finally {
    await bed?.stop();
    if (!failed) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Case 8's rows: the enqueue beside a plain INSERT, and throughput beside the direct client. */
function asyncRows(a: AsyncResult): string[][] {
  return [
    [
      "8. async: api_async() in the caller's transaction (direct: a function INSERTing its row)",
      formatMs(a.enqueueMs),
      formatMs(a.insertMs),
      formatRatio(a.enqueueMs / a.insertMs),
    ],
    [
      `8. async: ${a.requests} committed GETs, minimal endpoint (calls/s)`,
      a.bridge.toFixed(0),
      a.direct.toFixed(0),
      formatRatio(a.ratio),
    ],
    cpuRow("8. async: CPU per call: PostgreSQL + worker", a.cpu),
    [
      "8. async: CPU per call: the worker (direct: the direct client)",
      formatMs(a.cpu.worker),
      formatMs(a.directCpu),
      formatRatio(a.cpu.worker / a.directCpu),
    ],
    [
      "8. async: CPU per call: the endpoint",
      formatMs(a.endpointCpu.bridge),
      formatMs(a.endpointCpu.direct),
      "",
    ],
    [
      "8. async: CPU per call: every process (direct: the direct client and the endpoint)",
      formatMs(a.allCpu.bridge),
      formatMs(a.allCpu.direct),
      formatRatio(a.allCpu.bridge / a.allCpu.direct),
    ],
    [
      "8. async: CPU per call: the worker's JavaScript thread (busy share of the run)",
      threadLoad(a.busiestThread.bridge),
      threadLoad(a.busiestThread.direct),
      formatRatio(a.busiestThread.bridge.cpu / a.busiestThread.direct.cpu),
    ],
  ];
}

/** A thread's CPU per call, and how much of the run it was busy. */
function threadLoad({ cpu, busy }: ThreadLoad): string {
  return `${formatMs(cpu)} (${(busy * 100).toFixed(0)}%)`;
}

/** A row of CPU per bridge call: the total, then how it splits between PostgreSQL and the worker. */
function cpuRow(label: string, cpu: Pick<CpuPerCall, "total" | "postgres" | "worker">): string[] {
  return [
    label,
    `${formatMs(cpu.total)} (${formatMs(cpu.postgres)} + ${formatMs(cpu.worker)})`,
    "",
    "",
  ];
}

function sessionsLabel(n: number): string {
  return `${n} session${n > 1 ? "s" : ""}`;
}

/** Case 3's figures against the minimal endpoint with `sessions` sessions, if it ran. */
function endpointThroughput(report: BenchReport, sessions: number): ThroughputResult | undefined {
  return report.throughput?.find((t) => t.target === "minimal endpoint" && t.sessions === sessions);
}

/**
 * The floor's rows. Its figures take the bridge's column; the direct column holds the same run's
 * direct figure, where cases 1 and 3 measured it.
 */
function floorRows(f: FloorResult, report: BenchReport): string[][] {
  const row = (label: string, floor: string, direct?: string, ratio?: number) => [
    `6. floor: ${label}`,
    floor,
    direct ?? "",
    ratio === undefined ? "" : formatRatio(ratio),
  ];
  const direct = report.single?.direct;
  const rows = [
    row(
      "single GET, 1 session: p50",
      formatMs(f.single.p50),
      direct && formatMs(direct.p50),
      direct && f.single.p50 / direct.p50,
    ),
    row(
      "single GET, 1 session: p99",
      formatMs(f.single.p99),
      direct && formatMs(direct.p99),
      direct && f.single.p99 / direct.p99,
    ),
    cpuRow("6. floor: CPU per call: PostgreSQL + worker", f.singleCpu),
  ];
  for (const loop of f.loops) {
    const t = endpointThroughput(report, loop.sessions);
    rows.push(row(
      `minimal endpoint, ${sessionsLabel(loop.sessions)} (calls/s)`,
      loop.callsPerSecond.toFixed(0),
      t?.direct.toFixed(0),
      t && loop.callsPerSecond / t.direct,
    ));
  }
  for (const loop of f.loops) {
    rows.push(
      cpuRow(`6. floor: CPU per call, minimal endpoint, ${sessionsLabel(loop.sessions)}`, loop.cpu),
    );
  }
  return rows;
}

/** The sum of `values`, a figure that could not be read (not finite) counting for nothing. */
function finiteSum(values: number[]): number {
  return values.reduce((sum, value) => sum + (Number.isFinite(value) ? value : 0), 0);
}

/**
 * A table of CPU by process: one row per part (`parts` labels them), one column per measurement,
 * and their total; a figure that could not be read shows as "-" and counts for nothing.
 */
function cpuByPartTable<P extends string>(
  title: string,
  parts: Record<P, string>,
  columns: { label: string; cpu: Record<P, number> }[],
  digits = 2,
): string {
  const rows = Object.entries(parts) as [P, string][];
  const cell = (value: number) => Number.isFinite(value) ? value.toFixed(digits) : "-";
  const total = (cpu: Record<P, number>) => finiteSum(rows.map(([part]) => cpu[part]));
  return markdownTable(
    [title, ...columns.map((c) => c.label)],
    [
      ...rows.map(([part, label]) => [label, ...columns.map((c) => cell(c.cpu[part]))]),
      ["total", ...columns.map((c) => cell(total(c.cpu)))],
    ],
  );
}

/** Where a bridge call's CPU goes, by process: the single GET and the loops against the endpoint. */
function bridgeCpuTable(report: BenchReport): string | undefined {
  const loops = (report.throughput ?? []).filter((t) => t.target === "minimal endpoint");
  const columns = [
    ...(report.single ? [{ label: "single GET", cpu: report.single.cpu.parts }] : []),
    ...loops.map((t) => ({ label: `endpoint, ${sessionsLabel(t.sessions)}`, cpu: t.cpu.parts })),
  ];
  if (columns.length === 0) return undefined;
  return cpuByPartTable("where a bridge call's CPU goes (ms per call)", BRIDGE_PARTS, columns);
}

/** Where a floor call's CPU goes, by process, in each measurement of case 6. */
function floorCpuTable(f: FloorResult): string {
  return cpuByPartTable("where a floor call's CPU goes (ms per call)", FLOOR_PARTS, [
    { label: "single GET", cpu: f.singleCpu.parts },
    ...f.loops.map((loop) => ({
      label: `endpoint, ${sessionsLabel(loop.sessions)}`,
      cpu: loop.cpu.parts,
    })),
  ]);
}

/** The bridge's figures over the floor's, where the same run measured both. */
function bridgeOverFloor(f: FloorResult, report: BenchReport): string {
  const ratios: string[] = [];
  const s = report.single;
  if (s) {
    ratios.push(
      `single GET p50 ${formatRatio(s.bridge.p50 / f.single.p50)}, ` +
        `p99 ${formatRatio(s.bridge.p99 / f.single.p99)}, ` +
        `CPU per call ${formatRatio(s.cpu.total / f.singleCpu.total)}`,
    );
  }
  for (const loop of f.loops) {
    const t = endpointThroughput(report, loop.sessions);
    if (!t) continue;
    ratios.push(
      `minimal endpoint, ${sessionsLabel(loop.sessions)}: ` +
        `calls/s ${formatRatio(t.bridge / loop.callsPerSecond)}, ` +
        `CPU per call ${formatRatio(t.cpu.total / loop.cpu.total)}`,
    );
  }
  return ratios.length > 0 ? `Bridge over floor in this run: ${ratios.join("; ")}.` : "";
}

/**
 * Rows of a lag's p50, p99 and max: to the row's commit, and to a direct watch's event. A direct
 * watch often has the event before the PATCH's answer: no ratio under 1 ms.
 */
function lagRows(label: string, lag: LagFigures, direct: LagFigures): string[][] {
  return (["p50", "p99", "max"] as const).map((key) => [
    `7. live: ${label}: ${key}`,
    formatMs(lag[key]),
    formatMs(direct[key]),
    direct[key] >= 1 ? formatRatio(lag[key] / direct[key]) : "",
  ]);
}

/**
 * Case 7's rows: the first sync against the direct paginated list, then figures with no direct
 * counterpart (the bridge's column only).
 */
function liveRows(l: LiveResult): string[][] {
  const { sync, lag, churn, etcdChurn } = l;
  const only = (label: string, value: string) => [`7. live: ${label}`, value, "", ""];
  return [
    [
      `7. live: first sync of ${sync.objects} ConfigMaps (direct: list in pages of 500)`,
      formatMs(sync.bridgeMs),
      formatMs(sync.directMs),
      formatRatio(sync.ratio),
    ],
    ...(sync.directStreamRuns.length > 0
      ? [[
        `7. live: first sync of ${sync.objects} ConfigMaps (direct: the streaming list it gets)`,
        formatMs(sync.bridgeMs),
        formatMs(sync.directStreamMs),
        formatRatio(sync.streamRatio),
      ]]
      : []),
    only(
      `worker peak RSS growth during a sync, the largest of ${sync.bridgeRuns.length} after ${sync.warmups} untimed (x one page, ${
        formatMB(sync.pageBytes)
      })`,
      `${formatMB(sync.workerPeakGrowth)} (${formatRatio(sync.peakGrowthOverPage)})`,
    ),
    ...lagRows(
      `lag at ${lag.targetRate} changes/s (${lag.changesPerSecond.toFixed(0)}/s made)`,
      lag.lag,
      lag.directLag,
    ),
    only(
      `churn, ${churn.loops} patch loops: events/s applied (patches/s)`,
      `${churn.eventsPerSecond.toFixed(0)} (${churn.changesPerSecond.toFixed(0)})`,
    ),
    ...lagRows("churn: lag", churn.lag, churn.directLag),
    only(
      `churn under the API server at ${etcdChurn.targetRate}/s, ${
        etcdChurn.batch === 1 ? "one object" : `${etcdChurn.batch} objects`
      } per etcd transaction: events/s applied (written/s)`,
      `${etcdChurn.eventsPerSecond.toFixed(0)} (${etcdChurn.changesPerSecond.toFixed(0)})`,
    ),
    ...lagRows("churn under the API server: lag", etcdChurn.lag, etcdChurn.directLag),
  ];
}

/** Where a batch's CPU went, per GET, on each side (case 2). */
function batchCpuTable(b: BatchResult): string {
  return cpuByPartTable(
    `where a batch's CPU goes (ms per GET, medians; ${navigator.hardwareConcurrency} cores)`,
    processLabels("the direct client"),
    [{ label: "bridge", cpu: b.cpuPerGet.bridge }, { label: "direct", cpu: b.cpuPerGet.direct }],
    3,
  );
}

/** The processes of a {@linkcode CpuByProcess}, with what the bench process did in the measurement. */
function processLabels(bench: string): Record<keyof CpuByProcess, string> {
  return {
    kubeApiserver: "kube-apiserver",
    etcd: "etcd",
    postgres: "PostgreSQL (every process)",
    worker: "worker",
    bench: `bench (${bench})`,
  };
}

/** Where the CPU went during case 7's churns, in seconds per second. */
function liveCpuTable(l: LiveResult): string {
  return cpuByPartTable(
    `CPU during the churn (s per s, ${l.churn.cores} cores)`,
    processLabels("the loops, LISTEN"),
    [{ label: "patches", cpu: l.churn.cpu }, { label: "etcd writes", cpu: l.etcdChurn.cpu }],
  );
}

/** Where the CPU of one list went (case 7's first sync against the direct paged list), in ms. */
function syncCpuTable(l: LiveResult): string {
  return cpuByPartTable(
    `CPU per list of ${l.sync.objects} ConfigMaps (ms, medians)`,
    processLabels("the direct client"),
    [
      { label: "first sync", cpu: l.sync.cpuPerSync },
      { label: "direct list", cpu: l.sync.cpuPerDirectList },
    ],
    0,
  );
}

/** Case 7's notes: the sync's memory and list mode, what was lost, the tables' end state. */
function liveNotes(l: LiveResult): string {
  const { sync, lag, churn, etcdChurn } = l;
  const notes = [
    `Worker RSS before the sync ${formatMB(sync.workerRssBefore)}, peak ${
      formatMB(sync.workerPeak)
    }` + (sync.peakReset ? "" : " (peak not resettable: lifetime peak)") + ".",
    `Syncs ${sync.bridgeRuns.map(formatMs).join(", ")}; direct lists ${
      sync.directRuns.map(formatMs).join(", ")
    } (${sync.pages} pages). ${
      {
        complete:
          "A streaming list through the worker's client is complete: the informer uses one.",
        refused: "The server refuses streaming lists: the informer lists in pages.",
        "ended early":
          "A streaming list through the worker's client ends before its initial state is " +
          "complete: the informer lists in pages.",
      }[sync.streamingList]
    }`,
    `Lag: from the PATCH's answer (under the API server: etcd's answer to the write) to the ` +
    `row's commit (direct: to the event on a watch).`,
    `Lag phase: ${lag.changes} patches of ${lag.objects} ConfigMaps, ${lag.missing} not seen ` +
    `committed (${lag.directMissing} not seen by the direct watch).`,
    ...[churn, etcdChurn].map((c) =>
      `Churn ${c.through === "api" ? "through the API" : "under the API server"}: ${c.changes} ` +
      `${
        c.through === "api" ? "patches" : "objects written into etcd"
      }, ${c.events} seen committed in ${
        c.seconds.toFixed(1)
      } s, ${c.missing} not seen (${c.directMissing} not seen by the direct watch).`
    ),
  ];
  const writes = (label: string, w: LiveResult["lag"]["writes"]) =>
    `${label}: ${w.transactions} write transactions, ${formatMs(w.meanMs)} each on average, ` +
    `${w.eventsPerTransaction.toFixed(1)} events each.`;
  notes.push(
    writes("Worker, lag phase", lag.writes),
    writes("Worker, churn", churn.writes),
    writes("Worker, churn under the API server", etcdChurn.writes),
  );
  const troubled = l.tables.filter((t) => t.state !== "live" || t.lastError || t.relists > 0);
  for (const t of troubled) {
    notes.push(
      `Live table ${t.table}: ${t.state}, ${t.relists} relists` +
        (t.lastError ? `, last error: ${t.lastError}` : "") + ".",
    );
  }
  return notes.join(" ");
}

/**
 * The report as a Markdown table: case, bridge, direct, ratio (bridge / direct), the floor's rows
 * with the floor in the bridge's column; then the tables and notes of the cases that ran.
 */
export function formatReport(report: BenchReport): string {
  const { single: s, batch: b, list: l, watch: w, floor: f } = report;
  const rows: string[][] = [];
  if (s) {
    rows.push(
      [
        "1. single GET, 1 session: p50",
        formatMs(s.bridge.p50),
        formatMs(s.direct.p50),
        formatRatio(s.bridge.p50 / s.direct.p50),
      ],
      [
        "1. single GET, 1 session: p99",
        formatMs(s.bridge.p99),
        formatMs(s.direct.p99),
        formatRatio(s.bridge.p99 / s.direct.p99),
      ],
      [
        "1. overhead (bridge - direct): p50 / p99",
        `${formatMs(s.overhead.p50)} / ${formatMs(s.overhead.p99)}`,
        "",
        "",
      ],
      cpuRow("1. CPU per call: PostgreSQL + worker", s.cpu),
    );
  }
  if (b) {
    const bridgeCpu = finiteSum(Object.values(b.cpuPerGet.bridge));
    const directCpu = finiteSum(Object.values(b.cpuPerGet.direct));
    rows.push(
      [
        `2. one api() of ${b.size} GETs (direct: ${b.concurrency} at once)`,
        formatMs(b.bridgeMs),
        formatMs(b.directMs),
        formatRatio(b.ratio),
      ],
      [
        "2. CPU per GET, every process",
        formatMs(bridgeCpu),
        formatMs(directCpu),
        formatRatio(bridgeCpu / directCpu),
      ],
    );
  }
  const throughput = report.throughput ?? [];
  for (const t of throughput) {
    rows.push([
      `3. ${t.target}, ${t.sessions} session${t.sessions > 1 ? "s" : ""} (calls/s)`,
      t.bridge.toFixed(0),
      t.direct.toFixed(0),
      formatRatio(t.ratio),
    ]);
  }
  for (const t of throughput.filter((t) => t.target === "minimal endpoint")) {
    const sessions = `${t.sessions} session${t.sessions > 1 ? "s" : ""}`;
    rows.push(cpuRow(`3. CPU per call, minimal endpoint, ${sessions}`, t.cpu));
  }
  if (l) {
    rows.push(
      [
        `4. list of ${l.items} ConfigMaps (${formatMB(l.responseBytes)})`,
        formatMs(l.bridgeMs),
        formatMs(l.directMs),
        formatRatio(l.ratio),
      ],
      [
        "4. worker peak RSS growth during the list (x response)",
        `${formatMB(l.workerPeakGrowth)} (${formatRatio(l.peakGrowthOverResponse)})`,
        "",
        "",
      ],
    );
  }
  if (w) {
    rows.push(
      [
        `5. watch, ${w.changes} changes: last write to return`,
        formatMs(w.bridge.lastWriteToReturnMs),
        formatMs(w.direct.lastWriteToReturnMs),
        "",
      ],
      [
        `5. watch: return after its ${w.timeoutSeconds} s timeout`,
        formatMs(w.bridge.afterDeadlineMs),
        formatMs(w.direct.afterDeadlineMs),
        "",
      ],
    );
  }
  if (f) rows.push(...floorRows(f, report));
  if (report.live) rows.push(...liveRows(report.live));
  if (report.async) rows.push(...asyncRows(report.async));
  const parts = [markdownTable(["case", "bridge", "direct", "ratio"], rows)];
  if (l || w) {
    parts.push(
      "",
      [
        l
          ? `Worker RSS before the list ${formatMB(l.workerRssBefore)}, peak ${
            formatMB(l.workerPeak)
          }` + (l.peakReset ? "" : " (peak not resettable: lifetime peak)") + "."
          : "",
        w ? `Watch writes took ${formatMs(w.writesMs)}.` : "",
      ].filter(Boolean).join(" "),
    );
  }
  if (s) {
    const p = s.profile;
    parts.push(
      "",
      markdownTable(
        ["phase of one bridge GET (medians)", "ms"],
        [
          ["enqueue: client to request row (api(), checks, dblink insert)", p.enqueue.toFixed(2)],
          ["dispatch, HTTP, write-back: row inserted to row updated", p.toResult.toFixed(2)],
          ["(of which HTTP, in the worker, mean)", p.http.toFixed(2)],
          ["wake + read: row updated to the client's answer", p.wakeRead.toFixed(2)],
          ["total (median)", p.total.toFixed(2)],
          ["(worker's statement writing results, mean)", p.completeStatement.toFixed(2)],
        ],
      ),
    );
  }
  const bridgeCpu = bridgeCpuTable(report);
  if (bridgeCpu) parts.push("", bridgeCpu);
  if (b) parts.push("", batchCpuTable(b));
  if (f) {
    const ratios = bridgeOverFloor(f, report);
    parts.push("", floorCpuTable(f), ...(ratios ? ["", ratios] : []));
  }
  if (report.live) {
    parts.push(
      "",
      syncCpuTable(report.live),
      "",
      liveCpuTable(report.live),
      "",
      liveNotes(report.live),
    );
  }
  return parts.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "string" },
      quick: { type: "boolean" },
      only: { type: "string" },
      help: { type: "boolean" },
    },
  });
  const only = values.only?.split(",").map((name) => name.trim());
  const unknown = only?.filter((name) => !(CASES as readonly string[]).includes(name)) ?? [];
  if (values.help || unknown.length > 0) {
    console.log(
      `Usage: deno task bench [--json FILE] [--quick] [--only CASE,...]\n` +
        `Cases: ${CASES.join(", ")}`,
    );
    Deno.exit(values.help ? 0 : 2);
  }
  log("starting PostgreSQL, etcd and kube-apiserver");
  // Without cluster B: an idle second API server would take from what is measured.
  const testbed = await startTestbed({ clusterB: false });
  let code = 0;
  try {
    const report = await runBench(testbed.env, {
      quick: values.quick,
      only: only as CaseName[] | undefined,
    });
    console.log(formatReport(report));
    if (values.json) {
      await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");
      log(`figures written to ${values.json}`);
    }
  } catch (error) {
    console.error(error);
    code = 1;
  } finally {
    await testbed.stop();
  }
  Deno.exit(code);
}
