/**
 * `cluster => 'name'` beyond api(): watch(), resources(), resources_metadata(), group_resources(),
 * resource views and tables (single and bulk), which remember their cluster, and
 * cluster_resources(). The worker serves two contexts of one API server: `admin` (admin token) and
 * `limited` (a token with no rights beyond discovery), so that a 403 shows whose credentials a call
 * carried. The calls without a cluster, and the objects made without one, behave as before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBridge } from "./bridge.ts";
import { createNamespace, dropRoles, sqlError, testbedEnv } from "./testbed.ts";

type Event = { type: string; object: { metadata: { name?: string } } };

Deno.test("the SQL surface takes cluster => name", async (t) => {
  const env = testbedEnv();
  const dir = await Deno.makeTempDir({ prefix: "omni_kube_cluster_surface_" });
  const cluster = { server: env.KUBE_SERVER, "certificate-authority": env.KUBE_CA_FILE };
  const kubeconfigFile = join(dir, "kubeconfig.json");
  await Deno.writeTextFile(
    kubeconfigFile,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "admin",
      clusters: [{ name: "testbed", cluster }],
      users: [
        { name: "admin", user: { token: env.KUBE_ADMIN_TOKEN } },
        { name: "limited", user: { token: env.KUBE_LIMITED_TOKEN } },
      ],
      contexts: [
        { name: "admin", context: { cluster: "testbed", user: "admin" } },
        { name: "limited", context: { cluster: "testbed", user: "limited" } },
      ],
    }),
    { mode: 0o600 },
  );

  await using bridge = await startBridge("csurface", { kubeconfig: kubeconfigFile });
  const { sql } = bridge;
  const member = `csurface_member_${crypto.randomUUID().slice(0, 8)}`;
  await sql`create role ${sql(member)} login in role omni_kube`;
  await sql`grant create on schema public to ${sql(member)}`;
  await sql`select omni_kube.grant_cluster('admin', ${member})`;
  const asMember = bridge.connectAs(member);
  const namespace = await createNamespace(sql, "csurface");
  const inNamespace = `metadata.namespace=${namespace}`;
  const collection = `/api/v1/namespaces/${namespace}/configmaps`;
  await sql`select omni_kube.api(${collection}, method => 'POST',
              body => '{"metadata": {"name": "cm-one"}}')`;
  /** The names of the ConfigMaps in the namespace, sorted. */
  const names = async () =>
    (await sql`select r -> 'metadata' ->> 'name' as name
                 from omni_kube.resources('v1', 'configmaps', namespace => ${namespace}) r`)
      .map((r) => r.name as string).sort();
  const sorted = (rows: readonly { name: string }[]) => rows.map((r) => r.name).sort();
  /** Asserts that `query` fails with `sqlstate`, naming `cluster` (in the hint, for an HTTP status). */
  const refusedOn = async (query: Promise<unknown>, sqlstate: string, cluster: string) => {
    const error = await sqlError(query, sqlstate);
    assert.match(`${error.message} ${error.hint}`, new RegExp(`cluster "?${cluster}\\b`));
  };
  /** The cluster of the latest request. */
  const lastCluster = async () =>
    (await sql`select cluster from omni_kube.request order by id desc limit 1`)[0].cluster;

  try {
    await t.step("resources, resources_metadata and group_resources", async () => {
      const viaAdmin = await sql<{ name: string }[]>`
        select r -> 'metadata' ->> 'name' as name
          from omni_kube.resources('v1', 'configmaps', cluster => 'admin',
                                   namespace => ${namespace}) r`;
      assert.deepEqual(sorted(viaAdmin), await names());
      assert.ok(viaAdmin.some((r) => r.name === "cm-one"));
      await refusedOn(
        sql`select omni_kube.resources('v1', 'configmaps', cluster => 'limited',
                                       namespace => ${namespace})`,
        "OK403",
        "limited",
      );
      assert.equal(await lastCluster(), "limited");

      const [{ metadata }] = await sql`
        select omni_kube.resources_metadata('v1', 'configmaps', cluster => 'admin') as metadata`;
      assert.match(metadata.resourceVersion, /^\d+$/);
      assert.equal(await lastCluster(), "admin");
      await sqlError(
        sql`select omni_kube.resources_metadata('v1', 'configmaps', cluster => 'limited')`,
        "OK403",
      );

      // Discovery is all the limited token may do.
      const served = await sql`
        select name from omni_kube.group_resources('v1', cluster => 'limited')`;
      assert.ok(served.some((r) => r.name === "configmaps"));
      assert.equal(await lastCluster(), "limited");
      await sqlError(
        sql`select * from omni_kube.group_resources('nope.example.com/v1', cluster => 'admin')`,
        "OK404",
        /cluster "admin" does not serve/,
      );
      await sqlError(
        sql`select omni_kube.resources('v1', 'configmaps', cluster => 'nosuch')`,
        "OKW04",
        /nosuch/,
      );

      // A named cluster brings its credentials: the session's settings do not apply to it.
      const session = await sql.reserve();
      try {
        await session`set omni_kube.token = 'not-a-token'`;
        await sqlError(
          session`select omni_kube.resources('v1', 'configmaps', namespace => ${namespace})`,
          "OK401",
        );
        const rows = await session<{ name: string }[]>`
          select r -> 'metadata' ->> 'name' as name
            from omni_kube.resources('v1', 'configmaps', cluster => 'admin',
                                     namespace => ${namespace}) r`;
        assert.deepEqual(sorted(rows), await names());
      } finally {
        await session`reset omni_kube.token`;
        session.release();
      }
    });

    await t.step("watch, single and batch", async () => {
      const [single] = await sql`
        select events, status from omni_kube.watch('v1', 'configmaps', cluster => 'admin',
                                                   namespace => ${namespace}, timeout => 1)`;
      assert.equal(single.status, 200);
      assert.equal((single.events as Event[]).at(-1)!.type, "BOOKMARK");
      assert.equal(await lastCluster(), "admin");
      await refusedOn(
        sql`select * from omni_kube.watch('v1', 'configmaps', cluster => 'limited',
                                          namespace => ${namespace})`,
        "OK403",
        "limited",
      );
      await sqlError(
        sql`select * from omni_kube.watch('v1', 'configmaps', cluster => 'admin', token => 'x')`,
        "22023",
        /not both/,
      );

      const all = await sql`
        select status from omni_kube.watch(array['v1', 'v1'], array['configmaps', 'configmaps'],
                                           cluster => 'limited',
                                           namespaces => array[${namespace}, ${namespace}])`;
      assert.deepEqual(all.map((r) => r.status), [403, 403]);
      // A NULL or an array literal in the cluster's place, where the form without a cluster takes
      // resource_versions, is what it is there: no cluster, or the resource versions.
      const [positional] = await sql`
        select status from omni_kube.watch(array['v1'], array['configmaps'], null, 1,
                                           array[${namespace}])`;
      assert.equal(positional.status, 200);
      assert.equal(await lastCluster(), null);
      const [{ rv }] = await sql`
        select omni_kube.api(${`/api/v1/namespaces/${namespace}/configmaps`})
                 #>> '{metadata,resourceVersion}' as rv`;
      const [literal] = await sql.unsafe(
        `select status, events from omni_kube.watch(array['v1'], array['configmaps'], '{${rv}}', 1,
                                                    array['${namespace}'])`,
      );
      assert.equal(literal.status, 200);
      assert.equal(await lastCluster(), null);
      const [{ body }] = await sql`
        select body from omni_kube.request where kind = 'watch' order by id desc limit 1`;
      assert.equal(body.resourceVersion, rv, "the literal is the resource version");
    });

    await t.step("a resource view remembers its cluster", async () => {
      await sql`select omni_kube.resource_view('cm_admin', 'v1', 'configmaps', cluster => 'admin',
                                               field_selector => ${inNamespace})`;
      await sql`select omni_kube.resource_view('cm_limited', 'v1', 'configmaps',
                                               cluster => 'limited',
                                               field_selector => ${inNamespace})`;
      await sql`select omni_kube.resource_view('cm_plain', 'v1', 'configmaps',
                                               field_selector => ${inNamespace})`;
      const [definitions] = await sql`
        select pg_get_viewdef('cm_admin') as admin, pg_get_viewdef('cm_plain') as plain,
               (select tgnargs from pg_trigger where tgrelid = 'cm_admin'::regclass) as admin_args,
               (select tgnargs from pg_trigger where tgrelid = 'cm_plain'::regclass) as plain_args`;
      assert.match(definitions.admin, /cluster => \('admin'::text\)::omni_kube\.cluster_name/);
      assert.doesNotMatch(definitions.plain, /cluster/);
      assert.equal(definitions.admin_args, 6);
      assert.equal(definitions.plain_args, 5, "a view without a cluster is made as before");

      assert.deepEqual(
        sorted(await sql<{ name: string }[]>`select name from cm_admin`),
        await names(),
      );
      assert.deepEqual(
        sorted(await sql<{ name: string }[]>`select name from cm_plain`),
        await names(),
      );
      await refusedOn(sql`select * from cm_limited`, "OK403", "limited");
      await refusedOn(
        sql`insert into cm_limited (namespace, resource)
              values (${namespace}, '{"metadata": {"name": "never"}}')`,
        "OK403",
        "limited",
      );

      const [created] = await sql`
        insert into cm_admin (namespace, resource)
        values (${namespace}, '{"metadata": {"name": "via-view"}, "data": {"v": "1"}}')
        returning uid, name`;
      assert.equal(created.name, "via-view");
      assert.equal(await lastCluster(), "admin");
      await sql`update cm_admin set resource = jsonb_set(resource, '{data,v}', '"2"')
                 where name = 'via-view'`;
      const [{ v }] = await sql`
        select omni_kube.api(${`${collection}/via-view`}) #>> '{data,v}' as v`;
      assert.equal(v, "2");
      await sql`delete from cm_admin where name = 'via-view'`;
      assert.equal(await lastCluster(), "admin");
      assert.ok(!(await names()).includes("via-view"));
    });

    await t.step("a resource table remembers its cluster in refresh and writes", async () => {
      await refusedOn(
        sql`select omni_kube.resource_table('cm_limited_table', 'v1', 'configmaps',
                                            cluster => 'limited', field_selector => ${inNamespace})`,
        "OK403",
        "limited",
      );
      // The member may use admin: its table is made for admin, and works while the grant holds.
      await asMember`select omni_kube.resource_table('cm_table', 'v1', 'configmaps',
                                                     cluster => 'admin',
                                                     field_selector => ${inNamespace})`;
      await asMember`select omni_kube.resource_table('cm_tx', 'v1', 'configmaps',
                                                     cluster => 'admin', transactional => true,
                                                     field_selector => ${inNamespace})`;
      const [stored] = await sql`
        select pg_get_functiondef('refresh_cm_table'::regproc) as refresh,
               (select array_agg(tgnargs order by tgname) from pg_trigger
                 where tgrelid = 'cm_tx'::regclass and not tgisinternal) as tx_args`;
      assert.match(stored.refresh, /array\['admin'\]::text\[\]/);
      assert.deepEqual(stored.tx_args, [1, 7], "omni_kube_apply, omni_kube_write");
      assert.deepEqual(
        sorted(await asMember<{ name: string }[]>`select name from cm_table`),
        await names(),
      );

      await asMember`insert into cm_table (namespace, resource)
                     values (${namespace}, '{"metadata": {"name": "via-table"}}')`;
      assert.equal(await lastCluster(), "admin");
      await asMember.begin(async (tx) => {
        await tx`insert into cm_tx (namespace, resource)
                 values (${namespace}, '{"metadata": {"name": "via-tx"}}')`;
      });
      assert.ok((await names()).includes("via-tx"));
      assert.deepEqual(
        (await asMember`select type, object -> 'metadata' ->> 'name' as name
                          from refresh_cm_table()`).map((r) => `${r.type} ${r.name}`),
        ["ADDED via-tx"],
      );

      // Once the grant is gone, the table's refresh, writes and commit are refused: they go to
      // the cluster it names, as whoever makes them.
      const session = await asMember.reserve();
      try {
        await session`begin`;
        await session`update cm_tx set resource = jsonb_set(resource, '{data}', '{"v": "1"}')
                       where name = 'via-tx'`;
        await sql`select omni_kube.revoke_cluster('admin', ${member})`;
        await sqlError(session`commit`, "42501", /may not use cluster "admin"/);
      } finally {
        session.release();
      }
      await sqlError(asMember`select * from refresh_cm_table()`, "42501", /cluster "admin"/);
      await sqlError(
        asMember`delete from cm_table where name = 'via-table'`,
        "42501",
        /cluster "admin"/,
      );
      await sql`select omni_kube.grant_cluster('admin', ${member})`;
      await asMember`delete from cm_table where name = 'via-table'`;
      await asMember`delete from cm_tx where name = 'via-tx'`;
      assert.ok(!(await names()).includes("via-table"));
      assert.ok(!(await names()).includes("via-tx"));
    });

    await t.step("resource_views() and resource_tables() for a cluster", async () => {
      const views = await sql`
        select v::text as view
          from omni_kube.resource_views('k_admin', cluster => 'admin',
                                        group_versions => array['v1']) v`;
      assert.ok(views.some((r) => r.view === "k_admin.config_map"));
      const [{ definition }] = await sql`
        select pg_get_viewdef('k_admin.config_map') as definition`;
      assert.match(definition, /cluster => \('admin'::text\)::omni_kube\.cluster_name/);
      const [{ found }] = await sql`
        select count(*)::int as found from k_admin.config_map
         where namespace = ${namespace} and name = 'cm-one'`;
      assert.equal(found, 1);

      // resource_views(base_schema, NULL): the cluster's place, and no cluster, as it meant.
      await sql`select omni_kube.resource_views('k_plain', null, false)`;
      const [{ plain }] = await sql`select pg_get_viewdef('k_plain.config_maps') as plain`;
      assert.doesNotMatch(plain, /cluster/);
      // resource_views(base_schema, '{...}'): an array literal in the cluster's place is the group
      // versions it is there.
      const literal =
        await sql`select v::text as view from omni_kube.resource_views('k_lit', '{v1}') v`;
      assert.ok(literal.some((r) => r.view === "k_lit.config_map"));
      const [{ byLiteral }] = await sql`
        select pg_get_viewdef('k_lit.config_map') as "byLiteral"`;
      assert.doesNotMatch(byLiteral, /cluster/);
      const [{ groups }] = await sql`
        select count(distinct table_schema)::int as groups from information_schema.views
         where table_schema like 'k_lit%'`;
      assert.equal(groups, 1, "only the core group version, v1");

      await refusedOn(
        sql`select omni_kube.resource_tables('kt_limited', cluster => 'limited',
                                             group_versions => array['v1'])`,
        "OK403",
        "limited",
      );
      const tables = await sql`
        select t::text as table
          from omni_kube.resource_tables('kt_admin', cluster => 'admin',
                                         group_versions => array['v1']) t`;
      assert.ok(tables.some((r) => r.table === "kt_admin.config_map"));
      const [{ refresh }] = await sql`
        select pg_get_functiondef('kt_admin.refresh_kt_admin'::regproc) as refresh`;
      assert.match(refresh, /\{admin,admin/);
      const [{ rows }] = await sql`
        select count(*)::int as rows from kt_admin.config_map where namespace = ${namespace}`;
      assert.equal(rows, (await names()).length);
      assert.deepEqual(
        [
          ...await sql`select * from kt_admin.refresh_kt_admin()
                       where resource_table = 'kt_admin.config_map'::regclass
                         and object #>> '{metadata,namespace}' = ${namespace}`,
        ],
        [],
      );
    });

    await t.step("cluster_resources() lists several clusters in one batch", async () => {
      const expected = await names();
      const rows = await sql<{ cluster: string | null; name: string }[]>`
        select cluster, object -> 'metadata' ->> 'name' as name
          from omni_kube.cluster_resources(array['admin', null, 'admin'], 'v1', 'configmaps',
                                           namespace => ${namespace})`;
      assert.deepEqual(sorted(rows.filter((r) => r.cluster === "admin")), expected);
      assert.deepEqual(sorted(rows.filter((r) => r.cluster === null)), expected);
      assert.equal(rows.length, 2 * expected.length, "each cluster once");
      const [{ batches }] = await sql`
        select count(distinct enqueue_key)::int as batches
          from (select enqueue_key from omni_kube.request order by id desc limit 2) r`;
      assert.equal(batches, 1, "both listed in one batch of calls");

      await refusedOn(
        sql`select * from omni_kube.cluster_resources(array['admin', 'limited'], 'v1',
                                                      'configmaps', namespace => ${namespace})`,
        "OK403",
        "limited",
      );
      // The superuser may use both clusters; the member, admin only.
      await refusedOn(
        sql`select * from omni_kube.cluster_resources('{*}', 'v1', 'configmaps',
                                                      namespace => ${namespace})`,
        "OK403",
        "limited",
      );
      const mine = await asMember`
        select distinct cluster from omni_kube.cluster_resources('{*}', 'v1', 'configmaps',
                                                                 namespace => ${namespace})`;
      assert.deepEqual(mine.map((r) => r.cluster), ["admin"]);
      await sqlError(
        asMember`select * from omni_kube.cluster_resources(array['limited'], 'v1', 'configmaps')`,
        "42501",
        /may not use cluster "limited"/,
      );
      await sqlError(
        sql`select * from omni_kube.cluster_resources(array['*', 'admin'], 'v1', 'configmaps')`,
        "22023",
      );
      await sqlError(
        sql`select * from omni_kube.cluster_resources(null, 'v1', 'configmaps')`,
        "22004",
      );
      assert.deepEqual(
        [...await sql`select * from omni_kube.cluster_resources('{}', 'v1', 'configmaps')`],
        [],
      );
    });

    await t.step("the forms without a cluster resolve as before", async () => {
      /** The function a call resolves to, as a view on it records. */
      const resolved = (call: string) =>
        sql.begin(async (tx) => {
          await tx.unsafe(`create temporary view probe as select * from ${call}`);
          const [{ fn }] = await tx`
            select p.oid::regprocedure::text as fn
              from pg_depend d join pg_rewrite w on w.oid = d.objid
              join pg_proc p on p.oid = d.refobjid
             where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_proc'::regclass
               and w.ev_class = 'probe'::regclass and p.pronamespace = 'omni_kube'::regnamespace`;
          await tx`drop view probe`;
          return fn as string;
        });
      assert.equal(
        await resolved(`omni_kube.resources('v1', 'pods')`),
        "omni_kube.resources(text,text,text,text,text)",
      );
      assert.equal(
        await resolved(`omni_kube.resources('v1', 'pods', 'app=x', null, 'ns')`),
        "omni_kube.resources(text,text,text,text,text)",
      );
      assert.equal(
        await resolved(`omni_kube.watch('v1', 'pods', '123', 5, 'ns')`),
        "omni_kube.watch(text,text,text,integer,text,text,text,text,text,omni_kube.client_certificate,text)",
      );
      assert.equal(
        await resolved(`omni_kube.resource_view('v', 'v1', 'pods', null, null, 'public')`),
        "omni_kube.resource_view(name,text,text,text,text,name)",
      );
      assert.equal(
        await resolved(`omni_kube.resource_table('t', 'v1', 'pods', null, null, true, 'public')`),
        "omni_kube.resource_table(name,text,text,text,text,boolean,name)",
      );
      assert.equal(
        await resolved(`omni_kube.resource_views('k', array['v1'])`),
        "omni_kube.resource_views(name,text[],boolean,boolean,text)",
      );
    });
  } finally {
    await asMember.end();
    await dropRoles(sql, member);
    await Deno.remove(dir, { recursive: true });
  }
});
