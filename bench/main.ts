/**
 * `deno task bench [--json FILE] [--quick]`: starts the test bed and the worker (as its own
 * process), warms up, and measures each case through the bridge and directly, printing one table
 * with both and their ratio (see README.md, "Measured").
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startTestbed, type TestbedEnvName } from "../testbed/mod.ts";
import { type Bed, startBed } from "./bed.ts";
import {
  batch,
  type BatchResult,
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
import { formatMB, formatMs, formatRatio, markdownTable } from "./stats.ts";

/** Everything one run measured (the `--json` file). */
export interface BenchReport {
  startedAt: string;
  quick: boolean;
  machine: { cpus: number; deno: string; os: string };
  sizes: Sizes;
  single: SingleResult;
  batch: BatchResult;
  throughput: ThroughputResult[];
  list: ListResult;
  watch: WatchResult;
}

function log(message: string) {
  console.error(`[bench] ${message}`);
}

/** Runs every case against the test bed described by `env` (see testbed/mod.ts). */
export async function runBench(
  env: Record<TestbedEnvName, string>,
  options: { quick?: boolean } = {},
): Promise<BenchReport> {
  const sizes = options.quick ? QUICK : FULL;
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-bench-" });
  let bed: Bed | undefined;
  try {
    bed = await startBed(env, dir);
    const startedAt = new Date().toISOString();
    log(`worker pid ${bed.worker.pid}; creating ${sizes.listSize} ConfigMaps`);
    const namespace = await createNamespace(bed, "bench-list");
    await createConfigMaps(bed, namespace, sizes.listSize);
    log("1. single GET");
    const singleResult = await single(bed, sizes);
    log("2. batch");
    const batchResult = await batch(bed, sizes, namespace);
    log("3. throughput");
    const throughputResult = await throughput(bed, sizes);
    log("4. list");
    const listResult = await list(bed, sizes, namespace);
    log("5. watch");
    const watchResult = await watch(bed, sizes);
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
    };
  } catch (error) {
    if (bed) log(`worker log: ${dir}/worker.log (kept)`);
    throw error;
  } finally {
    await bed?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The report as a Markdown table: case, bridge, direct, ratio (bridge / direct). */
export function formatReport(report: BenchReport): string {
  const { single: s, batch: b, list: l, watch: w } = report;
  const rows: string[][] = [
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
    [
      `2. one api() of ${b.size} GETs (direct: ${b.concurrency} at once)`,
      formatMs(b.bridgeMs),
      formatMs(b.directMs),
      formatRatio(b.ratio),
    ],
    ...report.throughput.map((t) => [
      `3. ${t.target}, ${t.sessions} session${t.sessions > 1 ? "s" : ""} (calls/s)`,
      t.bridge.toFixed(0),
      t.direct.toFixed(0),
      formatRatio(t.ratio),
    ]),
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
  ];
  const p = s.profile;
  const profile = markdownTable(
    ["phase of one bridge GET (medians)", "ms"],
    [
      ["enqueue: client to request row (api(), checks, dblink insert)", p.enqueue.toFixed(2)],
      ["notify + claim: row inserted to claimed", p.notifyClaim.toFixed(2)],
      ["HTTP: claimed to result, in the worker (mean)", p.http.toFixed(2)],
      ["write-back: result to row updated", p.writeBack.toFixed(2)],
      ["wake + read: row updated to the client's answer", p.wakeRead.toFixed(2)],
      ["total (median)", p.total.toFixed(2)],
      ["(worker's claim statement, mean)", p.claimStatement.toFixed(2)],
      ["(worker's complete statement, mean)", p.completeStatement.toFixed(2)],
    ],
  );
  return [
    markdownTable(["case", "bridge", "direct", "ratio"], rows),
    "",
    `Worker RSS before the list ${formatMB(l.workerRssBefore)}, peak ${formatMB(l.workerPeak)}` +
    (l.peakReset ? "" : " (peak not resettable: lifetime peak)") +
    `; watch writes took ${formatMs(w.writesMs)}.`,
    "",
    profile,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { json: { type: "string" }, quick: { type: "boolean" }, help: { type: "boolean" } },
  });
  if (values.help) {
    console.log("Usage: deno task bench [--json FILE] [--quick]");
    Deno.exit(0);
  }
  log("starting PostgreSQL, etcd and kube-apiserver");
  const testbed = await startTestbed();
  let code = 0;
  try {
    const report = await runBench(testbed.env, { quick: values.quick });
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
