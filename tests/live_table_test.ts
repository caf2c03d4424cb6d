/**
 * Live tables against the test bed's API server: the first sync, changes as they happen, owner's
 * rights for triggers, a dropped table, a relist after etcd compacted the table's version, a
 * worker killed during churn, and failover between workers.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { type Bridge, startBridge } from "./bridge.ts";
import {
  adminTarget,
  createNamespace,
  dropRoles,
  eventually,
  sqlError,
  testbedEnv,
  uniqueName,
} from "./testbed.ts";
import { KubeHttp, type KubeTarget, normalizeServer } from "../lib/kube/client.ts";

type Sql = postgres.Sql<Record<string, never>>;

/** Objects by uid, with their resourceVersions. */
type Versions = Map<string, string>;

/** A client of the API server of the test's own, so that changes need no worker. */
class Cluster implements Disposable {
  readonly #http = new KubeHttp();
  constructor(readonly target: KubeTarget) {}

  async call(method: "GET" | "POST" | "PATCH" | "DELETE", path: string, body?: unknown) {
    const response = await this.#http.fetch(this.target, {
      method,
      path,
      body: body === undefined ? undefined : JSON.stringify(body),
      patchType: method === "PATCH" ? "merge" : undefined,
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  /** The collection at `path` as a fresh list says: uid to resourceVersion, and the list's version. */
  async list(path: string): Promise<{ versions: Versions; resourceVersion: string }> {
    const list = await this.call("GET", path);
    return {
      versions: new Map(
        list.items.map((o: { metadata: { uid: string; resourceVersion: string } }) => [
          o.metadata.uid,
          o.metadata.resourceVersion,
        ]),
      ),
      resourceVersion: list.metadata.resourceVersion,
    };
  }

  [Symbol.dispose]() {
    this.#http.close();
  }
}

/** What `table` holds: uid to the resourceVersion of its object. */
async function tableVersions(sql: Sql, table: string): Promise<Versions> {
  const rows = await sql`
    select uid, resource -> 'metadata' ->> 'resourceVersion' as version from ${sql(table)}`;
  return new Map(rows.map((r) => [r.uid as string, r.version as string]));
}

function sameVersions(a: Versions, b: Versions): boolean {
  return a.size === b.size && [...a].every(([uid, version]) => b.get(uid) === version);
}

/** Waits until `table` is exactly what a fresh list of `path` says. */
async function converged(sql: Sql, cluster: Cluster, table: string, path: string, ms = 30_000) {
  let last = "";
  try {
    return await eventually(`${table} equal to a fresh list of ${path}`, async () => {
      const [held, fresh] = [await tableVersions(sql, table), (await cluster.list(path)).versions];
      last = `table ${held.size} objects, list ${fresh.size}`;
      return sameVersions(held, fresh) ? held : undefined;
    }, ms);
  } catch (error) {
    throw new Error(`${(error as Error).message}; ${last}`);
  }
}

async function liveRow(sql: Sql, table: string) {
  const [row] = await sql`select * from omni_kube.live_tables where table_name = ${table}`;
  return row;
}

const podTemplate = (name: string) => ({
  metadata: { name },
  template: { spec: { containers: [{ name: "c", image: "example" }] } },
});

const configMap = (name: string, data: Record<string, string> = {}) => ({
  metadata: { name },
  data,
});

Deno.test("live tables", async (t) => {
  await using bridge = await startBridge("live");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const namespace = await createNamespace(sql, "live");
  const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
  for (const name of ["one", "two", "three"]) {
    await cluster.call("POST", configMaps, configMap(name, { n: name }));
  }
  // Text the first list carries as the server's bytes: escapes, control and non-ASCII characters.
  const awkward = 'é "quoted" \\ back\\slash\n\ttab \u0001 😀 \u2028';
  await cluster.call("POST", configMaps, configMap("awkward", { text: awkward }));

  await t.step("live_table() fills the table and says when it is live", async () => {
    const [{ created }] = await sql`
      select omni_kube.live_table('cms', 'v1', 'configmaps', namespace => ${namespace}) as created`;
    assert.equal(created, "cms");
    await sql`select omni_kube.await_live('cms', 30)`;
    const fresh = await cluster.list(configMaps);
    assert.ok(sameVersions(await tableVersions(sql, "cms"), fresh.versions));
    const row = await liveRow(sql, "cms");
    assert.equal(row.state, "live");
    assert.equal(row.group_version, "v1");
    assert.equal(row.resource, "configmaps");
    assert.equal(row.namespace, namespace);
    assert.equal(Number(row.objects), fresh.versions.size);
    assert.ok(row.resource_version, "the table's version is kept");
    assert.ok(row.synced_at instanceof Date);
    assert.equal(row.relists, 0);
    assert.equal(row.worker_id, bridge.workers[0].id);
    // Rows are whole objects, as a watch gives them (kind and apiVersion included).
    const [one] = await sql`select name, namespace, resource from cms where name = 'one'`;
    assert.equal(one.namespace, namespace);
    assert.equal(one.resource.kind, "ConfigMap");
    assert.equal(one.resource.apiVersion, "v1");
    assert.deepEqual(one.resource.data, { n: "one" });
    const [{ resource }] = await sql`select resource from cms where name = 'awkward'`;
    assert.deepEqual(resource.data, { text: awkward });
  });

  await t.step("changes in the cluster reach the table", async () => {
    await cluster.call("POST", configMaps, configMap("four", { n: "4" }));
    await cluster.call("PATCH", `${configMaps}/one`, { data: { n: "1" } });
    await cluster.call("DELETE", `${configMaps}/two`);
    await converged(sql, cluster, "cms", configMaps);
    const names = await sql`select name, resource -> 'data' ->> 'n' as n from cms order by name`;
    assert.deepEqual(
      names.filter((r) => !["kube-root-ca.crt", "awkward"].includes(r.name)).map((r) =>
        `${r.name}=${r.n}`
      ),
      ["four=4", "one=1", "three=three"],
    );
    const row = await liveRow(sql, "cms");
    assert.ok(row.last_event_at instanceof Date);
    assert.equal(Number(row.objects), names.length);
  });

  await t.step("the README's trigger records a pod's phases as KWOK runs it", async () => {
    // The README's example, word for word but for the namespace.
    await sql.unsafe(`
      select omni_kube.live_table('pods', 'v1', 'pods', namespace => '${namespace}');
      create table pod_phases (uid text, name text, namespace text, phase text,
                               at timestamptz default now());
      create function record_phase() returns trigger language plpgsql as $$
      begin
        if tg_op = 'INSERT' or new.resource #>> '{status,phase}'
                               is distinct from old.resource #>> '{status,phase}' then
          insert into pod_phases (uid, name, namespace, phase)
          values (new.uid, new.name, new.namespace, new.resource #>> '{status,phase}');
        end if;
        return new;
      end $$;
      create trigger record_phase after insert or update on pods
        for each row execute function record_phase();`);
    await sql`select omni_kube.await_live('pods')`;
    await cluster.call("POST", `/api/v1/namespaces/${namespace}/pods`, {
      metadata: { name: "web" },
      spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
    });
    const phases = await eventually("the pod's phases recorded up to Running", async () => {
      const rows = await sql`select phase from pod_phases where name = 'web' order by at`;
      const phases = rows.map((r) => r.phase);
      return phases.includes("Running") ? phases : undefined;
    });
    assert.equal(phases[0], "Pending");
    assert.equal(phases.at(-1), "Running");
  });

  await t.step("members read, index and join it, but do not write it", async () => {
    await sql`create index on cms ((resource -> 'data' ->> 'n'))`;
    const [{ count }] = await sql`
      select count(*)::int as count from cms c join pg_namespace n on n.nspname = 'public'`;
    assert.ok(count >= 3);
    for (
      const write of [
        sql`insert into cms (uid, name, resource) values ('x', 'x', '{}')`,
        sql`update cms set name = 'renamed'`,
        sql`delete from cms`,
        sql`truncate cms`,
      ]
    ) {
      const error = await sqlError(write, "OKV01", /cms is a live table/);
      assert.match(error.hint!, /omni_kube\.api\(\) or a resource_view\(\)/);
    }
  });

  await t.step("an unknown resource is refused at once, and no table is left", async () => {
    const error = await sqlError(
      sql`select omni_kube.live_table('nothing', 'v1', 'nosuchthings')`,
      "OK404",
      /cannot mirror v1 nosuchthings/,
    );
    assert.match(error.hint!, /group_resources\('v1'\)/);
    const [{ exists }] = await sql`select to_regclass('nothing') is not null as exists`;
    assert.equal(exists, false);
  });

  await t.step("triggers run with the owner's rights, never the worker's", async () => {
    const member = uniqueName("live_member").replaceAll("-", "_");
    const other = uniqueName("live_other").replaceAll("-", "_");
    await sql`create role ${sql(member)} login in role omni_kube`;
    await sql`create role ${sql(other)} login in role omni_kube`;
    await sql`create schema ${sql(member)} authorization ${sql(member)}`;
    await sql`alter role ${sql(member)} set search_path = ${sql(member)}`;
    await sql`create table ${sql(`${other}_secrets`)} (secret text)`;
    await sql`alter table ${sql(`${other}_secrets`)} owner to ${sql(other)}`;
    const as = bridge.connectAs(member);
    try {
      await as`create table audit (name text, n text, by_role text, at timestamptz default now())`;
      await as`create function record() returns trigger language plpgsql as $$
                 begin
                   insert into audit (name, n, by_role)
                   values (new.name, new.resource -> 'data' ->> 'n', current_user);
                   return new;
                 end $$`;
      await as.unsafe(`select omni_kube.live_table('watched', 'v1', 'configmaps',
                                                   namespace => '${namespace}')`);
      await as`create trigger audit after insert or update on watched
                 for each row execute function record()`;
      await as`select omni_kube.await_live('watched')`;
      await cluster.call("PATCH", `${configMaps}/three`, { data: { n: "3" } });
      const [audited] = await eventually("the audit trigger ran", async () => {
        const rows = await as`select name, n, by_role from audit where name = 'three' and n = '3'`;
        return rows.length > 0 ? rows : undefined;
      });
      assert.equal(audited.by_role, member);

      // A trigger that tries the worker's rights: each attempt fails, and the table says why.
      for (
        const [attempt, expected] of [
          [
            `create role ${member}_evil superuser`,
            // (PostgreSQL 14 says the second.)
            /permission denied to create role|must be superuser to create superusers/,
          ],
          [`select count(*) from public.${other}_secrets`, /permission denied for table/],
          [`reset role`, /cannot set parameter "role" within security-definer function/],
          [`set session authorization postgres`, /cannot set parameter "session_authorization"/],
        ] as const
      ) {
        await as.unsafe(`create or replace function grab() returns trigger language plpgsql as $$
                           begin execute '${attempt.replaceAll("'", "''")}'; return new; end $$`);
        await as`create trigger grab after update on watched for each row execute function grab()`;
        await cluster.call("PATCH", `${configMaps}/three`, { data: { n: attempt.slice(0, 20) } });
        const row = await eventually(`the table shows why "${attempt}" failed`, async () => {
          const [row] = await as`select state, last_error from omni_kube.live_tables
                                  where table_name = 'watched'`;
          return row.state === "backoff" && expected.test(row.last_error ?? "") ? row : undefined;
        });
        assert.equal(row.state, "backoff");
        await as`drop trigger grab on watched`;
        await eventually("the table is live again", async () => {
          const [row] = await as`select state from omni_kube.live_tables
                                  where table_name = 'watched'`;
          return row.state === "live" ? true : undefined;
        });
      }
      // Nor can a member reach the writers, its own table's or another's.
      const [{ id }] = await sql`select l.id from omni_kube.live_registry l
                                  join pg_class c on c.oid = l.relation
                                 where c.relname = 'watched'`;
      await sqlError(as`select omni_kube._live_invoke(${id}, '[]', false)`, "42501");
      await sqlError(as.unsafe(`select omni_kube_live.write_${id}('[]', false)`), "42501");
      const [{ evil }] = await sql`
        select count(*)::int as evil from pg_roles where rolname = ${member + "_evil"}`;
      assert.equal(evil, 0);
      await converged(as, cluster, "watched", configMaps);

      // The member sees its own live tables only.
      const visible = await as`select table_name from omni_kube.live_tables`;
      assert.deepEqual([...visible].map((r) => r.table_name), ["watched"]);
      const others = bridge.connectAs(other);
      try {
        assert.equal((await others`select table_name from omni_kube.live_tables`).length, 0);
        // Granted the schema, it still cannot wait on the table as if it were its own.
        await sql`grant usage on schema ${sql(member)} to ${sql(other)}`;
        await sqlError(
          others.unsafe(`select omni_kube.await_live('${member}.watched', 1)`),
          "42704",
          /is not a live table of yours/,
        );
      } finally {
        await others.end();
      }
    } finally {
      await as.end();
      await dropRoles(sql, member, other);
      await sql`drop schema if exists ${sql(member)} cascade`;
    }
  });

  await t.step("await_live() raises with the last error when the table is not live", async () => {
    await sql`create function fail_always() returns trigger language plpgsql as $$
                begin raise exception 'the audit table is full'; end $$`;
    await sql`create trigger fail_always after update on cms
                for each row execute function fail_always()`;
    await cluster.call("PATCH", `${configMaps}/one`, { data: { n: "failing" } });
    const error = await eventually("await_live fails with the trigger's error", async () => {
      try {
        await sql`select omni_kube.await_live('cms', 1)`;
      } catch (error) {
        return error as { code: string; detail: string };
      }
    });
    assert.equal(error.code, "OKT02");
    assert.match(error.detail, /the audit table is full/);
    await sql`drop trigger fail_always on cms`;
    await sql`select omni_kube.await_live('cms', 30)`;
    await converged(sql, cluster, "cms", configMaps);
  });

  await t.step(
    "await_live() in the transaction that made the table says to commit first",
    async () => {
      const rollBack = new Error("roll back");
      await sql.begin(async (tx) => {
        await tx`select omni_kube.live_table('uncommitted', 'v1', 'configmaps',
                                           namespace => ${namespace})`;
        const error = await sqlError(
          tx`select omni_kube.await_live('uncommitted', 5)`,
          "55000",
          /made in this transaction/,
        );
        assert.match(error.hint!, /Commit first/);
        throw rollBack;
      }).catch((error) => {
        if (error !== rollBack) throw error;
      });
      const [{ exists }] = await sql`select to_regclass('uncommitted') is not null as exists`;
      assert.equal(exists, false);
    },
  );

  await t.step("a dropped table is mirrored no more, and leaves nothing behind", async () => {
    await sql`select omni_kube.live_table('short_lived', 'v1', 'configmaps',
                                          namespace => ${namespace})`;
    await sql`select omni_kube.await_live('short_lived')`;
    const [{ id }] = await sql`
      select l.id from omni_kube.live_registry l where l.relation = 'short_lived'::regclass`;
    assert.ok(bridge.workers[0].liveTables.includes(Number(id)));
    const [{ before }] = await sql`
      select to_regprocedure(${`omni_kube_live.write_${id}(jsonb, boolean)`}) as before`;
    assert.ok(before, "the table has its writer");
    await sql`drop table short_lived`;
    await eventually(
      "the worker stopped mirroring it",
      () => Promise.resolve(bridge.workers[0].liveTables.includes(Number(id)) ? undefined : true),
    );
    const [{ left }] = await sql`select count(*)::int as left from omni_kube.live_registry
                                  where id = ${id}`;
    assert.equal(left, 0);
    const [{ writer }] = await sql`
      select to_regprocedure(${`omni_kube_live.write_${id}(jsonb, boolean)`}) as writer`;
    assert.equal(writer, null, "its writer is gone too");
    // The other live tables go on.
    await cluster.call("POST", configMaps, configMap("after-drop"));
    await converged(sql, cluster, "cms", configMaps);
  });
});

/** Creates, changes and deletes ConfigMaps in `path` until stopped; returns what it did. */
function churn(cluster: Cluster, path: string, prefix: string) {
  let running = true;
  let operations = 0;
  const done = (async () => {
    const live: string[] = [];
    for (let i = 0; running; i++) {
      const name = `${prefix}-${i}`;
      await cluster.call("POST", path, configMap(name, { i: String(i) }));
      live.push(name);
      if (i % 3 === 1) await cluster.call("PATCH", `${path}/${live[0]}`, { data: { i: "x" } });
      if (i % 3 === 2) await cluster.call("DELETE", `${path}/${live.shift()}`);
      operations++;
    }
  })();
  return {
    get operations() {
      return operations;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The worker mirroring `table`. */
async function mirroredBy(sql: Sql, table: string): Promise<string | null> {
  const [row] = await sql`select worker_id from omni_kube.live_tables where table_name = ${table}`;
  return row?.worker_id ?? null;
}

async function workerOf(sql: Sql, process: Deno.ChildProcess): Promise<string> {
  const [row] = await sql`select id from omni_kube.workers where pid = ${process.pid}`;
  return row.id;
}

/** A bridge whose worker runs as a process of its own (to be killed); the in-process one stops. */
async function processBridge(prefix: string): Promise<Bridge> {
  const bridge = await startBridge(prefix);
  await bridge.workers[0].stop();
  return bridge;
}

Deno.test("live tables: a worker killed during churn, then another takes over and converges", async () => {
  await using bridge = await processBridge("live_kill");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const first = await bridge.spawnWorker(["--http-port", "0"]);
  const namespace = await createNamespace(sql, "live-kill");
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  await sql`select omni_kube.live_table('churned', 'v1', 'configmaps', namespace => ${namespace})`;
  await sql`select omni_kube.await_live('churned')`;
  assert.equal(await mirroredBy(sql, "churned"), await workerOf(sql, first));

  const changes = churn(cluster, path, "churn");
  await eventually("churn under way", () => Promise.resolve(changes.operations > 30 || undefined));
  first.kill("SIGKILL");
  await first.status;
  await eventually(
    "churn while no worker runs",
    () => Promise.resolve(changes.operations > 80 || undefined),
  );
  const [{ state }] =
    await sql`select state from omni_kube.live_tables where table_name = 'churned'`;
  assert.equal(state, "stopped");

  const second = await bridge.spawnWorker(["--http-port", "0"]);
  await eventually(
    "the new worker mirrors the table",
    async () => await mirroredBy(sql, "churned") === await workerOf(sql, second) || undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  await changes.stop();
  await converged(sql, cluster, "churned", path);
  // It resumed from the table's version: the watch's history still held it, so no relist.
  const [row] = await sql`select relists, state from omni_kube.live_tables
                           where table_name = 'churned'`;
  assert.equal(row.relists, 0);
  assert.equal(row.state, "live");
});

Deno.test("live tables: failover between two workers within seconds", async () => {
  await using bridge = await processBridge("live_failover");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const a = await bridge.spawnWorker(["--http-port", "0"]);
  const b = await bridge.spawnWorker(["--http-port", "0"]);
  const namespace = await createNamespace(sql, "live-failover");
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  await sql`select omni_kube.live_table('shared', 'v1', 'configmaps', namespace => ${namespace})`;
  await sql`select omni_kube.await_live('shared')`;
  const holder = await mirroredBy(sql, "shared");
  const [dying, surviving] = holder === await workerOf(sql, a) ? [a, b] : [b, a];
  const survivor = await workerOf(sql, surviving);
  // Exactly one mirrors it: the other has no informer for it (its writes would be refused).
  assert.notEqual(holder, survivor);

  dying.kill("SIGKILL");
  const killed = Date.now();
  await dying.status;
  await eventually(
    "the other worker takes the table over",
    async () => await mirroredBy(sql, "shared") === survivor || undefined,
    15_000,
  );
  const tookMs = Date.now() - killed;
  assert.ok(tookMs < 10_000, `taken over after ${tookMs} ms`);
  await cluster.call("POST", path, configMap("after-failover"));
  await converged(sql, cluster, "shared", path);
});

Deno.test("live tables: a relist after etcd compacted the table's version never shows a partial table", async () => {
  await using bridge = await startBridge("live_relist");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const etcd = testbedEnv() && Deno.env.get("OMNI_KUBE_TESTBED_ETCD_URL");
  assert.ok(etcd, "the test runner names the test bed's etcd");
  const namespace = await createNamespace(sql, "live-relist");
  // PodTemplates are served from etcd (no watch cache): a compacted version is gone at once.
  const path = `/api/v1/namespaces/${namespace}/podtemplates`;
  for (let i = 0; i < 40; i++) await cluster.call("POST", path, podTemplate(`before-${i}`));
  await sql`select omni_kube.live_table('templates', 'v1', 'podtemplates',
                                        namespace => ${namespace})`;
  await sql`select omni_kube.await_live('templates')`;
  const before = await tableVersions(sql, "templates");
  assert.equal(before.size, 40);

  // The worker stops with the table's version stored; meanwhile half the templates change and
  // etcd's history is compacted past that version.
  await bridge.workers[0].stop();
  for (let i = 0; i < 20; i++) await cluster.call("DELETE", `${path}/before-${i}`);
  for (let i = 0; i < 30; i++) await cluster.call("POST", path, podTemplate(`after-${i}`));
  const { versions: after, resourceVersion } = await cluster.list(path);
  const compaction = await fetch(`${etcd}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision: resourceVersion, physical: true }),
  });
  assert.ok(compaction.ok, `etcd compaction: HTTP ${compaction.status} ${await compaction.text()}`);

  // A reader looks all the time while a new worker relists: it sees the old table or the new one.
  let reading = true;
  const seen = new Set<string>();
  const reader = (async () => {
    const reads = bridge.connectAs("postgres");
    while (reading) {
      const held = await tableVersions(reads, "templates");
      if (sameVersions(held, before)) seen.add("before");
      else if (sameVersions(held, after)) seen.add("after");
      else assert.fail(`a reader saw ${held.size} templates, neither the old table nor the new`);
    }
  })();
  try {
    await bridge.startWorker();
    await converged(sql, cluster, "templates", path);
  } finally {
    reading = false;
    await reader;
  }
  assert.ok(seen.has("after"));
  const row = await liveRow(sql, "templates");
  assert.equal(row.relists, 1, "the expired version was listed again, once");
  assert.equal(row.state, "live");
  assert.equal(Number(row.objects), after.size);
});

Deno.test("live tables: what the worker's own credentials may not list is refused at once", async () => {
  const env = testbedEnv();
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-live-" });
  try {
    const kubeconfig = `${dir}/limited.yaml`;
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{
          name: "a",
          cluster: { server: env.KUBE_SERVER, "certificate-authority": env.KUBE_CA_FILE },
        }],
        users: [{ name: "limited", user: { token: env.KUBE_LIMITED_TOKEN } }],
        contexts: [{ name: "a", context: { cluster: "a", user: "limited" } }],
        "current-context": "a",
      }),
    );
    await using bridge = await startBridge("live_forbidden", { kubeconfig });
    const error = await sqlError(
      bridge.sql`select omni_kube.live_table('secrets', 'v1', 'secrets')`,
      "OK403",
      /cannot mirror v1 secrets/,
    );
    assert.match(error.hint!, /grant its account list and watch/);
    const [{ exists }] = await bridge.sql`select to_regclass('secrets') is not null as exists`;
    assert.equal(exists, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live tables: bookmarks keep a quiet table's version fresh", async () => {
  // Each watch runs 5 s; the server sends a bookmark 2 s before its end, if its watch cache of
  // the resource moved on meanwhile (changes elsewhere, as a busy cluster has all the time).
  await using bridge = await startBridge("live_bookmark", { liveWatchSeconds: 5 });
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const quiet = await createNamespace(sql, "live-quiet");
  const busy = `/api/v1/namespaces/${await createNamespace(sql, "live-busy")}/configmaps`;
  await sql`select omni_kube.live_table('quiet', 'v1', 'configmaps', namespace => ${quiet})`;
  await sql`select omni_kube.await_live('quiet')`;
  const created = await cluster.call("POST", busy, configMap("elsewhere"));
  // (Versions are opaque to clients; the test bed's are etcd's revisions, which only grow.)
  const after = BigInt(created.metadata.resourceVersion);
  let busyChanges = 0;
  const row = await eventually("the quiet table's version passes a change elsewhere", async () => {
    await cluster.call("PATCH", `${busy}/elsewhere`, { data: { n: String(++busyChanges) } });
    const row = await liveRow(sql, "quiet");
    return BigInt(row.resource_version) >= after ? row : undefined;
  }, 20_000);
  assert.equal(row.last_event_at, null, "no event reached the quiet table");
  assert.equal(row.state, "live");
  assert.equal(row.relists, 0);
});

Deno.test("live tables: only a worker whose own cluster is the table's server takes it over", async () => {
  const env = testbedEnv();
  await using bridge = await startBridge("live_server");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const namespace = await createNamespace(sql, "live-server");
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  await sql`select omni_kube.live_table('mine', 'v1', 'configmaps', namespace => ${namespace})`;
  await sql`select omni_kube.await_live('mine')`;
  assert.equal((await liveRow(sql, "mine")).server, normalizeServer(env.KUBE_SERVER));
  await bridge.workers[0].stop();

  // A worker whose own cluster is cluster b leaves it alone, beat after beat.
  const b = await bridge.startWorker({
    kubeconfig: env.KUBE_FLEET_KUBECONFIG,
    defaultContext: "b",
  });
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.deepEqual(b.liveTables, []);
  const row = await liveRow(sql, "mine");
  assert.equal(row.state, "stopped");
  assert.equal(row.worker_id, null);

  // One of cluster a takes it, and goes on from where the table was.
  await cluster.call("POST", path, configMap("while-stopped"));
  const a = await bridge.startWorker();
  await eventually(
    "cluster a's worker takes the table",
    async () => await mirroredBy(sql, "mine") === a.id || undefined,
  );
  await converged(sql, cluster, "mine", path);
  assert.equal((await liveRow(sql, "mine")).relists, 0);
});

Deno.test("live tables: with lists in pages, as from a server without streaming lists", async () => {
  await using bridge = await startBridge("live_pages", { liveStreamingLists: false });
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const etcd = Deno.env.get("OMNI_KUBE_TESTBED_ETCD_URL");
  assert.ok(etcd, "the test runner names the test bed's etcd");
  const namespace = await createNamespace(sql, "live-pages");
  const path = `/api/v1/namespaces/${namespace}/podtemplates`;
  // More than one page of 500 (and not many more: later tests list every namespace).
  for (let i = 0; i < 520; i += 40) {
    await Promise.all(
      Array.from({ length: 40 }, (_, k) => cluster.call("POST", path, podTemplate(`t-${i + k}`))),
    );
  }
  await sql`select omni_kube.live_table('paged', 'v1', 'podtemplates', namespace => ${namespace})`;
  await sql`select omni_kube.await_live('paged')`;
  const first = await cluster.list(path);
  assert.ok(sameVersions(await tableVersions(sql, "paged"), first.versions));
  const [one] = await sql`select resource from paged where name = 't-7'`;
  assert.equal(one.resource.kind, "PodTemplate");
  assert.equal(one.resource.apiVersion, "v1");
  assert.equal(Number((await liveRow(sql, "paged")).objects), 520);

  // A relist in pages: the version compacted away while the worker was stopped.
  await bridge.workers[0].stop();
  for (let i = 0; i < 10; i++) await cluster.call("DELETE", `${path}/t-${i}`);
  await cluster.call("POST", path, podTemplate("after"));
  const { resourceVersion } = await cluster.list(path);
  const compaction = await fetch(`${etcd}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision: resourceVersion, physical: true }),
  });
  assert.ok(compaction.ok, `etcd compaction: HTTP ${compaction.status} ${await compaction.text()}`);
  await bridge.startWorker({ liveStreamingLists: false });
  await converged(sql, cluster, "paged", path);
  const row = await liveRow(sql, "paged");
  assert.equal(row.relists, 1);
  assert.equal(Number(row.objects), 511);
  await cluster.call("DELETE", `/api/v1/namespaces/${namespace}`);
});

Deno.test("live tables: a list staged as 0.7.0 workers stage it, during a rolling upgrade", async () => {
  await using bridge = await startBridge("live_stage_compat");
  const staged = await bridge.sql.begin(async (tx) => {
    await tx`select omni_kube._live_stage_begin()`;
    // 0.7.0 sends a streaming list's events as one JSON array; pages stay as the server sent them.
    await tx`select omni_kube._live_stage_events(${
      JSON.stringify([
        {
          type: "ADDED",
          object: { kind: "ConfigMap", metadata: { uid: "u1", name: "a", namespace: "n" } },
        },
      ])
    }::text::jsonb)`;
    await tx`select omni_kube._live_stage_list(${
      JSON.stringify({
        kind: "ConfigMapList",
        apiVersion: "v1",
        metadata: { resourceVersion: "7" },
        items: [{ metadata: { uid: "u2", name: "b" } }],
      })
    })`;
    return await tx`select uid, name, namespace, resource from pg_temp.omni_kube_live_stage
                     order by uid`;
  });
  assert.deepEqual(staged.map((row) => ({ ...row })), [
    {
      uid: "u1",
      name: "a",
      namespace: "n",
      resource: { kind: "ConfigMap", metadata: { uid: "u1", name: "a", namespace: "n" } },
    },
    {
      uid: "u2",
      name: "b",
      namespace: null,
      resource: { kind: "ConfigMap", apiVersion: "v1", metadata: { uid: "u2", name: "b" } },
    },
  ]);
});

Deno.test("live tables: a first list that repeats an object is reconciled, not refused", async () => {
  await using bridge = await startBridge("live_first_repeat");
  const { sql } = bridge;
  const namespace = await createNamespace(sql, "live-repeat");
  // Pod templates: a new namespace has none, so the table stays empty until the list below.
  await sql`select omni_kube.live_table('repeat', 'v1', 'podtemplates', namespace => ${namespace})`;
  await sql`select omni_kube.await_live('repeat')`;
  const [{ id, resource_version }] = await sql`
    select l.id, l.resource_version from omni_kube.live_registry l
     where l.relation = 'repeat'::regclass`;
  const object = (version: string) => ({
    type: "ADDED",
    object: { kind: "PodTemplate", metadata: { uid: "u1", name: "t", resourceVersion: version } },
  });
  const added = await sql.begin(async (tx) => {
    await tx`select omni_kube._live_stage_begin()`;
    await tx`select omni_kube._live_stage_events(${
      JSON.stringify([object("1"), object("2")])
    }::text::jsonb)`;
    const [{ count }] = await tx`
      select omni_kube._live_apply(${id}, ${bridge.workers[0].id}::uuid, '[]'::jsonb,
                                   ${resource_version}, true) as count`;
    return Number(count);
  });
  assert.equal(added, 1);
  const rows = await sql`select uid, name from repeat`;
  assert.deepEqual(rows.map((row) => ({ ...row })), [{ uid: "u1", name: "t" }]);
});

Deno.test("live tables: an object PostgreSQL cannot store fails the list at once, with its reason", async () => {
  await using bridge = await startBridge("live_refused");
  const { sql } = bridge;
  using cluster = new Cluster(await adminTarget());
  const namespace = await createNamespace(sql, "live-refused");
  const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
  await cluster.call("POST", configMaps, configMap("a-fine", { n: "1" }));
  // jsonb cannot hold \u0000; the server keeps it. (Named to come after what live_table() reads.)
  await cluster.call("POST", configMaps, configMap("z-nul", { text: "a\u0000b" }));
  // Every later list of all ConfigMaps would hold it: it goes however this test ends.
  try {
    await sql`select omni_kube.live_table('refused', 'v1', 'configmaps', namespace => ${namespace})`;
    // Within seconds, not at the end of a wait for an answer postgres.js never gives.
    const row = await eventually("the list failed", async () => {
      const row = await liveRow(sql, "refused");
      return row.state === "backoff" && row.last_error ? row : undefined;
    }, 10_000);
    console.log(`last_error: ${row.last_error}`);
    assert.match(
      row.last_error,
      /^PostgreSQL refused an object of the list(: unsupported Unicode escape sequence)?\. jsonb cannot hold every JSON text \(a \\u0000 in a string/,
    );
    assert.doesNotMatch(row.last_error, /z-nul|a\\u0000b/, "the object's text stays out of errors");
    assert.equal(
      (await sql`select count(*)::int as n from refused`)[0].n,
      0,
      "nothing of the list",
    );
    // A list through api() says so too, rather than finding no objects.
    await sqlError(
      sql`select count(*) from omni_kube.resources('v1', 'configmaps', namespace => ${namespace})`,
      "22P05",
      /cannot hold as jsonb/,
    );
  } finally {
    await cluster.call("DELETE", `${configMaps}/z-nul`);
    await cluster.call("DELETE", `/api/v1/namespaces/${namespace}`);
  }
});
