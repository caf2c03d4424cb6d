/**
 * resource_views() and resource_tables() (sql/0016, 0017), and everything of #8 done as a
 * non-superuser who only holds the omni_kube role.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, NAMESPACE_DEFAULTS, sqlError, uniqueName } from "./testbed.ts";

Deno.test("resource_views() and resource_tables() as a member of omni_kube", async (t) => {
  await using bridge = await startBridge("rviews");
  const { sql } = bridge;
  const alice = uniqueName("alice").replace("-", "_");
  // As PostgreSQL 15 and newer have it; 14 lets every role create in schema public.
  await sql`revoke create on schema public from public`;
  await sql`create role ${sql(alice)} login in role omni_kube`;
  const asAlice = bridge.connectAs(alice);
  const namespace = await createNamespace(sql, "rviews");
  /** Names of the relations of `kind` ('v' view, 'r' table) in `schema`. */
  const relations = async (kind: string, schema: string) =>
    (await sql`
      select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = ${schema} and c.relkind = ${kind} order by 1`).map((r) => r.relname);

  await t.step("alice is no superuser and has no grant but the omni_kube role", async () => {
    const [row] = await asAlice`
      select rolsuper, pg_has_role(current_user, 'omni_kube', 'member') as member,
             has_schema_privilege('public', 'create') as public_create
        from pg_roles where rolname = current_user`;
    assert.deepEqual({ ...row }, { rolsuper: false, member: true, public_create: false });
  });

  await t.step(
    "views and tables are created in her schema; her search_path is left as it was",
    async () => {
      const reserved = asAlice.reserve();
      const session = await reserved;
      try {
        await session`set search_path = "$user", pg_catalog`;
        await session`select omni_kube.resource_view('config_maps', 'v1', 'configmaps',
                      field_selector => ${`metadata.namespace=${namespace}`}, schema => 'alice_app')`;
        await session`select omni_kube.resource_table('config_map_copy', 'v1', 'configmaps',
                      field_selector => ${`metadata.namespace=${namespace}`}, transactional => true,
                      schema => 'alice_app')`;
        const [{ search_path }] =
          await session`select current_setting('search_path') as search_path`;
        assert.equal(search_path, `"$user", pg_catalog`);

        await session`insert into alice_app.config_maps (name, resource) values ('from-alice', '{"data": {"by": "view"}}')`;
        assert.deepEqual(
          (await session`select type, object -> 'metadata' ->> 'name' as name from alice_app.refresh_config_map_copy()`)
            .map((r) => `${r.type} ${r.name}`),
          ["ADDED from-alice"],
        );
        // Only her ConfigMap: the namespace also holds the cluster's kube-root-ca.crt.
        await session`begin`;
        await session`update alice_app.config_map_copy set resource = jsonb_set(resource, '{data,by}', '"table"')
                       where name = 'from-alice'`;
        await session`commit`;
        const [row] = await session`
          select resource -> 'data' ->> 'by' as by from alice_app.config_maps where name = 'from-alice'`;
        assert.equal(row.by, "table");
        const [{ owner }] = await sql`
        select pg_get_userbyid(relowner) as owner from pg_class where oid = 'alice_app.config_map_copy'::regclass`;
        assert.equal(owner, alice);
      } finally {
        session.release();
      }
    },
  );

  await t.step(
    "resource_views: one view per listable resource, core in the base schema",
    async () => {
      const views = await asAlice`
      select v::text as view from omni_kube.resource_views('alice_k8s', array['v1', 'apps/v1']) v`;
      const names = views.map((v) => v.view);
      assert.ok(names.includes("alice_k8s.config_map"));
      assert.ok(names.includes(`"alice_k8s/apps".deployment`));
      assert.ok(
        !names.some((n) => n.includes("binding") && n.startsWith("alice_k8s.")),
        "no create-only resources",
      );
      assert.deepEqual(await relations("v", "alice_k8s/apps"), [
        "controller_revision",
        "daemon_set",
        "deployment",
        "replica_set",
        "stateful_set",
      ]);
      const rows = await asAlice`
      select name from alice_k8s.config_map where namespace = ${namespace} order by name`;
      assert.deepEqual(rows.map((r) => r.name), ["from-alice", NAMESPACE_DEFAULTS.configMap]);
    },
  );

  await t.step(
    "naming options: singular or plural, underscores or not, a schema template",
    async () => {
      await asAlice`select omni_kube.resource_views('alice_plain', array['apps/v1'], singular => false,
                    underscore_case => false, schema_template => '%s_%s')`;
      assert.deepEqual(await relations("v", "alice_plain_apps"), [
        "controllerrevisions",
        "daemonsets",
        "deployments",
        "replicasets",
        "statefulsets",
      ]);
      await asAlice`select omni_kube.resource_views('alice_names', array['v1'], singular => false)`;
      const plural = await relations("v", "alice_names");
      assert.ok(plural.includes("config_maps") && plural.includes("persistent_volume_claims"));
      await asAlice`select omni_kube.resource_views('alice_single', array['v1'], underscore_case => false)`;
      assert.ok((await relations("v", "alice_single")).includes("configmap"));
    },
  );

  await t.step("resource_tables and one refresh for all of them", async () => {
    const tables = await asAlice`
      select t::text as table from omni_kube.resource_tables('alice_kt', array['v1', 'apps/v1']) t`;
    assert.ok(tables.some((t) => t.table === "alice_kt.config_map"));
    assert.ok(tables.some((t) => t.table === `"alice_kt/apps".deployment`));
    // The tables span the cluster, where nodes, events and other tests' objects change on their
    // own; in the test's namespace only the test changes anything.
    const refresh = () =>
      asAlice`
        select resource_table::text as table, type, object -> 'metadata' ->> 'name' as name
          from alice_kt.refresh_alice_kt()
         where object -> 'metadata' ->> 'namespace' = ${namespace}`;
    assert.deepEqual([...await refresh()], []);

    await sql`insert into alice_app.config_maps (name, resource) values ('later', '{}')`;
    const refreshed = await refresh();
    assert.deepEqual(refreshed.map((r) => `${r.table} ${r.type} ${r.name}`), [
      "alice_kt.config_map ADDED later",
    ]);
  });

  await t.step("bad options are explained", async () => {
    await sqlError(
      asAlice`select omni_kube.resource_views('x', array['nope.example.com/v1'])`,
      "22023",
      /does not serve nope.example.com\/v1/,
    );
    await sqlError(
      asAlice`select omni_kube.resource_views('x', schema_template => 'flat')`,
      "22023",
      /must place the group name/,
    );
  });

  await t.step("a role without omni_kube cannot use any of it", async () => {
    const outsider = uniqueName("outsider").replace("-", "_");
    await sql`create role ${sql(outsider)} login`;
    await sqlError(
      bridge.connectAs(outsider)`select omni_kube.resource_view('v', 'v1', 'pods', schema => 'o')`,
      "42501",
      /permission denied for schema omni_kube/,
    );
  });
});
