/**
 * The test bed's kubeconfigs as the database server reads them: a superuser's
 * `omni_kube.load_kubeconfig()` of `$KUBECONFIG` or `$KUBE_FLEET_KUBECONFIG` works as they are,
 * though the server may run as another OS user (as root it does), and none of the keys or token
 * files is readable by anyone else.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { KubeHttp } from "../lib/kube/client.ts";
import { serverIdentity } from "../testbed/postgres.ts";
import { startBridge } from "./bridge.ts";
import { adminTarget, sqlError, testbedEnv, uniqueName } from "./testbed.ts";

/** One session of the bridge's database as the superuser: settings are per session. */
function session(url: string) {
  return postgres(url, { max: 1, onnotice: () => {} });
}

Deno.test("load_kubeconfig($KUBECONFIG) as the superuser: api() then calls as cluster a's admin", async () => {
  const env = testbedEnv();
  await using bridge = await startBridge("tb_kubeconfig");
  const db = session(bridge.url);
  try {
    const [{ context }] = await db`
      select omni_kube.load_kubeconfig(${env.KUBECONFIG}::text) as context`;
    assert.equal(context, "admin@testbed");
    const [settings] = await db`
      select current_setting('omni_kube.server') as server,
             current_setting('omni_kube.token') as token,
             current_setting('omni_kube.cacert') as cacert`;
    assert.deepEqual(settings, {
      server: env.KUBE_SERVER,
      token: env.KUBE_ADMIN_TOKEN,
      cacert: await Deno.readTextFile(env.KUBE_CA_FILE),
    });
    const [{ kind }] = await db`
      select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
    assert.equal(kind, "Namespace");
  } finally {
    await db.end();
  }
});

Deno.test("load_kubeconfig($KUBE_FLEET_KUBECONFIG): context a by default, context b reaches cluster b", async () => {
  const env = testbedEnv();
  // A namespace only cluster B has: which cluster api() called is then plain.
  const name = uniqueName("fleet");
  using http = new KubeHttp();
  const created = await http.fetch(await adminTarget("b"), {
    method: "POST",
    path: "/api/v1/namespaces",
    body: JSON.stringify({ metadata: { name } }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  await created.body?.cancel();
  const path = `/api/v1/namespaces/${name}`;

  await using bridge = await startBridge("tb_fleet");
  const db = session(bridge.url);
  try {
    const [{ current }] = await db`
      select omni_kube.load_kubeconfig(${env.KUBE_FLEET_KUBECONFIG}::text) as current`;
    assert.equal(current, "a");
    const [a] = await db`select current_setting('omni_kube.server') as server`;
    assert.equal(a.server, env.KUBE_SERVER);
    await sqlError(db`select omni_kube.api(${path})`, "OK404");

    await db`select omni_kube.load_kubeconfig(${env.KUBE_FLEET_KUBECONFIG}::text, 'b')`;
    const [b] = await db`
      select current_setting('omni_kube.server') as server,
             current_setting('omni_kube.token') as token`;
    assert.deepEqual(b, { server: env.KUBE_B_SERVER, token: env.KUBE_B_ADMIN_TOKEN });
    const [{ found }] = await db`select omni_kube.api(${path}) -> 'metadata' ->> 'name' as found`;
    assert.equal(found, name);
  } finally {
    await db.end();
  }
});

Deno.test("the database server reads the kubeconfigs and CA files; keys and tokens are the test bed's alone", async () => {
  const env = testbedEnv();
  const readable = [
    env.KUBECONFIG,
    env.KUBE_FLEET_KUBECONFIG,
    env.KUBE_CA_FILE,
    env.KUBE_B_CA_FILE,
  ];
  const secret = [env.KUBE_CA_FILE, env.KUBE_B_CA_FILE].flatMap((caFile) =>
    ["serving.key", "client-ca.key", "admin-cert.key", "sa.key", "tokens.csv", "tokens.json"]
      .map((name) => join(dirname(caFile), name))
  );
  const modeOf = async (file: string) => ((await Deno.stat(file)).mode ?? 0) & 0o777;
  for (const file of readable) {
    assert.equal((await modeOf(file)) & 0o007, 0, `${file} is readable by others`);
  }
  for (const file of secret) {
    assert.equal((await modeOf(file)) & 0o077, 0, `${file} is readable by more than its owner`);
  }

  await using bridge = await startBridge("tb_files");
  for (const file of readable) {
    const [{ text }] = await bridge.sql`select pg_read_file(${file}) as text`;
    assert.equal(text, await Deno.readTextFile(file));
  }
  // As root the server runs as another OS user, whose group is let read exactly those files.
  const databaseUser = await serverIdentity();
  if (databaseUser) {
    for (const file of readable) {
      const info = await Deno.stat(file);
      assert.deepEqual([info.gid, await modeOf(file)], [databaseUser.gid, 0o640], file);
    }
    for (const file of secret) {
      await sqlError(bridge.sql`select pg_read_file(${file})`, "42501", /Permission denied/);
    }
  }
});
