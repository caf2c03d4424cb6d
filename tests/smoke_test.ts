/**
 * A smoke subset, quick enough to run on every PostgreSQL major and Kubernetes version CI covers
 * (`OMNI_KUBE_PG=14 deno task test tests/smoke_test.ts`, `deno task test:compat`): api() single
 * and batch, watch(), a resource table (created, refreshed, written to, and a transactional one),
 * a live table, a non-superuser member's call, and a call inside a REPEATABLE READ transaction. Each feature is
 * covered in depth by its own suite.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, dropRoles, eventually, uniqueName } from "./testbed.ts";

Deno.test("smoke", async (t) => {
  await using bridge = await startBridge("smoke");
  const { sql } = bridge;
  const [{ server }] = await sql`select current_setting('server_version') as server`;
  console.error(`smoke: PostgreSQL ${server}`);
  const namespace = await createNamespace(sql, "smoke");
  const collection = `/api/v1/namespaces/${namespace}/configmaps`;
  // What the test makes carries this label, and what it reads selects it: controllers of the
  // cluster may add ConfigMaps of their own to the namespace (kube-root-ca.crt).
  const labels = { "omni-kube-smoke": "yes" };
  const selected = "omni-kube-smoke=yes";
  const create = (name: string, v = "1") =>
    sql`select omni_kube.api(${collection}, method => 'POST',
          body => ${JSON.stringify({ metadata: { name, labels }, data: { v } })}::text::jsonb)`;
  /** The cluster's copy of a ConfigMap of the namespace: its `data.v`, or null when there is none. */
  const inCluster = async (name: string) => {
    const [{ status, response }] = await sql`
      select status, response from omni_kube.api(array[${`${collection}/${name}`}])`;
    if (status === 404) return null;
    assert.equal(status, 200);
    return response.data?.v ?? "";
  };

  await t.step("api(): a single GET", async () => {
    const [{ ns }] = await sql`select omni_kube.api('/api/v1/namespaces/default') as ns`;
    assert.equal(ns.kind, "Namespace");
    assert.equal(ns.metadata.name, "default");
  });

  await t.step("api(): a batch, one row per path in input order", async () => {
    const rows = await sql`
      select status, response from omni_kube.api(
        array['/api/v1/namespaces/default', ${`/api/v1/namespaces/${namespace}`},
              '/api/v1/namespaces/smoke-nowhere'])`;
    assert.deepEqual(rows.map((r) => r.status), [200, 200, 404]);
    assert.equal(rows[1].response.metadata.name, namespace);
    assert.equal(rows[2].response.reason, "NotFound");
  });

  await t.step("watch(): from a saved resourceVersion, the ConfigMap created since", async () => {
    const [{ rv }] = await sql`
      select omni_kube.api(${collection}) -> 'metadata' ->> 'resourceVersion' as rv`;
    const name = uniqueName("watched");
    await create(name);
    const [{ status, events }] = await sql`
      select status, events from omni_kube.watch('v1', 'configmaps', ${rv},
               namespace => ${namespace}, label_selector => ${selected}, timeout => 2)`;
    assert.equal(status, 200);
    const changes = (events as { type: string; object: { metadata: { name?: string } } }[])
      .filter((e) => e.type !== "BOOKMARK").map((e) => `${e.type} ${e.object.metadata.name}`);
    assert.deepEqual(changes, [`ADDED ${name}`]);
  });

  await t.step("a resource table: created, refreshed, written through", async () => {
    const inNamespace = `metadata.namespace=${namespace}`;
    await sql`select omni_kube.resource_table('smoke_cm', 'v1', 'configmaps',
                field_selector => ${inNamespace}, label_selector => ${selected})`;
    const names = async () =>
      (await sql`select name from smoke_cm order by name`).map((r) => r.name as string);
    const before = await names();
    assert.ok(before.length > 0, "the table starts with what the cluster has");

    const outside = uniqueName("outside");
    await create(outside);
    const refreshed = await sql`
      select type, object -> 'metadata' ->> 'name' as name from refresh_smoke_cm()`;
    assert.deepEqual(refreshed.map((r) => `${r.type} ${r.name}`), [`ADDED ${outside}`]);

    const written = uniqueName("written");
    const resource = { metadata: { labels }, data: { v: "a" } };
    await sql`insert into smoke_cm (namespace, name, resource)
              values (${namespace}, ${written}, ${JSON.stringify(resource)}::text::jsonb)`;
    assert.equal(await inCluster(written), "a");
    await sql`update smoke_cm set resource = jsonb_set(resource, '{data,v}', '"b"')
               where name = ${written}`;
    assert.equal(await inCluster(written), "b");
    await sql`delete from smoke_cm where name = ${written}`;
    assert.equal(await inCluster(written), null);
    assert.deepEqual([...await sql`select * from refresh_smoke_cm()`], []);
  });

  await t.step("a transactional resource table: changes reach the cluster at commit", async () => {
    await sql`select omni_kube.resource_table('smoke_tx', 'v1', 'configmaps',
                field_selector => ${`metadata.namespace=${namespace}`}, transactional => true)`;
    const name = uniqueName("tx");
    await sql.begin(async (tx) => {
      await tx`insert into smoke_tx (namespace, name, resource)
               values (${namespace}, ${name}, '{"data": {"v": "1"}}')`;
      // The same object changed again in the transaction: still one change, the last.
      await tx`update smoke_tx set resource = jsonb_set(resource, '{data,v}', '"2"')
                where name = ${name}`;
      assert.equal(await inCluster(name), null, "not before the commit");
    });
    assert.equal(await inCluster(name), "2");
    const [row] = await sql`select committed, uid is not null as has_uid from smoke_tx
                             where name = ${name}`;
    assert.deepEqual({ ...row }, { committed: true, has_uid: true });
  });

  await t.step(
    "a live table: the first sync, then a change, as its owner's trigger sees it",
    async () => {
      await sql`select omni_kube.live_table('smoke_live', 'v1', 'configmaps',
                                          namespace => ${namespace}, label_selector => ${selected})`;
      await sql`create table smoke_live_seen (name text, v text, by_role name)`;
      await sql`create function smoke_live_seen() returns trigger language plpgsql as $$
                begin
                  insert into smoke_live_seen values (new.name, new.resource -> 'data' ->> 'v',
                                                      current_user);
                  return new;
                end $$`;
      await sql`create trigger seen after insert or update on smoke_live
                for each row execute function smoke_live_seen()`;
      await sql`select omni_kube.await_live('smoke_live', 30)`;
      const name = uniqueName("live");
      await create(name, "live");
      const row = await eventually("the live table's trigger saw the new ConfigMap", async () => {
        const [row] = await sql`select v, by_role from smoke_live_seen where name = ${name}`;
        return row;
      });
      assert.deepEqual({ ...row }, { v: "live", by_role: "postgres" });
      const [{ rows }] = await sql`select count(*)::int as rows from smoke_live`;
      const listed = await sql`select r from omni_kube.resources('v1', 'configmaps',
                                 label_selector => ${selected}, namespace => ${namespace}) r`;
      assert.equal(rows, listed.length);
    },
  );

  await t.step("a non-superuser member of omni_kube calls api()", async () => {
    const member = uniqueName("smoke_member").replaceAll("-", "_");
    await sql`create role ${sql(member)} login in role omni_kube`;
    try {
      const asMember = bridge.connectAs(member);
      const [{ ns }] = await asMember`select omni_kube.api('/api/v1/namespaces/default') as ns`;
      assert.equal(ns.metadata.name, "default");
      const [{ rows }] = await asMember`
        select count(*)::int as rows from omni_kube.requests where requested_by <> current_user`;
      assert.equal(rows, 0, "a member sees only its own requests");
      await asMember.end();
    } finally {
      await dropRoles(sql, member);
    }
  });

  await t.step("calls inside a REPEATABLE READ transaction", async () => {
    const name = uniqueName("rr");
    await sql.begin("isolation level repeatable read", async (tx) => {
      await tx`select omni_kube.api(${collection}, method => 'POST',
                 body => ${JSON.stringify({ metadata: { name } })}::text::jsonb)`;
      // Made after the transaction's snapshot: read through the autonomous connection.
      const [{ got }] = await tx`select omni_kube.api(${`${collection}/${name}`}) as got`;
      assert.equal(got.metadata.name, name);
    });
  });
});
