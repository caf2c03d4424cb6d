/**
 * The worker as users run it (`deno run mod.ts start`, a separate process): it serves calls,
 * purges finished requests after the retention period, and when it is killed mid-call the caller
 * gets a clear error instead of hanging, and the call is not run again by the next worker.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { testbedEnv, uniqueName } from "./testbed.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

function spawnWorker(databaseUrl: string, args: string[] = []) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MOD, "start", ...args],
    env: { DATABASE_URL: databaseUrl, KUBECONFIG: testbedEnv().KUBECONFIG },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function waitForWorker(sql: postgres.Sql<Record<string, never>>) {
  for (let i = 0; i < 300; i++) {
    // The worker installs the shim first: until then the function does not exist.
    const [{ installed }] =
      await sql`select to_regprocedure('omni_kube._worker_alive(uuid)') is not null as installed`;
    if (installed) {
      const [{ alive }] = await sql`select omni_kube._worker_alive() as alive`;
      if (alive) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the worker did not start within 30 s");
}

Deno.test("worker process", async (t) => {
  const env = testbedEnv();
  const database = uniqueName("proc").replace("-", "_");
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin`create database ${admin(database)}`;
  const url = new URL(env.DATABASE_URL);
  url.pathname = `/${database}`;
  const sql = postgres(url.href, { max: 4, onnotice: () => {} });
  let worker = spawnWorker(url.href, ["--retention", "1"]);
  try {
    await waitForWorker(sql);

    await t.step(
      "serves calls; purges them after the retention period, and stray pieces",
      async () => {
        const [{ kind }] =
          await sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
        assert.equal(kind, "Namespace");
        // Pieces of a large response that a worker stopped before assembling.
        const [{ id }] = await sql`select max(id) as id from omni_kube.request`;
        await sql`insert into omni_kube.response_piece values (${id}, 0, 'left behind')`;
        let left = 1;
        for (let i = 0; i < 50 && left > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          [{ left }] = await sql`
          select (select count(*) from omni_kube.request)
               + (select count(*) from omni_kube.response_piece) as left`;
          left = Number(left);
        }
        assert.equal(left, 0);
      },
    );

    await t.step("killed mid-call: the caller gets an error; the call is not rerun", async () => {
      const name = uniqueName("killed");
      // A POST, then a watch that keeps the worker busy for 30 s.
      await sql`select omni_kube.api('/api/v1/namespaces/default/configmaps', method => 'POST',
                  body => ${JSON.stringify({ metadata: { name } })}::text::jsonb)`;
      const started = Date.now();
      const call =
        sql`select omni_kube.api('/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=30')`
          .then(() => undefined, (error) => error);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      worker.kill("SIGKILL");
      await worker.status;
      const error = await call;
      assert.ok(error, "the call should have failed");
      assert.equal(error.code, "OKW02");
      assert.match(error.message, /stopped before it finished/);
      assert.ok(Date.now() - started < 15_000, "the caller should not wait for the timeout");

      worker = spawnWorker(url.href);
      await waitForWorker(sql);
      const [{ count }] = await sql`
        select count(*)::int as count from omni_kube.request where state in ('queued', 'running')`;
      assert.equal(count, 0);
      const [{ got }] = await sql`
        select omni_kube.api(${`/api/v1/namespaces/default/configmaps/${name}`}) as got`;
      assert.equal(got.metadata.name, name);
    });
  } finally {
    try {
      worker.kill("SIGTERM");
    } catch { /* already gone */ }
    await worker.status;
    await sql.end();
    await admin`drop database ${admin(database)} with (force)`;
    await admin.end();
  }
});
