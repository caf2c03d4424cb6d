/**
 * Faults with real processes: PostgreSQL restarted under a running worker.
 * (This suite restarts a PostgreSQL of its own, not the shared one.)
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startPostgres } from "../testbed/postgres.ts";
import { DEFAULT_WORKER_CONFIG, Worker } from "../lib/worker.ts";
import { createLogger } from "../lib/observe.ts";
import { testbedEnv } from "./testbed.ts";
import { startBridge } from "./bridge.ts";

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
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    await using bridge = await startBridge("silent");
    const { port } = silent.addr as Deno.NetAddr;
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
  } finally {
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test("a caller cancelled mid-call: request cancelled, worker aborts, nothing left", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    await using bridge = await startBridge("cancel");
    const { port } = silent.addr as Deno.NetAddr;
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
  } finally {
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});
