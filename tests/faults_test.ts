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
