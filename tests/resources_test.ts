/**
 * Path helpers, discovery and listing (sql/0005 to 0012) against the real kube-apiserver.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, NAMESPACE_DEFAULTS, sqlError } from "./testbed.ts";

Deno.test("path helpers", async (t) => {
  await using bridge = await startBridge("paths");
  const { sql } = bridge;

  await t.step("group_path and resources_path follow the core/named group split", async () => {
    const [row] = await sql`
      select omni_kube.group_path('v1') as core, omni_kube.group_path('apps/v1') as apps,
             omni_kube.group_path('networking.k8s.io/v1') as networking,
             omni_kube.resources_path('v1', 'nodes') as nodes,
             omni_kube.resources_path('v1', 'pods', 'default') as pods,
             omni_kube.resources_path('apps/v1', 'deployments', 'kube-system') as deployments`;
    assert.deepEqual({ ...row }, {
      core: "/api/v1",
      apps: "/apis/apps/v1",
      networking: "/apis/networking.k8s.io/v1",
      nodes: "/api/v1/nodes",
      pods: "/api/v1/namespaces/default/pods",
      deployments: "/apis/apps/v1/namespaces/kube-system/deployments",
    });
  });

  await t.step("path_with percent-encodes selectors and adds to an existing query", async () => {
    const [row] = await sql`
      select omni_kube.path_with('/api/v1/pods', 'app=nginx') as label,
             omni_kube.path_with('/api/v1/pods', 'environment in (prod,staging)',
                                 'metadata.name!=test-pod') as both,
             omni_kube.path_with('/api/v1/pods', timeout_seconds => 30) as timeout,
             omni_kube.path_with('/api/v1/pods?limit=5', dry_run => true) as dry_run,
             omni_kube.path_with('/api/v1/pods') as unchanged,
             omni_kube.path_with('/api/v1/pods', 'app=ünï/code') as unicode`;
    assert.deepEqual({ ...row }, {
      label: "/api/v1/pods?labelSelector=app%3Dnginx",
      both: "/api/v1/pods?labelSelector=environment%20in%20%28prod%2Cstaging%29" +
        "&fieldSelector=metadata.name%21%3Dtest-pod",
      timeout: "/api/v1/pods?timeoutSeconds=30",
      dry_run: "/api/v1/pods?limit=5&dryRun=All",
      unchanged: "/api/v1/pods",
      unicode: "/api/v1/pods?labelSelector=app%3D%C3%BCn%C3%AF%2Fcode",
    });
  });

  await t.step("watch_path", async () => {
    const [row] = await sql`
      select omni_kube.watch_path('/api/v1/pods') as plain,
             omni_kube.watch_path('/api/v1/pods?limit=100', '12345') as resumed`;
    assert.equal(row.plain, "/api/v1/pods?watch=1");
    assert.equal(row.resumed, "/api/v1/pods?limit=100&watch=1&resourceVersion=12345");
  });

  await t.step("bad input names what is wrong", async () => {
    await sqlError(
      sql`select omni_kube.group_path('apps')`,
      "22023",
      /"apps" is not a group version/,
    );
    await sqlError(
      sql`select omni_kube.resources_path('v1', 'pods', 'Not A Namespace')`,
      "22023",
      /not a namespace name/,
    );
    await sqlError(sql`select omni_kube.path_with('api/v1/pods')`, "22023", /starting with \//);
    await sqlError(sql`select omni_kube.watch_path(null)`, "22023", /starting with \//);
  });
});

Deno.test("discovery and listing", async (t) => {
  await using bridge = await startBridge("discovery");
  const { sql } = bridge;

  await t.step(
    "api_group: core first, then the served groups with their preferred version",
    async () => {
      const groups = await sql`select name, preferred_version from omni_kube.api_group`;
      assert.deepEqual({ ...groups[0] }, { name: "core", preferred_version: "v1" });
      const apps = groups.find((g) => g.name === "apps");
      assert.equal(apps?.preferred_version, "v1");
    },
  );

  await t.step("api_group_version lists every version, with its group version", async () => {
    const versions = await sql`
      select name, version, group_version from omni_kube.api_group_version
       where name in ('core', 'autoscaling') order by group_version`;
    assert.deepEqual(versions.map((v) => v.group_version), [
      "autoscaling/v1",
      "autoscaling/v2",
      "v1",
    ]);
  });

  await t.step(
    "api_group_openapi_v3_url gives a fetchable document per group version",
    async () => {
      const urls = await sql`
      select name, group_version, url from omni_kube.api_group_openapi_v3_url
       where group_version in ('v1', 'apps/v1') order by name`;
      assert.deepEqual(urls.map((u) => [u.name, u.group_version]), [["apps", "apps/v1"], [
        "core",
        "v1",
      ]]);
      const [{ doc }] = await sql`select omni_kube.api(${urls[0].url}) as doc`;
      assert.ok(doc.components.schemas["io.k8s.api.apps.v1.Deployment"]);
    },
  );

  await t.step("group_resources describes resources and subresources", async () => {
    const resources = await sql`select * from omni_kube.group_resources('apps/v1') order by name`;
    const deployments = resources.find((r) => r.name === "deployments")!;
    assert.equal(deployments.singular_name, "deployment");
    assert.equal(deployments.kind, "Deployment");
    assert.equal(deployments.namespaced, true);
    assert.ok(deployments.verbs.includes("list") && deployments.verbs.includes("create"));
    assert.ok(deployments.storage_version_hash);
    assert.ok(resources.some((r) => r.name === "deployments/scale" && r.kind === "Scale"));
    const [namespaces] = await sql`
      select * from omni_kube.group_resources('v1') where name = 'namespaces'`;
    assert.equal(namespaces.namespaced, false);
  });

  await t.step("group_resources of a group the cluster does not serve", async () => {
    await sqlError(
      sql`select * from omni_kube.group_resources('nope.example.com/v1')`,
      "OK404",
      /does not serve group version "nope.example.com\/v1"/,
    );
  });

  const namespace = await createNamespace(sql, "list");
  // More than two pages of 500, so resources() has to follow `continue` twice.
  const count = 1_203;
  const statuses = await sql`
    select status from omni_kube.api(
      array_fill(omni_kube.resources_path('v1', 'configmaps', ${namespace}), array[${count}::int]),
      methods => array_fill('POST'::omni_kube.http_method, array[${count}::int]),
      bodies => array(select jsonb_build_object(
                        'metadata', jsonb_build_object('name', 'cm-' || i,
                                                       'labels', jsonb_build_object('parity', (i % 2)::text)),
                        'data', jsonb_build_object('i', i::text))
                        from generate_series(1, ${count}::int) i))`;
  assert.ok(statuses.every((s) => s.status === 201), "all ConfigMaps created");

  await t.step("resources() follows continue tokens and returns every object whole", async () => {
    // The test's ConfigMaps and the one the cluster keeps in every namespace.
    const [row] = await sql`
      select count(*)::int as objects, count(distinct r -> 'metadata' ->> 'name')::int as names,
             count(*) filter (where r -> 'metadata' ->> 'name' = ${NAMESPACE_DEFAULTS.configMap})::int
               as cluster_own,
             bool_and(r ->> 'kind' = 'ConfigMap' and r ->> 'apiVersion' = 'v1') as typed
        from omni_kube.resources('v1', 'configmaps', field_selector => ${
      "metadata.namespace=" + namespace
    }) r`;
    assert.deepEqual({ ...row }, {
      objects: count + 1,
      names: count + 1,
      cluster_own: 1,
      typed: true,
    });
  });

  await t.step("resources() with label and field selectors, and in one namespace", async () => {
    const [row] = await sql`
      select (select count(*)::int from omni_kube.resources('v1', 'configmaps', 'parity=1',
                                                           ${
      "metadata.namespace=" + namespace
    })) as odd,
             (select count(*)::int from omni_kube.resources('v1', 'configmaps',
                field_selector => 'metadata.name=cm-7', namespace => ${namespace})) as one,
             (select count(*)::int from omni_kube.resources('v1', 'configmaps',
                field_selector => ${`metadata.name=cm-7,metadata.namespace=${namespace}`})) as also_one`;
    assert.deepEqual({ ...row }, { odd: (count + 1) / 2, one: 1, also_one: 1 });
  });

  await t.step("a bad selector is the API server's 400, with its message", async () => {
    const error = await sqlError(
      sql`select * from omni_kube.resources('v1', 'configmaps', 'parity in in')`,
      "OK400",
    );
    assert.match(error.detail ?? "", /unable to parse requirement|found 'in'/);
  });

  await t.step("resources_metadata gives the collection's resourceVersion only", async () => {
    const [{ metadata }] =
      await sql`select omni_kube.resources_metadata('v1', 'configmaps') as metadata`;
    assert.deepEqual(Object.keys(metadata), ["resourceVersion"]);
    assert.match(metadata.resourceVersion, /^\d+$/);
  });
});
