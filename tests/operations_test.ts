/**
 * Running the worker for real: health and metrics endpoints, `deno task status`, and graceful
 * shutdown (watches end with what they saw, hung calls fail at once after the grace period).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startBridge } from "./bridge.ts";
import { eventually, silentEndpoint } from "./testbed.ts";
import { RELEASE } from "../lib/version.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

Deno.test("worker endpoints: /healthz, /readyz, /metrics", async () => {
  await using bridge = await startBridge("health", { httpPort: 0, httpHostname: "127.0.0.1" });
  const { port } = bridge.workers[0].httpAddress!;
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: response.status, text: await response.text() };
  };
  assert.deepEqual(await get("/healthz"), { status: 200, text: "ok\n" });
  assert.deepEqual(await get("/readyz"), { status: 200, text: "ready\n" });
  assert.equal((await get("/nowhere")).status, 404);

  await bridge.sql`select omni_kube.api('/api/v1/namespaces/default')`;
  await bridge.sql`select status from omni_kube.api(array['/api/v1/namespaces/nope'])`;
  // The in-flight gauge falls once a call's result is written, just after its caller has woken.
  const { status, text } = await eventually("no call in flight in /metrics", async () => {
    const metrics = await get("/metrics");
    return /^omni_kube_calls_in_flight\{kind="api"\} 0$/m.test(metrics.text) ? metrics : undefined;
  }, 5_000);
  assert.equal(status, 200);
  assert.match(text, /^omni_kube_queue_requests\{state="done"\} 2$/m);
  assert.match(text, /^omni_kube_call_results_total\{kind="api",status_class="2xx"\} 1$/m);
  assert.match(text, /^omni_kube_call_results_total\{kind="api",status_class="4xx"\} 1$/m);
  assert.match(text, /^omni_kube_call_duration_seconds_count\{kind="api",method="GET"\} 2$/m);
  assert.match(text, /^# TYPE omni_kube_database_reconnects_total counter$/m);
  assert.match(text, /^omni_kube_live_tables 0$/m);
  assert.match(text, /^# TYPE omni_kube_live_events_total counter$/m);
});

Deno.test("deno task status: release, queue depth, workers, named clusters, live tables, recent failures", async () => {
  await using bridge = await startBridge("status");
  await bridge.sql`select status from omni_kube.api(array['/api/v1/namespaces/nope'])`;
  await bridge.sql`select omni_kube.live_table('status_cms', 'v1', 'configmaps',
                                               namespace => 'kube-system')`;
  await bridge.sql`select omni_kube.await_live('status_cms')`;
  const [{ id }] = await bridge.sql`select omni_kube.api_async('/api/v1/namespaces/default') as id`;
  await bridge.sql`select omni_kube.result(${id})`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MOD, "status"],
    env: { DATABASE_URL: bridge.url },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  assert.match(text, new RegExp(`^Release: ${RELEASE.replaceAll(".", "\\.")} installed`, "m"));
  // The live table's first check of its resource is a call of its own; the last column is async.
  assert.match(text, /^done\s+2\s+1$/m);
  assert.match(text, /^queued\s+0\s+0$/m);
  assert.match(text, new RegExp(`^${bridge.workers[0].id}\\s+\\S+\\s+\\d+\\s+yes\\s`, "m"));
  assert.match(text, /\s404\s+GET\s+\/api\/v1\/namespaces\/nope/);
  assert.match(text, /^public\.status_cms\s+v1\/configmaps\s+live\s+\d+\s+-\s+0\s*$/m);
  // The bridge's worker serves the context of the test bed's kubeconfig by name.
  assert.match(text, /^admin@testbed\s+https:\/\/127\.0\.0\.1:\d+\s+token\s+\S+\s+\S+\s+1\b/m);
});

Deno.test("graceful shutdown: watches end with their bookmark, hung calls fail at once", async () => {
  // An endpoint that accepts connections and never answers.
  await using silent = silentEndpoint();
  await using bridge = await startBridge("shutdown", { shutdownGraceMs: 500 });
  const caller = bridge.connectAs("postgres");
  const watch =
    caller`select events, status from omni_kube.watch('v1', 'configmaps', timeout => 60)`
      .execute();
  const hung = bridge.sql`
    select omni_kube.api('/api', server => ${`https://127.0.0.1:${silent.port}`},
                         token => 'x')`.execute().then(() => undefined, (error) => error);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const stopping = Date.now();
  await bridge.workers.splice(0)[0].stop();
  const stoppedIn = Date.now() - stopping;

  const [{ events, status }] = await watch;
  assert.equal(status, 200);
  assert.equal(events.at(-1).type, "BOOKMARK");
  assert.ok(events.at(-1).object.metadata.resourceVersion);
  const error = await hung;
  assert.equal(error?.code, "OKT01");
  assert.match(error.message, /shut down before the call finished/);
  // Not the 30 s request timeout: the grace period, then at once.
  assert.ok(stoppedIn < 10_000, `stop took ${stoppedIn} ms`);
  await caller.end();
});
