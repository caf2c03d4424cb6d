/**
 * Faults with real processes: PostgreSQL restarted under a running worker.
 * (This suite restarts a PostgreSQL of its own, not the shared one.)
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startPostgres } from "../testbed/postgres.ts";
import { startKubeCluster } from "../testbed/kube.ts";
import { DEFAULT_WORKER_CONFIG, Worker } from "../lib/worker.ts";
import { createLogger } from "../lib/observe.ts";
import { silentEndpoint, testbedEnv } from "./testbed.ts";
import { startBridge } from "./bridge.ts";
import { fileURLToPath } from "node:url";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("PostgreSQL restarted under a running worker: it reconnects and serves again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-faults-" });
  const server = await startPostgres(dir);
  const worker = new Worker({
    ...DEFAULT_WORKER_CONFIG,
    databaseUrl: server.url,
    kubeconfig: testbedEnv().KUBECONFIG,
    heartbeatMs: 200,
  }, createLogger("error"));
  try {
    await worker.start();
    const call = async () => {
      const sql = postgres(server.url, { max: 1, onnotice: () => {} });
      try {
        const [{ kind }] =
          await sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
        return kind;
      } finally {
        await sql.end();
      }
    };
    assert.equal(await call(), "Namespace");
    const reconnectsBefore = (await worker.metrics!.registry.getSingleMetricAsString(
      "omni_kube_database_reconnects_total",
    )).match(/ (\d+)$/m)?.[1];

    await server.restart();

    // The worker notices at its next heartbeat and reconnects; callers are told "no worker" until then.
    let answer: string | undefined;
    for (let i = 0; i < 100 && answer === undefined; i++) {
      answer = await call().catch(() => undefined);
      if (answer === undefined) await sleep(200);
    }
    assert.equal(answer, "Namespace");
    const reconnectsAfter = (await worker.metrics!.registry.getSingleMetricAsString(
      "omni_kube_database_reconnects_total",
    )).match(/ (\d+)$/m)?.[1];
    assert.ok(Number(reconnectsAfter) > Number(reconnectsBefore ?? 0));
    assert.equal(await worker.notReadyReason(), null);
  } finally {
    await worker.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an endpoint that never answers: bounded by request_timeout, worker stays healthy", async () => {
  await using silent = silentEndpoint();
  await using bridge = await startBridge("silent");
  const { port } = silent;
  const started = Date.now();
  const caller = postgres(bridge.url, { max: 1, onnotice: () => {} });
  await caller`set omni_kube.request_timeout = '1s'`;
  const error = await caller`
    select omni_kube.api('/api', server => ${`https://127.0.0.1:${port}`}, token => 'x')`
    .then(() => undefined, (e) => e);
  await caller.end();
  assert.equal(error?.code, "OKT01");
  assert.match(
    error.message,
    new RegExp(`request to https://127\\.0\\.0\\.1:${port} failed: timed out`),
  );
  assert.ok(Date.now() - started < 10_000);
  const [{ kind }] = await bridge
    .sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
  assert.equal(kind, "Namespace");
});

Deno.test("a caller cancelled mid-call: request cancelled, worker aborts, nothing left", async () => {
  await using silent = silentEndpoint();
  await using bridge = await startBridge("cancel");
  const { port } = silent;
  const caller = postgres(bridge.url, { max: 1, onnotice: () => {} });
  const [{ pid }] = await caller`select pg_backend_pid() as pid`;
  const call =
    caller`select omni_kube.api('/api', server => ${`https://127.0.0.1:${port}`}, token => 'x')`
      .execute().then(() => undefined, (e) => e);
  await sleep(500);
  await bridge.sql`select pg_cancel_backend(${pid})`;
  const error = await call;
  assert.equal(error?.code, "57014");
  const [request] = await bridge
    .sql`select state, error from omni_kube.request order by id desc limit 1`;
  assert.equal(request.state, "cancelled");
  assert.match(request.error, /cancelled the statement/);
  // The worker dropped the HTTP call: nothing is in flight, and the hung connection was closed.
  let inFlight = "";
  for (let i = 0; i < 50; i++) {
    inFlight = await bridge.workers[0].metrics!.registry.getSingleMetricAsString(
      "omni_kube_calls_in_flight",
    );
    if (/\{kind="api"\} 0/.test(inFlight)) break;
    await sleep(100);
  }
  assert.match(inFlight, /omni_kube_calls_in_flight\{kind="api"\} 0/);
  await caller.end();
});

Deno.test("load: 64 sessions x 200 calls, single and batch, each gets its own answer", async () => {
  await using bridge = await startBridge("load", { retentionSeconds: 1 });
  const namespace = `load-${crypto.randomUUID().slice(0, 8)}`;
  await bridge.sql`select omni_kube.api('/api/v1/namespaces', method => 'POST',
                     body => ${JSON.stringify({ metadata: { name: namespace } })}::text::jsonb)`;
  const maps = 50;
  const paths = Array.from({ length: maps }, () => `/api/v1/namespaces/${namespace}/configmaps`);
  const bodies = paths.map((_, i) =>
    JSON.stringify({ metadata: { name: `m${i}` }, data: { id: `${i}` } })
  );
  await bridge.sql`select * from omni_kube.api(${paths}::text[],
                     methods => array_fill('POST'::omni_kube.http_method, array[${maps}::int]),
                     bodies => ${bodies}::text[]::jsonb[])`;
  const path = (i: number) => `/api/v1/namespaces/${namespace}/configmaps/m${i}`;

  let answered = 0;
  const sessions = Array.from({ length: 64 }, (_, session) =>
    (async () => {
      const sql = postgres(bridge.url, { max: 1, onnotice: () => {} });
      try {
        for (let call = 0; call < 200;) {
          if (call % 4 === 3) {
            // A batch of five, counted as five calls.
            const ids = Array.from({ length: 5 }, (_, k) => (session * 7 + call + k * 11) % maps);
            const rows = await sql`select response from omni_kube.api(${ids.map(path)}::text[])`;
            assert.deepEqual(rows.map((r) => r.response.data.id), ids.map(String));
            call += 5;
            answered += 5;
          } else {
            const id = (session * 13 + call) % maps;
            const [{ got }] = await sql`select omni_kube.api(${
              path(id)
            }) -> 'data' ->> 'id' as got`;
            assert.equal(got, String(id));
            call += 1;
            answered += 1;
          }
        }
      } finally {
        await sql.end();
      }
    })());
  await Promise.all(sessions);
  assert.ok(answered >= 64 * 200);

  // Nothing lost or left running; after the retention period, nothing left at all.
  const [{ unfinished }] = await bridge.sql`
    select count(*)::int as unfinished from omni_kube.request where state in ('queued', 'running')`;
  assert.equal(unfinished, 0);
  let left = -1;
  for (let i = 0; i < 60 && left !== 0; i++) {
    await sleep(250);
    [{ left }] = await bridge.sql`select count(*)::int as left from omni_kube.request`;
  }
  assert.equal(left, 0);
});

Deno.test("worker killed with SIGKILL during 200 calls: no caller hangs, no POST runs twice", async () => {
  const env = testbedEnv();
  await using bridge = await startBridge("kill");
  for (const worker of bridge.workers.splice(0)) await worker.stop();
  const namespace = `kill-${crypto.randomUUID().slice(0, 8)}`;
  const spawn = () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MOD, "start", "--http-port", "0", "--concurrency", "8"],
      env: { DATABASE_URL: bridge.url, KUBECONFIG: env.KUBECONFIG },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  let worker = spawn();
  const alive = async () => {
    for (let i = 0; i < 300; i++) {
      const [{ up }] = await bridge.sql`select omni_kube._worker_alive() as up`;
      if (up) return;
      await sleep(100);
    }
    throw new Error("the worker did not start");
  };
  try {
    await alive();
    await bridge.sql`select omni_kube.api('/api/v1/namespaces', method => 'POST',
                       body => ${JSON.stringify({ metadata: { name: namespace } })}::text::jsonb)`;
    const outcomes: ("created" | "error")[] = [];
    const calls = Array.from({ length: 20 }, (_, session) =>
      (async () => {
        const sql = postgres(bridge.url, { max: 1, onnotice: () => {} });
        await sql`set omni_kube.request_timeout = '10s'`;
        try {
          for (let i = 0; i < 10; i++) {
            const body = JSON.stringify({
              metadata: { generateName: "k-", labels: { call: `${session}-${i}` } },
            });
            const outcome = await sql`
            select omni_kube.api(${`/api/v1/namespaces/${namespace}/configmaps`}, method => 'POST',
                                 body => ${body}::text::jsonb)`
              .then(() => "created" as const, () => "error" as const);
            outcomes.push(outcome);
          }
        } finally {
          await sql.end();
        }
      })());
    // Kill it once the calls are well under way: some done, most still to come.
    while (outcomes.length < 20) await sleep(10);
    worker.kill("SIGKILL");
    await worker.status;
    const started = Date.now();
    await Promise.all(calls);
    assert.equal(outcomes.length, 200, "every caller returned");
    assert.ok(outcomes.includes("error"), "the kill interrupted some calls");
    assert.ok(Date.now() - started < 60_000);

    worker = spawn();
    await alive();
    const [{ list }] = await bridge.sql`
      select omni_kube.api(${`/api/v1/namespaces/${namespace}/configmaps`}) as list`;
    const labels = list.items.map((item: { metadata: { labels?: { call?: string } } }) =>
      item.metadata.labels?.call
    ).filter(Boolean);
    assert.equal(new Set(labels).size, labels.length, "a POST ran twice");
    assert.ok(labels.length >= outcomes.filter((o) => o === "created").length);
  } finally {
    try {
      worker.kill("SIGTERM");
    } catch { /* already gone */ }
    await worker.status;
  }
});

Deno.test("kube-apiserver stopped, then started again: clear errors, then service", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-faults-kube-" });
  const kube = await startKubeCluster(dir, { controllers: false });
  try {
    await using bridge = await startBridge("kubedown", { kubeconfig: kube.kubeconfigFile });
    const call = () =>
      bridge.sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`
        .then(
          ([row]) => row.kind as string,
          (error) => error as { code?: string; message: string },
        );
    assert.equal(await call(), "Namespace");

    await kube.stopApiServer();
    const down = await call();
    assert.equal(typeof down, "object");
    assert.equal((down as { code?: string }).code, "OKT01");
    assert.match(
      (down as Error).message,
      new RegExp(`request to ${kube.server} failed: .*refused`, "i"),
    );

    await kube.startApiServer();
    let answer: unknown;
    for (let i = 0; i < 50 && answer !== "Namespace"; i++) {
      answer = await call();
      if (answer !== "Namespace") await sleep(200);
    }
    assert.equal(answer, "Namespace");
    assert.equal(await bridge.workers[0].notReadyReason(), null);
  } finally {
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
