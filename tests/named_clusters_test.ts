/**
 * Named clusters end to end, against the test bed's two API servers (A and B, each with its own
 * CA and tokens): calls routed by name, exec credential plugins (real executables), grants, two
 * workers serving different clusters of one database, and --explicit-servers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBridge } from "./bridge.ts";
import { dropRoles, eventually, sqlError, testbedEnv, uniqueName } from "./testbed.ts";

/** What every plugin below prints: a v1 ExecCredential with a token, optionally expiring. */
const PLUGIN = `#!/bin/sh
# Counts its runs; the first BAD_RUNS of them hand out a token the server refuses.
echo run >> "$COUNT_FILE"
runs=$(wc -l < "$COUNT_FILE")
token="$PLUGIN_TOKEN"
if [ "$runs" -le "\${BAD_RUNS:-0}" ]; then token=refused-token; fi
expiry=""
if [ -n "$EXPIRES_IN" ]; then
  expiry=",\\"expirationTimestamp\\":\\"$(date -u -d "+$EXPIRES_IN seconds" +%Y-%m-%dT%H:%M:%SZ)\\""
fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"%s}}\\n' "$token" "$expiry"
`;

/** A plugin that fails, printing something secret-looking on both outputs. */
const FAILING_PLUGIN = `#!/bin/sh
echo "plugin-secret-stdout-4711"
echo "plugin-secret-stderr-4711" >&2
exit 3
`;

async function writeExecutable(path: string, text: string): Promise<string> {
  await Deno.writeTextFile(path, text, { mode: 0o755 });
  return path;
}

async function runs(countFile: string): Promise<number> {
  try {
    return (await Deno.readTextFile(countFile)).split("\n").filter(Boolean).length;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

Deno.test("named clusters", async (t) => {
  const env = testbedEnv();
  const dir = await Deno.makeTempDir({ prefix: "omni_kube_clusters_test_" });
  const plugin = await writeExecutable(join(dir, "plugin.sh"), PLUGIN);
  const failing = await writeExecutable(join(dir, "failing.sh"), FAILING_PLUGIN);
  const count = (name: string) => join(dir, `${name}.runs`);
  const exec = (name: string, env: Record<string, string>) => ({
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command: plugin,
      env: Object.entries({ COUNT_FILE: count(name), ...env }).map(([name, value]) => ({
        name,
        value,
      })),
      interactiveMode: "Never",
    },
  });
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "a",
    clusters: [
      {
        name: "a",
        cluster: { server: env.KUBE_SERVER, "certificate-authority": env.KUBE_CA_FILE },
      },
      {
        name: "b",
        cluster: { server: env.KUBE_B_SERVER, "certificate-authority": env.KUBE_B_CA_FILE },
      },
    ],
    users: [
      { name: "a-admin", user: { token: env.KUBE_ADMIN_TOKEN } },
      { name: "a-limited", user: { token: env.KUBE_LIMITED_TOKEN } },
      { name: "b-admin", user: { token: env.KUBE_B_ADMIN_TOKEN } },
      { name: "b-exec", user: exec("b-exec", { PLUGIN_TOKEN: env.KUBE_B_ADMIN_TOKEN }) },
      {
        name: "b-expiring",
        user: exec("b-expiring", { PLUGIN_TOKEN: env.KUBE_B_ADMIN_TOKEN, EXPIRES_IN: "4" }),
      },
      {
        name: "b-rotated",
        user: exec("b-rotated", { PLUGIN_TOKEN: env.KUBE_B_ADMIN_TOKEN, BAD_RUNS: "1" }),
      },
      {
        name: "b-broken",
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1",
            command: failing,
            interactiveMode: "Never",
          },
        },
      },
    ],
    contexts: [
      { name: "a", context: { cluster: "a", user: "a-admin" } },
      { name: "a-limited", context: { cluster: "a", user: "a-limited" } },
      { name: "b", context: { cluster: "b", user: "b-admin" } },
      { name: "b-exec", context: { cluster: "b", user: "b-exec" } },
      { name: "b-expiring", context: { cluster: "b", user: "b-expiring" } },
      { name: "b-rotated", context: { cluster: "b", user: "b-rotated" } },
      { name: "b-broken", context: { cluster: "b", user: "b-broken" } },
    ],
  };
  const kubeconfigFile = join(dir, "kubeconfig.json");
  await Deno.writeTextFile(kubeconfigFile, JSON.stringify(kubeconfig), { mode: 0o600 });

  await using bridge = await startBridge("clusters", {
    kubeconfig: kubeconfigFile,
    clusterProbeMs: 500,
  });
  const { sql } = bridge;
  const member = `clusters_member_${crypto.randomUUID().slice(0, 8)}`;
  await sql`create role ${sql(member)} login in role omni_kube`;
  const asMember = bridge.connectAs(member);

  const namespace = uniqueName("only-in-b");

  try {
    await t.step("calls go to the cluster they name, with its credentials", async () => {
      await sql`select omni_kube.api('/api/v1/namespaces', cluster => 'b', method => 'POST',
                  body => jsonb_build_object('metadata', jsonb_build_object('name', ${namespace}::text)))`;
      const [b] = await sql`
        select omni_kube.api(${`/api/v1/namespaces/${namespace}`}, cluster => 'b') as ns`;
      assert.equal(b.ns.metadata.name, namespace);
      const [{ status }] = await sql`
        select status from omni_kube.api(array[${`/api/v1/namespaces/${namespace}`}],
                                         cluster => 'a')`;
      assert.equal(status, 404, "cluster A has no namespace made in cluster B");
      // The default cluster (no name) is A, as before.
      const [same] = await sql`
        select omni_kube.api('/api/v1/namespaces/kube-system') #>> '{metadata,uid}' as by_default,
               omni_kube.api('/api/v1/namespaces/kube-system', cluster => 'a')
                 #>> '{metadata,uid}' as by_name,
               omni_kube.api('/api/v1/namespaces/kube-system', cluster => 'b')
                 #>> '{metadata,uid}' as in_b`;
      assert.equal(same.by_default, same.by_name);
      assert.notEqual(same.by_name, same.in_b);
      // The limited context's token is the one sent: it may not list secrets.
      await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces/default/secrets', cluster => 'a-limited')`,
        "OK403",
      );
    });

    await t.step("a batch names one cluster per path", async () => {
      const rows = await sql`
        select r.response #>> '{metadata,uid}' as uid, r.status
          from omni_kube.api(array['/api/v1/namespaces/default', '/api/v1/namespaces/default',
                                   '/api/v1/namespaces/default'],
                             clusters => array['a', 'b', null]) r`;
      assert.deepEqual(rows.map((r) => r.status), [200, 200, 200]);
      assert.notEqual(rows[0].uid, rows[1].uid);
      assert.equal(rows[0].uid, rows[2].uid, "NULL is the default cluster, A");
    });

    await t.step(
      "cluster_resources lists across clusters, with the cluster of each object",
      async () => {
        const rows = await sql`
        select cluster, object #>> '{metadata,name}' as name
          from omni_kube.cluster_resources(array['a', 'b'], 'v1', 'namespaces')`;
        const where = (name: string) => rows.filter((r) => r.name === name).map((r) => r.cluster);
        assert.deepEqual(where(namespace), ["b"]);
        assert.deepEqual(where("kube-system").sort(), ["a", "b"]);
        // '{*}' is every cluster the caller may use: the limited context may not list namespaces,
        // and the broken plugin gives no credential, so the listing fails, naming the cluster.
        try {
          await sql`select count(*) from omni_kube.cluster_resources('{*}', 'v1', 'namespaces')`;
          assert.fail("a listing across every cluster, two of them failing, succeeded");
        } catch (error) {
          const e = error as { message: string; detail?: string; hint?: string };
          assert.match([e.message, e.detail, e.hint].join("\n"), /a-limited|b-broken/);
        }
      },
    );

    await t.step("an exec plugin runs once for 100 calls", async () => {
      await sql`select count(*) from generate_series(1, 50) i,
                  lateral omni_kube.api('/api/v1/namespaces/default', cluster => 'b-exec')`;
      const rows = await sql`
        select status from omni_kube.api(array_fill('/api/v1/namespaces/default'::text, array[50]),
                                         cluster => 'b-exec')`;
      assert.ok(rows.every((r) => r.status === 200));
      assert.equal(await runs(count("b-exec")), 1);
    });

    await t.step("an exec plugin runs again once its credential expires", async () => {
      await sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b-expiring')`;
      const before = await runs(count("b-expiring"));
      assert.ok(before >= 1);
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      await sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b-expiring')`;
      assert.ok(await runs(count("b-expiring")) > before);
    });

    await t.step("a 401 renews the plugin's credential and the call is tried again", async () => {
      const [{ ns }] = await sql`
        select omni_kube.api('/api/v1/namespaces/default', cluster => 'b-rotated') as ns`;
      assert.equal(ns.metadata.name, "default");
      assert.equal(await runs(count("b-rotated")), 2, "one refused credential, one renewed");
    });

    await t.step(
      "a failing plugin's error names the cluster and its status, not its output",
      async () => {
        const error = await sqlError(
          sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b-broken')`,
          "OKT01",
          /b-broken/,
        );
        const text = [error.message, error.detail, error.hint].join("\n");
        assert.match(text, /exit status 3/);
        assert.doesNotMatch(text, /plugin-secret/);
        const [row] = await sql`select last_error from omni_kube.clusters where name = 'b-broken'`;
        assert.doesNotMatch(String(row?.last_error), /plugin-secret/);
      },
    );

    await t.step(
      "omni_kube.clusters shows what the worker serves, never a credential",
      async () => {
        const rows = await eventually("every usable cluster probed", async () => {
          const rows = await sql`select * from omni_kube.clusters order by name`;
          return rows.filter((r) => r.name !== "b-broken").every((r) => r.reachable)
            ? rows
            : undefined;
        });
        const byName = new Map(rows.map((r) => [r.name, r]));
        assert.deepEqual([...byName.keys()].sort(), [
          "a",
          "a-limited",
          "b",
          "b-broken",
          "b-exec",
          "b-expiring",
          "b-rotated",
        ]);
        assert.equal(byName.get("a")!.server, env.KUBE_SERVER);
        assert.equal(byName.get("b")!.server, env.KUBE_B_SERVER);
        assert.equal(byName.get("b")!.auth, "token");
        assert.equal(byName.get("b-exec")!.auth, "exec");
        assert.match(byName.get("a")!.server_version, /^v1\.\d+\.\d+/);
        assert.deepEqual(byName.get("a")!.workers, [bridge.workers[0].id]);
        assert.match(byName.get("b-broken")!.last_error, /b-broken.*3|3.*b-broken/);
        const text = JSON.stringify(rows);
        for (
          const secret of [env.KUBE_ADMIN_TOKEN, env.KUBE_B_ADMIN_TOKEN, env.KUBE_LIMITED_TOKEN]
        ) {
          assert.ok(!text.includes(secret), "no token in omni_kube.clusters");
        }
      },
    );

    await t.step(
      "a role uses a named cluster once granted it, and no longer once revoked",
      async () => {
        await sqlError(
          asMember`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b')`,
          "42501",
          /may not use cluster "b"/,
        );
        const [{ granted }] = await asMember`
          select granted from omni_kube.clusters where name = 'b'`;
        assert.equal(granted, false);
        await sql`select omni_kube.grant_cluster('b', ${member})`;
        const [{ ns }] = await asMember`
        select omni_kube.api('/api/v1/namespaces/default', cluster => 'b') as ns`;
        assert.equal(ns.metadata.name, "default");
        await sqlError(asMember`select omni_kube.grant_cluster('a', ${member})`, "42501");
        await sql`select omni_kube.revoke_cluster('b', ${member})`;
        await sqlError(
          asMember`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b')`,
          "42501",
        );
      },
    );

    await t.step("bad uses of cluster => are refused where the call is made", async () => {
      await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'nowhere')`,
        "OKW04",
        /no worker serves cluster "nowhere"/,
      );
      await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b',
                                 server => ${env.KUBE_SERVER})`,
        "22023",
        /not both/,
      );
      await sqlError(
        sql`select * from omni_kube.api(array['/api', '/api'], clusters => array['a'])`,
        "2202E",
      );
    });

    await t.step("two workers with different clusters serve one database", async () => {
      const onlyB = join(dir, "only-b.json");
      await Deno.writeTextFile(
        onlyB,
        JSON.stringify({
          ...kubeconfig,
          "current-context": "b-second",
          contexts: [{ name: "b-second", context: { cluster: "b", user: "b-admin" } }],
        }),
        { mode: 0o600 },
      );
      const second = await bridge.startWorker({ kubeconfig: onlyB });
      const paths = Array(20).fill("/api/v1/namespaces/default");
      const rows = await sql`
        select status from omni_kube.api(${paths}::text[], cluster => 'b-second')`;
      assert.ok(rows.every((r) => r.status === 200));
      const [{ workers }] = await sql`
        select array_agg(distinct worker_id) as workers from omni_kube.request
         where cluster = 'b-second'`;
      assert.deepEqual(workers, [second.id], "only the worker that serves it claims it");
      const [{ a }] = await sql`
        select array_agg(distinct worker_id) as a from omni_kube.request where cluster = 'a'`;
      assert.deepEqual(a, [bridge.workers[0].id]);
      await second.stop();
      await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'b-second')`,
        "OKW04",
      );
    });

    await t.step(
      "--explicit-servers none refuses server =>, and named clusters still work",
      async () => {
        const strict = await bridge.startWorker({
          kubeconfig: kubeconfigFile,
          explicitServers: "none",
        });
        try {
          await sqlError(
            sql`select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
                                   token => ${env.KUBE_ADMIN_TOKEN})`,
            "42501",
            /no server named in SQL/,
          );
          await sqlError(
            sql`select omni_kube.api_async('/api/v1/namespaces/default', server => ${env.KUBE_SERVER})`,
            "42501",
            /no server named in SQL/,
          );
          const [{ ns }] = await sql`
          select omni_kube.api('/api/v1/namespaces/default', cluster => 'b') as ns`;
          assert.equal(ns.metadata.name, "default");
        } finally {
          await strict.stop();
        }
        // The policy is the live workers': with the strict one gone, a server may be named again.
        const [{ ns }] = await sql`
          select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
                               token => ${env.KUBE_ADMIN_TOKEN},
                               cacert => ${await Deno.readTextFile(env.KUBE_CA_FILE)}) as ns`;
        assert.equal(ns.metadata.name, "default");
        const [{ queued }] = await sql`
          select omni_kube.api_async('/api/v1/namespaces/default', server => ${env.KUBE_SERVER})
                   is not null as queued`;
        assert.equal(queued, true);
      },
    );

    await t.step("a context a worker cannot use is not served, and says why", async () => {
      const brokenFile = join(dir, "broken.json");
      await Deno.writeTextFile(
        brokenFile,
        JSON.stringify({
          ...kubeconfig,
          "current-context": "no-ca",
          clusters: [{
            name: "no-ca",
            cluster: {
              server: env.KUBE_B_SERVER,
              "certificate-authority": join(dir, "missing-ca.crt"),
            },
          }],
          contexts: [{ name: "no-ca", context: { cluster: "no-ca", user: "b-admin" } }],
        }),
        { mode: 0o600 },
      );
      const half = await bridge.startWorker({ kubeconfig: brokenFile });
      try {
        const error = await sqlError(
          sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'no-ca')`,
          "OKW04",
          /no worker can use cluster "no-ca"/,
        );
        assert.match(error.detail ?? "", /missing-ca\.crt/);
        const [row] = await sql`select workers, last_error from omni_kube.clusters
                                 where name = 'no-ca'`;
        assert.deepEqual(row.workers, []);
        assert.match(row.last_error, /missing-ca\.crt/);
      } finally {
        await half.stop();
      }
    });

    await t.step(
      "a worker that dies with a cluster's calls queued fails them at once",
      async () => {
        const soloFile = join(dir, "solo.json");
        await Deno.writeTextFile(
          soloFile,
          JSON.stringify({
            ...kubeconfig,
            "current-context": "solo",
            contexts: [{ name: "solo", context: { cluster: "b", user: "b-admin" } }],
          }),
          { mode: 0o600 },
        );
        const solo = await bridge.spawnWorker(["--kubeconfig", soloFile, "--http-port", "0"]);
        await eventually("the worker publishing solo", async () => {
          const [row] = await sql`select cardinality(workers) as n from omni_kube.clusters
                                 where name = 'solo'`;
          return row?.n === 1 ? true : undefined;
        });
        // Stopped, it still holds its locks (so the call is accepted) and claims nothing; killed,
        // its session ends, with the call still queued and the bridge's own worker alive.
        solo.kill("SIGSTOP");
        // (kill() returns before the signal has stopped every thread.)
        await eventually("the worker stopped", async () => {
          const states: string[] = [];
          for await (const { name } of Deno.readDir(`/proc/${solo.pid}/task`)) {
            const stat = await Deno.readTextFile(`/proc/${solo.pid}/task/${name}/stat`);
            states.push(stat.split(") ")[1]?.[0] ?? "?");
          }
          return states.every((state) => state === "T" || state === "t") ? true : undefined;
        });
        const call = sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'solo')`;
        const failed = sqlError(call, "OKW04", /cluster "solo"/);
        await eventually("the call queued", async () => {
          const [{ n }] = await sql`select count(*)::int as n from omni_kube.request
                                   where cluster = 'solo' and state = 'queued'`;
          return n === 1 ? true : undefined;
        });
        solo.kill("SIGKILL");
        await solo.status;
        // Not OKT02 after the 30 s request timeout: no live worker serves the cluster.
        await failed;
        const [{ state }] = await sql`select state::text from omni_kube.request
                                     where cluster = 'solo'`;
        assert.equal(state, "cancelled");
      },
    );
    await t.step("--default-context none: a call names its cluster or a server", async () => {
      await bridge.startWorker({ kubeconfig: kubeconfigFile, defaultContext: "none" });
      await bridge.workers[0].stop();
      await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces/default')`,
        "OKT01",
        /no server: name one/,
      );
      const [{ ns }] = await sql`
        select omni_kube.api('/api/v1/namespaces/default', cluster => 'a') as ns`;
      assert.equal(ns.metadata.name, "default");
    });
  } finally {
    await asMember.end();
    await dropRoles(sql, member);
    await Deno.remove(dir, { recursive: true });
  }
});
