/**
 * The benchmark harness (`deno task bench`) in its tiny configuration, so that it cannot rot: every
 * case runs and reports figures of a sane shape. No timing is asserted.
 */
import assert from "node:assert/strict";
import { formatReport, runBench } from "../bench/main.ts";
import { busiestThreadSeconds, cpuSeconds, threadCpuSeconds } from "../bench/bed.ts";
import { QUICK } from "../bench/cases.ts";
import { markdownTable, percentile } from "../bench/stats.ts";
import { testbedEnv } from "./testbed.ts";

function assertPositive(value: number, what: string) {
  assert.ok(
    Number.isFinite(value) && value > 0,
    `${what} should be a positive number, got ${value}`,
  );
}

Deno.test("bench: percentiles and tables", () => {
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile([5, 1, 4, 2, 3], 99), 5);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(
    markdownTable(["a", "bb"], [["ccc", "d"]]),
    "| a   | bb |\n| --- | -- |\n| ccc | d  |",
  );
});

Deno.test("bench: the busiest thread is the one that ran, within its process", async () => {
  const [threads, process] = [await threadCpuSeconds(Deno.pid), await cpuSeconds(Deno.pid)];
  const until = performance.now() + 100;
  while (performance.now() < until) { /* busy on the thread running this test */ }
  const [threadsAfter, processAfter] = [
    await threadCpuSeconds(Deno.pid),
    await cpuSeconds(Deno.pid),
  ];
  const busiest = busiestThreadSeconds(threads, threadsAfter);
  assert.ok(busiest >= 0.05, `the busy 100 ms counted ${busiest} s`);
  assert.ok(
    busiest <= processAfter - process + 0.02,
    `${busiest} s, its process's ${processAfter - process} s`,
  );
  assert.equal((await threadCpuSeconds(2 ** 22 + 1)).size, 0, "a process that does not exist");
});

Deno.test("bench --quick: every case, through the bridge and directly", async () => {
  const report = await runBench(testbedEnv(), { quick: true });
  assert.equal(report.quick, true);

  const { single, batch, throughput, list, watch, floor, live } = report;
  const asyncCalls = report.async;
  assert.ok(
    single && batch && throughput && list && watch && floor && live && asyncCalls,
    "every case should have run",
  );
  assert.equal(single.calls, QUICK.singleCalls);
  for (const side of [single.bridge, single.direct]) {
    assertPositive(side.p50, "p50");
    assert.ok(side.p99 >= side.p50);
  }
  // Tens of calls cost tens of milliseconds of CPU: several of /proc's 10 ms ticks.
  assertPositive(single.cpu.total, "CPU per sequential call");
  const { parts, ...sides } = single.cpu;
  for (const [side, ms] of Object.entries({ ...sides, ...parts })) {
    assert.ok(Number.isFinite(ms) && ms >= 0, `CPU per call (${side}) should be >= 0, got ${ms}`);
  }
  for (const [phase, ms] of Object.entries(single.profile)) {
    assert.ok(Number.isFinite(ms), `profile phase ${phase} should be a number, got ${ms}`);
  }

  assert.equal(batch.size, QUICK.batchSize);
  assertPositive(batch.bridgeMs, "batch bridge time");
  assertPositive(batch.directMs, "batch direct time");
  for (const [side, cpu] of Object.entries(batch.cpuPerGet)) {
    for (const [process, ms] of Object.entries(cpu)) {
      assert.ok(Number.isFinite(ms) && ms >= 0, `batch ${side} CPU (${process}) should be >= 0`);
    }
  }

  assert.deepEqual(
    throughput.map((t) => `${t.target}/${t.sessions}`),
    ["kube-apiserver", "minimal endpoint"].flatMap((target) =>
      QUICK.concurrencies.map((n) => `${target}/${n}`)
    ),
  );
  for (const t of throughput) {
    assertPositive(t.bridge, `${t.target} x${t.sessions} bridge calls/s`);
    assertPositive(t.direct, `${t.target} x${t.sessions} direct calls/s`);
    assertPositive(t.cpu.total, `${t.target} x${t.sessions} CPU per call`);
  }

  assert.equal(list.items, QUICK.listSize);
  assertPositive(list.responseBytes, "list response size");
  assertPositive(list.bridgeMs, "list bridge time");
  assertPositive(list.workerPeak, "worker peak RSS");

  assert.equal(watch.changes, QUICK.watchChanges);
  // Every change seen on both sides, plus the closing bookmark.
  assert.equal(watch.bridge.events, QUICK.watchChanges + 1);
  assert.equal(watch.direct.events, QUICK.watchChanges + 1);

  assert.equal(floor.calls, QUICK.singleCalls);
  assertPositive(floor.single.p50, "floor p50");
  assert.ok(floor.single.p99 >= floor.single.p50);
  assert.deepEqual(floor.loops.map((loop) => loop.sessions), QUICK.concurrencies);
  for (const loop of floor.loops) {
    assertPositive(loop.callsPerSecond, `floor x${loop.sessions} calls/s`);
    assertPositive(loop.cpu.total, `floor x${loop.sessions} CPU per call`);
  }
  for (const cpu of [floor.singleCpu, ...floor.loops.map((loop) => loop.cpu)]) {
    for (const [part, ms] of Object.entries(cpu.parts)) {
      assert.ok(Number.isFinite(ms) && ms >= 0, `floor CPU (${part}) should be >= 0, got ${ms}`);
    }
  }

  assert.equal(live.sync.objects, QUICK.liveSyncSize);
  assertPositive(live.sync.bridgeMs, "live table's first sync");
  assertPositive(live.sync.directMs, "direct list");
  // A quick list of a few objects may take less than one of /proc's 10 ms ticks.
  for (
    const [side, cpu] of Object.entries({
      sync: live.sync.cpuPerSync,
      direct: live.sync.cpuPerDirectList,
    })
  ) {
    for (const [part, ms] of Object.entries(cpu)) {
      assert.ok(
        Number.isFinite(ms) && ms >= 0,
        `${side} list CPU (${part}) should be >= 0, got ${ms}`,
      );
    }
  }
  for (const phase of [live.lag, live.churn, live.etcdChurn]) {
    assert.equal(phase.missing, 0, "every change reaches the live table");
    assertPositive(phase.lag.p50, "lag p50");
    assert.ok(phase.lag.p99 >= phase.lag.p50);
  }
  assertPositive(live.lag.changes, "changes made at a steady rate");
  assertPositive(live.churn.events, "changes made by the churn");
  // Every write into etcd reached the table through the API server's watch, as its own writes do.
  assertPositive(live.etcdChurn.events, "changes written into etcd");
  assert.equal(live.etcdChurn.events, live.etcdChurn.changes);
  // Several objects per transaction, one revision: each is a change of its own on the watches.
  assert.equal(live.etcdChurn.batch, QUICK.liveEtcdBatch);
  assert.equal(live.etcdChurn.changes % QUICK.liveEtcdBatch, 0, "whole transactions written");
  for (const table of live.tables) {
    assert.deepEqual(
      { state: table.state, relists: table.relists, error: table.lastError },
      { state: "live", relists: 0, error: null },
      table.table,
    );
  }

  assert.equal(asyncCalls.requests, QUICK.asyncRequests);
  for (
    const [value, what] of [
      [asyncCalls.enqueueMs, "enqueue"],
      [asyncCalls.insertMs, "insert"],
      [asyncCalls.bridge, "async calls/s"],
      [asyncCalls.direct, "direct calls/s"],
      [asyncCalls.cpu.total, "async CPU per call"],
      [asyncCalls.allCpu.bridge, "async CPU per call, every process"],
    ] as const
  ) assertPositive(value, what);
  // The direct client's quick run is a few of /proc's 10 ms ticks long: it may show none.
  const { busiestThread, allCpu } = asyncCalls;
  for (
    const value of [
      busiestThread.bridge.cpu,
      busiestThread.bridge.busy,
      busiestThread.direct.cpu,
      busiestThread.direct.busy,
      allCpu.direct,
    ]
  ) assert.ok(Number.isFinite(value) && value >= 0, JSON.stringify({ busiestThread, allCpu }));

  const table = formatReport(report);
  for (
    const label of ["1. single GET", "2. one api()", "3. kube-apiserver", "3. minimal endpoint"]
  ) {
    assert.match(table, new RegExp(label.replace(/[.()]/g, "\\$&")));
  }
  assert.match(table, /1\. CPU per call: PostgreSQL \+ worker/);
  assert.match(table, /8\. async: \d+ committed GETs/);
  assert.match(table, /8\. async: CPU per call: the worker's JavaScript thread/);
  assert.match(table, /3\. CPU per call, minimal endpoint, 32 sessions/);
  assert.match(table, /4\. list of/);
  assert.match(table, /5\. watch/);
  assert.match(table, /6\. floor: single GET, 1 session: p50/);
  assert.match(table, /6\. floor: CPU per call, minimal endpoint, 32 sessions/);
  assert.match(table, /7\. live: first sync of/);
  assert.match(table, /7\. live: lag at 200 changes\/s/);
  assert.match(table, /where a bridge call's CPU goes/);
  assert.match(table, /where a floor call's CPU goes/);
  assert.match(table, /2\. CPU per GET, every process/);
  assert.match(table, /where a batch's CPU goes \(ms per GET/);
  assert.match(table, /CPU per list of \d+ ConfigMaps/);
  assert.match(
    table,
    /churn under the API server at \d+\/s, (one object|\d+ objects) per etcd transaction/,
  );
  assert.match(table, /Bridge over floor in this run/);
  assert.doesNotMatch(table, /NaN|undefined/);
});
