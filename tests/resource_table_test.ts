/**
 * resource_table() (sql/0015): a local table filled from the cluster, refreshed with
 * refresh_<table>(), writing through; transactional tables apply their changes at commit only.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, NAMESPACE_DEFAULTS, sqlError } from "./testbed.ts";

/** The (type, name) pairs a refresh returned. */
function changes(rows: readonly { type: string; object: { metadata: { name: string } } }[]) {
  return rows.map((r) => `${r.type} ${r.object.metadata.name}`);
}

Deno.test("resource_table()", async (t) => {
  await using bridge = await startBridge("rtable");
  const { sql } = bridge;
  const namespace = await createNamespace(sql, "rtable");
  const inNamespace = `metadata.namespace=${namespace}`;
  const collection = `/api/v1/namespaces/${namespace}/configmaps`;
  /** Changes the cluster behind the table's back, as another client would. */
  const direct = (path: string, method: string, body?: unknown) =>
    sql`select omni_kube.api(${path}, method => ${method}::omni_kube.http_method,
                             body => ${
      body === undefined ? null : JSON.stringify(body)
    }::text::jsonb)`;

  await direct(collection, "POST", { metadata: { name: "before" }, data: { v: "0" } });
  const [{ table }] = await sql`
    select omni_kube.resource_table('config_maps', 'v1', 'configmaps',
                                    field_selector => ${inNamespace}) as table`;
  assert.equal(table, "config_maps");

  // The cluster's own ConfigMap in the namespace, there before the table (createNamespace).
  const rootCa = NAMESPACE_DEFAULTS.configMap;

  await t.step("the table starts with what the cluster has", async () => {
    const rows = await sql`select uid, name, namespace, resource from config_maps order by name`;
    assert.deepEqual(rows.map((r) => r.name), ["before", rootCa]);
    for (const row of rows) {
      assert.equal(row.namespace, namespace);
      assert.equal(row.uid, row.resource.metadata.uid);
    }
    const [{ ca }] = await sql`select omni_kube.api(${`${collection}/${rootCa}`}) as ca`;
    assert.deepEqual(rows[1].resource, ca);
    const [{ path }] = await sql`select config_maps_resource_path() as path`;
    assert.equal(path, collection);
  });

  await t.step("refresh returns ADDED, then MODIFIED, then DELETED", async () => {
    await direct(collection, "POST", { metadata: { name: "outside" }, data: { v: "1" } });
    assert.deepEqual(changes(await sql`select * from refresh_config_maps()`), ["ADDED outside"]);
    assert.deepEqual(changes(await sql`select * from refresh_config_maps()`), []);

    await direct(`${collection}/outside`, "PATCH", { data: { v: "2" } });
    assert.deepEqual(changes(await sql`select * from refresh_config_maps()`), ["MODIFIED outside"]);
    const [row] =
      await sql`select resource -> 'data' ->> 'v' as v from config_maps where name = 'outside'`;
    assert.equal(row.v, "2");

    await direct(`${collection}/outside`, "DELETE");
    assert.deepEqual(changes(await sql`select * from refresh_config_maps()`), ["DELETED outside"]);
    assert.deepEqual(
      (await sql`select name from config_maps order by name`).map((r) => r.name),
      ["before", rootCa],
    );
  });

  await t.step(
    "an object deleted and created again under its name is DELETED and ADDED",
    async () => {
      await direct(`${collection}/before`, "DELETE");
      await direct(collection, "POST", { metadata: { name: "before" }, data: { v: "new" } });
      const refreshed = changes(await sql`select * from refresh_config_maps()`);
      assert.deepEqual(refreshed, ["DELETED before", "ADDED before"]);
    },
  );

  await t.step("INSERT, UPDATE and DELETE write through to the cluster at once", async () => {
    const [created] = await sql`
      insert into config_maps (namespace, resource)
      values (${namespace}, '{"metadata": {"generateName": "through-"}, "data": {"v": "a"}}')
      returning uid, name`;
    assert.ok(created.uid);
    const [{ got }] =
      await sql`select omni_kube.api(${collection} || '/' || ${created.name}::text) as got`;
    assert.equal(got.metadata.uid, created.uid);

    await sql`update config_maps set resource = jsonb_set(resource, '{data,v}', '"b"') where name = ${created.name}`;
    const [{ updated }] =
      await sql`select omni_kube.api(${collection} || '/' || ${created.name}::text) as updated`;
    assert.equal(updated.data.v, "b");

    await sql`delete from config_maps where name = ${created.name}`;
    const [{ status }] =
      await sql`select status from omni_kube.api(array[${collection} || '/' || ${created.name}::text])`;
    assert.equal(status, 404);
    // The table kept in step: a refresh finds nothing to change.
    assert.deepEqual(changes(await sql`select * from refresh_config_maps()`), []);
  });

  await t.step("a failed write leaves the table as it was", async () => {
    await sqlError(
      sql`insert into config_maps (namespace, resource) values (${namespace}, '{"metadata": {"name": "Not Valid"}}')`,
      "OK422",
      /Invalid/,
    );
    assert.deepEqual(
      (await sql`select name from config_maps order by name`).map((r) => r.name),
      ["before", rootCa],
    );
  });
});

Deno.test("resource_table(transactional => true)", async (t) => {
  await using bridge = await startBridge("rtx");
  const { sql } = bridge;
  const namespace = await createNamespace(sql, "rtx");
  const inNamespace = `metadata.namespace=${namespace}`;
  await sql`select omni_kube.resource_table('cm', 'v1', 'configmaps', field_selector => ${inNamespace},
                                            transactional => true)`;
  // A live view of the same objects: what the cluster has right now, but for the ConfigMap the
  // cluster itself keeps in every namespace, which the test leaves alone.
  await sql`select omni_kube.resource_view('cluster_cm', 'v1', 'configmaps', field_selector => ${inNamespace})`;
  const inCluster = async () =>
    Object.fromEntries(
      (await sql`select name, resource -> 'data' as data from cluster_cm
                  where name <> ${NAMESPACE_DEFAULTS.configMap}`).map((r) => [r.name, r.data]),
    );
  const session = bridge.connectAs("postgres");

  await t.step("an insert is dry-run at once and reaches the cluster only at commit", async () => {
    await session.begin(async (tx) => {
      const [row] = await tx`
        insert into cm (resource)
        values ('{"metadata": {"generateName": "tx-"}, "data": {"v": "1"}}')
        returning uid, name, new, committed`;
      assert.match(row.name, /^tx-/, "the dry run chose the name");
      assert.deepEqual({ uid: row.uid, new: row.new, committed: row.committed }, {
        uid: null,
        new: true,
        committed: false,
      });
      assert.deepEqual(await inCluster(), {});
      // Updating the new row is still one creation, with the last content.
      await tx`update cm set resource = jsonb_set(resource, '{data,v}', '"2"') where new`;
    });
    const cluster = await inCluster();
    const names = Object.keys(cluster);
    assert.equal(names.length, 1);
    assert.deepEqual(cluster[names[0]], { v: "2" });
    const [row] =
      await sql`select uid, new, committed, resource -> 'metadata' ->> 'uid' as real_uid from cm`;
    assert.deepEqual({ ...row }, {
      uid: row.real_uid,
      new: false,
      committed: true,
      real_uid: row.real_uid,
    });
    assert.ok(row.uid);
  });

  await t.step("nothing reaches the cluster on rollback", async () => {
    const before = await inCluster();
    await assert.rejects(
      session.begin(async (tx) => {
        await tx`insert into cm (name, resource) values ('rolled-back', '{"data": {}}')`;
        await tx`update cm set resource = jsonb_set(resource, '{data,v}', '"changed"') where name like 'tx-%'`;
        await tx`delete from cm where name like 'tx-%'`;
        throw new Error("roll back"); // postgres.js rolls back when the callback throws
      }),
      /roll back/,
    );
    assert.deepEqual(await inCluster(), before);
    assert.equal((await sql`select count(*)::int as n from cm where name = 'rolled-back'`)[0].n, 0);
  });

  await t.step("update and delete of existing objects apply at commit", async () => {
    await sql`insert into cm (name, resource) values ('kept', '{"data": {"v": "1"}}')`;
    await session.begin(async (tx) => {
      await tx`update cm set resource = jsonb_set(resource, '{data,v}', '"3"') where name = 'kept'`;
      await tx`delete from cm where name like 'tx-%'`;
      assert.equal((await inCluster()).kept.v, "1");
      assert.equal(Object.keys(await inCluster()).length, 2);
    });
    assert.deepEqual(await inCluster(), { kept: { v: "3" } });
    const [row] =
      await sql`select committed, resource -> 'data' ->> 'v' as v from cm where name = 'kept'`;
    assert.deepEqual({ ...row }, { committed: true, v: "3" });
  });

  await t.step(
    "the dry run rejects a bad change at once, with the API server's reason",
    async () => {
      await sqlError(
        sql`insert into cm (name, resource) values ('Bad Name', '{}')`,
        "OK422",
        /Invalid/,
      );
      assert.equal((await sql`select count(*)::int as n from cm where name = 'Bad Name'`)[0].n, 0);
    },
  );

  await t.step("a change the cluster refuses at commit fails the commit and says why", async () => {
    await sql`select * from refresh_cm()`;
    await sql`insert into cm (name, resource) values ('contested', '{"data": {"v": "mine"}}')`;
    const error = await sqlError(
      session.begin(async (tx) => {
        await tx`update cm set resource = jsonb_set(resource, '{data,v}', '"ours"') where name = 'contested'`;
        // Someone else changes it between our dry run and our commit.
        await sql`update cluster_cm set resource = jsonb_set(resource, '{data,v}', '"theirs"') where name = 'contested'`;
      }),
      "OKC01",
      /1 of 1 changes to public.cm failed at commit/,
    );
    assert.match(error.detail ?? "", /PUT .*contested: 409/);
    assert.equal((await inCluster()).contested.v, "theirs");
    const [row] =
      await sql`select resource -> 'data' ->> 'v' as v from cm where name = 'contested'`;
    assert.equal(row.v, "mine", "the local row rolled back with the transaction");
  });

  await t.step("refresh is refused while this transaction has changes waiting", async () => {
    await sqlError(
      session.begin(async (tx) => {
        await tx`update cm set resource = jsonb_set(resource, '{data,v}', '"x"') where name = 'kept'`;
        await tx`select * from refresh_cm()`;
      }),
      "55000",
      /changes waiting for this transaction's commit/,
    );
    assert.equal((await inCluster()).kept.v, "3");
  });
});
