/**
 * The test bed itself: the API server answers with each kind of credential and rejects the wrong
 * ones, cluster B is a cluster of its own, and PostgreSQL takes a round trip with dblink available.
 */
import assert from "node:assert/strict";
import { KubeHttp, type KubeTarget, KubeTransportError } from "../lib/kube/client.ts";
import { createCertificateAuthority } from "../testbed/pki.ts";
import { adminTarget, connectSuperuser, testbedEnv, uniqueName } from "./testbed.ts";

async function configMapRoundTrip(http: KubeHttp, target: KubeTarget) {
  const name = uniqueName("testbed");
  const collection = "/api/v1/namespaces/default/configmaps";
  const created = await http.fetch(target, {
    method: "POST",
    path: collection,
    body: JSON.stringify({ metadata: { name }, data: { greeting: "hello" } }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  assert.equal((await created.json()).metadata.name, name);

  const read = await http.fetch(target, { method: "GET", path: `${collection}/${name}` });
  assert.equal(read.status, 200);
  assert.deepEqual((await read.json()).data, { greeting: "hello" });

  const deleted = await http.fetch(target, { method: "DELETE", path: `${collection}/${name}` });
  assert.equal(deleted.status, 200, await deleted.clone().text());
  await deleted.body?.cancel();

  const gone = await http.fetch(target, { method: "GET", path: `${collection}/${name}` });
  assert.equal(gone.status, 404);
  assert.equal((await gone.json()).reason, "NotFound");
}

Deno.test("kube-apiserver: a ConfigMap is created, read and deleted with the admin token", async () => {
  using http = new KubeHttp();
  await configMapRoundTrip(http, await adminTarget());
});

Deno.test("kube-apiserver: the same with the admin client certificate", async () => {
  const env = testbedEnv();
  using http = new KubeHttp();
  await configMapRoundTrip(http, {
    server: env.KUBE_SERVER,
    caCert: await Deno.readTextFile(env.KUBE_CA_FILE),
    clientCert: {
      certificate: await Deno.readTextFile(env.KUBE_CLIENT_CERT_FILE),
      privateKey: await Deno.readTextFile(env.KUBE_CLIENT_KEY_FILE),
    },
  });
});

Deno.test("kube-apiserver: the limited token is authenticated but forbidden (403)", async () => {
  const target = { ...await adminTarget(), token: testbedEnv().KUBE_LIMITED_TOKEN };
  using http = new KubeHttp();
  const response = await http.fetch(target, { method: "GET", path: "/api/v1/namespaces" });
  assert.equal(response.status, 403);
  const status = await response.json();
  assert.equal(status.reason, "Forbidden");
  assert.match(status.message, /"limited" cannot list resource "namespaces"/);
});

Deno.test("kube-apiserver: an unknown token is rejected (401)", async () => {
  const target = { ...await adminTarget(), token: "not-a-valid-token" };
  using http = new KubeHttp();
  const response = await http.fetch(target, { method: "GET", path: "/api/v1/namespaces" });
  assert.equal(response.status, 401);
  assert.equal((await response.json()).reason, "Unauthorized");
});

Deno.test("kube-apiserver: TLS fails against a CA that did not sign the server", async () => {
  const otherCa = await createCertificateAuthority("some other CA");
  const target = { ...await adminTarget(), caCert: otherCa.certificate };
  using http = new KubeHttp();
  await assert.rejects(
    () => http.fetch(target, { method: "GET", path: "/api/v1/namespaces" }),
    (error) => {
      assert.ok(error instanceof KubeTransportError);
      assert.match(error.message, new RegExp(`^request to ${target.server} failed: .*certif`, "i"));
      return true;
    },
  );
});

Deno.test("kube-apiserver: the kubeconfig names the admin token and the run's CA", async () => {
  const env = testbedEnv();
  const config = JSON.parse(await Deno.readTextFile(env.KUBECONFIG));
  assert.equal(config.clusters[0].cluster.server, env.KUBE_SERVER);
  assert.equal(config.clusters[0].cluster["certificate-authority"], env.KUBE_CA_FILE);
  assert.equal(config.users[0].user.token, env.KUBE_ADMIN_TOKEN);
  assert.equal(config["current-context"], config.contexts[0].name);
});

Deno.test("cluster b: a namespace created there is not cluster a's, and it has no nodes", async () => {
  using http = new KubeHttp();
  const [a, b] = [await adminTarget("a"), await adminTarget("b")];
  assert.notEqual(a.server, b.server);
  const name = uniqueName("cluster-b");
  const created = await http.fetch(b, {
    method: "POST",
    path: "/api/v1/namespaces",
    body: JSON.stringify({ metadata: { name } }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  await created.body?.cancel();
  const inB = await http.fetch(b, { method: "GET", path: `/api/v1/namespaces/${name}` });
  assert.equal(inB.status, 200);
  await inB.body?.cancel();
  const inA = await http.fetch(a, { method: "GET", path: `/api/v1/namespaces/${name}` });
  assert.equal(inA.status, 404, "cluster a has cluster b's namespace");
  await inA.body?.cancel();

  // Cluster A's nodes are KWOK's; cluster B has none: nothing runs behind its API server.
  const nodes = async (target: KubeTarget) => {
    const response = await http.fetch(target, { method: "GET", path: "/api/v1/nodes" });
    assert.equal(response.status, 200);
    return (await response.json()).items.map((node: { metadata: { name: string } }) =>
      node.metadata.name
    );
  };
  assert.ok((await nodes(a)).length > 0);
  assert.deepEqual(await nodes(b), []);
});

Deno.test("cluster b: its limited token is forbidden (403), cluster a's tokens unknown (401)", async () => {
  const env = testbedEnv();
  const b = await adminTarget("b");
  using http = new KubeHttp();
  const limited = await http.fetch({ ...b, token: env.KUBE_B_LIMITED_TOKEN }, {
    method: "GET",
    path: "/api/v1/namespaces/default/secrets",
  });
  assert.equal(limited.status, 403);
  assert.match((await limited.json()).message, /"limited" cannot list resource "secrets"/);
  for (const token of [env.KUBE_ADMIN_TOKEN, env.KUBE_LIMITED_TOKEN]) {
    const response = await http.fetch({ ...b, token }, {
      method: "GET",
      path: "/api/v1/namespaces",
    });
    assert.equal(response.status, 401);
    await response.body?.cancel();
  }
});

Deno.test("cluster b: its CA is its own; cluster a's does not verify it", async () => {
  const b = await adminTarget("b");
  const target = { ...b, caCert: (await adminTarget("a")).caCert };
  assert.notEqual(target.caCert, b.caCert);
  using http = new KubeHttp();
  await assert.rejects(
    () => http.fetch(target, { method: "GET", path: "/api/v1/namespaces" }),
    (error) => {
      assert.ok(error instanceof KubeTransportError);
      assert.match(error.message, /certif/i);
      return true;
    },
  );
});

Deno.test("the fleet kubeconfig: contexts a and b as admin, a current, CA files by path", async () => {
  const env = testbedEnv();
  const config = JSON.parse(await Deno.readTextFile(env.KUBE_FLEET_KUBECONFIG));
  assert.equal(config["current-context"], "a");
  // deno-lint-ignore no-explicit-any -- kubeconfig JSON
  const entry = (list: any[], name: string) => list.find((item) => item.name === name);
  const expected = {
    a: [env.KUBE_SERVER, env.KUBE_CA_FILE, env.KUBE_ADMIN_TOKEN],
    b: [env.KUBE_B_SERVER, env.KUBE_B_CA_FILE, env.KUBE_B_ADMIN_TOKEN],
  };
  assert.deepEqual(config.contexts.map((c: { name: string }) => c.name), ["a", "b"]);
  for (const [name, [server, caFile, token]] of Object.entries(expected)) {
    const { context } = entry(config.contexts, name);
    const { cluster } = entry(config.clusters, context.cluster);
    assert.deepEqual(cluster, { server, "certificate-authority": caFile });
    assert.deepEqual(entry(config.users, context.user).user, { token });
  }
});

Deno.test("postgres: a round trip, with dblink to the same server", async () => {
  const sql = connectSuperuser();
  try {
    const [{ answer }] = await sql`select ${41}::int + 1 as answer`;
    assert.equal(answer, 42);
    const database = uniqueName("testbed").replace("-", "_");
    await sql`create database ${sql(database)}`;
    try {
      const scoped = connectSuperuser({ database });
      try {
        await scoped`create extension dblink`;
        // dblink opens a second session to the same database: the autonomous channel the shim needs.
        const [row] = await scoped`
          select value from dblink(${`dbname=${database} user=postgres port=${
          new URL(testbedEnv().DATABASE_URL).port
        } host=127.0.0.1`}, 'select current_database()') as t(value text)`;
        assert.equal(row.value, database);
      } finally {
        await scoped.end();
      }
    } finally {
      await sql`drop database ${sql(database)} with (force)`;
    }
    const [{ version }] = await sql`select current_setting('server_version_num')::int as version`;
    assert.ok(version >= 130000, `PostgreSQL ${version} is older than 13`);
  } finally {
    await sql.end();
  }
});
