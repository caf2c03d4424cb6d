/**
 * Async calls are never lost and never sent twice when they must not be: 1,000 POSTs of distinct
 * ConfigMaps, committed, then PostgreSQL crashed (immediate shutdown) under a running worker, then
 * that worker killed and another started. Every request ends in a final state within 30 s of the
 * restart; none is missing, and no name is created twice (no 409 AlreadyExists). Worker processes
 * as users run them, on a PostgreSQL of this suite's own, against the test bed's kube-apiserver.
 * And a worker stopped with SIGTERM queues again what it claimed ahead and had not sent.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { startPostgres } from "../testbed/postgres.ts";
import { createNamespace, eventually, testbedEnv } from "./testbed.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const REQUESTS = 1000;

/** A worker process on `url` (with `args`), once it serves. */
async function spawnWorker(
  sql: postgres.Sql<Record<string, never>>,
  url: string,
  args: string[] = [],
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MOD, "start", ...args],
    env: {
      DATABASE_URL: url,
      KUBECONFIG: testbedEnv().KUBECONFIG,
      OMNI_KUBE_LOG_LEVEL: Deno.env.get("OMNI_KUBE_LOG_LEVEL") ?? "error",
    },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await eventually("the worker to serve", async () => {
    const [{ alive }] = await sql`
      select coalesce(bool_or(omni_kube._worker_alive(id)), false) as alive
        from omni_kube.workers where pid = ${child.pid}`.catch(() => [{ alive: false }]);
    return alive ? true : undefined;
  }, 60_000);
  return child;
}

/** Requests in each state. */
async function states(sql: postgres.Sql<Record<string, never>>): Promise<Record<string, number>> {
  const rows = await sql`
    select state::text, count(*)::int from omni_kube.async_request group by state`;
  return Object.fromEntries(rows.map((r) => [r.state, r.count]));
}

/** Kills the workers still running, then stops the suite's PostgreSQL and removes its directory. */
async function tearDown(
  workers: Deno.ChildProcess[],
  sql: postgres.Sql<Record<string, never>>,
  server: Awaited<ReturnType<typeof startPostgres>>,
  dir: string,
): Promise<void> {
  for (const worker of workers) {
    try {
      worker.kill("SIGKILL");
    } catch { /* it had exited */ }
    await worker.status;
  }
  await sql.end({ timeout: 2 });
  await server.stop();
  if (Deno.env.get("KEEP_DIR")) console.log("kept", dir);
  else await Deno.remove(dir, { recursive: true });
}

Deno.test("async POSTs survive a PostgreSQL crash and a worker kill: none lost, none sent twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-async-durability-" });
  const server = await startPostgres(dir);
  const sql = postgres(server.url, { max: 2, onnotice: () => {} });
  const workers: Deno.ChildProcess[] = [];
  try {
    // Two calls at a time: slow enough to crash and kill in the middle of the thousand.
    workers.push(await spawnWorker(sql, server.url, ["--async-concurrency", "2"]));
    const namespace = await createNamespace(sql, "durable");
    const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
    // Committed as users commit what must not be lost (the test bed's server defaults to off).
    await sql.begin(async (tx) => {
      await tx`set local synchronous_commit = on`;
      await tx`
        select omni_kube.api_async(${configMaps}, method => 'POST',
                 body => jsonb_build_object('metadata', jsonb_build_object('name', 'cm-' || i)))
          from generate_series(1, ${REQUESTS}) i`;
    });
    const progressed = (done: number) => async () => {
      const counts = await states(sql).catch(() => ({} as Record<string, number>));
      return (counts.done ?? 0) >= done ? counts : undefined;
    };

    await eventually("a first share of the POSTs done", progressed(150));
    await server.crash();
    await eventually("more POSTs done after the crash", progressed(400), 60_000);
    workers[0].kill("SIGKILL");
    await workers[0].status;
    const restarted = Date.now();
    workers.push(await spawnWorker(sql, server.url));
    const final = await eventually("every request in a final state", async () => {
      const counts = await states(sql);
      return counts.queued || counts.running ? undefined : counts;
    }, 60_000);
    const settledMs = Date.now() - restarted;
    assert.ok(settledMs <= 30_000, `settled ${settledMs} ms after the restart`);

    // None missing: every committed request is there, done or failed.
    assert.equal((final.done ?? 0) + (final.failed ?? 0), REQUESTS, JSON.stringify(final));
    const outcomes = await sql`
      select status, error_code, count(*)::int from omni_kube.async_request
       group by status, error_code order by status, error_code`;
    // Done: created (201), never 409. Failed: only those whose outcome the kill left unknown.
    for (const { status, error_code: code } of outcomes) {
      assert.ok(
        (status === 201 && code === null) || (status === null && code === "OKQ02"),
        `unexpected outcome ${status} ${code}: ${JSON.stringify(outcomes)}`,
      );
    }
    // In the cluster: every 201 is there, nothing else but those of unknown outcome.
    const [{ list }] = await sql`select omni_kube.api(${configMaps}) as list`;
    const created = new Set(
      (list.items as { metadata: { name: string } }[]).map((item) => item.metadata.name),
    );
    const rows = await sql`
      select body -> 'metadata' ->> 'name' as name, status from omni_kube.async_request`;
    for (const { name, status } of rows) {
      if (status === 201) assert.ok(created.has(name), `${name} answered 201 but is missing`);
    }
    const names = new Set(rows.map((r) => r.name));
    for (const name of created) {
      if (name !== "kube-root-ca.crt") assert.ok(names.has(name), `${name} was never asked for`);
    }
    console.log(
      `after the restart: settled in ${settledMs} ms; ${JSON.stringify(outcomes)}`,
    );
  } finally {
    await tearDown(workers, sql, server, dir);
  }
});

Deno.test("a worker stopped with SIGTERM queues again the POSTs it claimed and had not sent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-async-stop-" });
  const server = await startPostgres(dir);
  const sql = postgres(server.url, { max: 2, onnotice: () => {} });
  const workers: Deno.ChildProcess[] = [];
  const requests = 300;
  try {
    // 16 slots: 8 more requests are claimed ahead, waiting for a slot, nearly all the time.
    workers.push(await spawnWorker(sql, server.url, ["--async-concurrency", "16"]));
    const namespace = await createNamespace(sql, "stopped");
    const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
    await sql`
      select omni_kube.api_async(${configMaps}, method => 'POST',
               body => jsonb_build_object('metadata', jsonb_build_object('name', 'cm-' || i)))
        from generate_series(1, ${requests}) i`;
    await eventually("a first share of the POSTs done", async () => {
      const counts = await states(sql);
      return (counts.done ?? 0) >= 50 ? counts : undefined;
    });
    workers[0].kill("SIGTERM");
    assert.equal((await workers[0].status).code, 0);

    // Those it was running finished; those it held ready are queued again, their attempt not
    // counted; none is of unknown outcome.
    const [stopped] = await sql`
      select count(*) filter (where state = 'running')::int as running,
             count(*) filter (where state = 'failed')::int as failed,
             count(*) filter (where state = 'queued' and claimed_at is not null)::int as requeued,
             count(*) filter (where state = 'queued' and attempts <> 0)::int as counted
        from omni_kube.async_request`;
    assert.deepEqual({ ...stopped, requeued: stopped.requeued > 0 }, {
      running: 0,
      failed: 0,
      requeued: true,
      counted: 0,
    });

    workers.push(await spawnWorker(sql, server.url));
    await eventually("every request done", async () => {
      const counts = await states(sql);
      return counts.done === requests ? counts : undefined;
    }, 60_000);
    // Each sent once: created, never 409, in one attempt.
    const outcomes = await sql`
      select status, attempts, count(*)::int from omni_kube.async_request
       group by status, attempts`;
    assert.deepEqual([...outcomes], [{ status: 201, attempts: 1, count: requests }]);
  } finally {
    await tearDown(workers, sql, server, dir);
  }
});
