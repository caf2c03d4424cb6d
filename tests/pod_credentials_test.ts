/**
 * omni_kube.pod_credentials() and the in-pod default: a worker whose service-account directory holds
 * a token and CA publishes them, a call made with them reaches the API server, and the pod's
 * cluster is served by name as in-cluster.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBridge } from "./bridge.ts";
import { testbedEnv } from "./testbed.ts";

Deno.test("omni_kube.pod_credentials()", async (t) => {
  const env = testbedEnv();
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  const serviceAccountDir = await Deno.makeTempDir({ prefix: "omni_kube-sa-" });
  try {
    await Deno.writeTextFile(join(serviceAccountDir, "token"), `${env.KUBE_ADMIN_TOKEN}\n`);
    await Deno.writeTextFile(join(serviceAccountDir, "ca.crt"), caCert);
    await using bridge = await startBridge("pod", { serviceAccountDir });
    const { sql } = bridge;

    await t.step("returns the token and CA of the worker's pod", async () => {
      const [row] = await sql`select token, cacert from omni_kube.pod_credentials()`;
      assert.equal(row.token, env.KUBE_ADMIN_TOKEN);
      assert.equal(row.cacert, caCert);
    });

    await t.step("a call with them reaches the API server", async () => {
      const [{ kind }] = await sql`
        select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
          token => (omni_kube.pod_credentials()).token,
          cacert => (omni_kube.pod_credentials()).cacert) ->> 'kind' as kind`;
      assert.equal(kind, "Namespace");
    });

    await t.step("the pod's own cluster is served by name, as in-cluster", async () => {
      const [row] = await sql`
        select server, auth, workers from omni_kube.clusters where name = 'in-cluster'`;
      assert.equal(row?.server, "https://kubernetes.default.svc");
      assert.equal(row.auth, "token");
      assert.deepEqual(row.workers, [bridge.workers[0].id]);
    });

    await t.step("they are kept only in an unlogged table", async () => {
      const [{ persistence }] = await sql`
        select relpersistence as persistence from pg_class
         where oid = 'omni_kube.worker_pod_credentials'::regclass`;
      assert.equal(persistence, "u");
    });
  } finally {
    await Deno.remove(serviceAccountDir, { recursive: true });
  }
});
