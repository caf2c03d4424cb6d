/**
 * resource_view() (sql/0013, 0014): create, find, update and delete objects through a view, the
 * way a user would, against the real kube-apiserver.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, eventually, NAMESPACE_DEFAULTS, sqlError } from "./testbed.ts";
import { NODE_NAMES } from "../testbed/kwok.ts";

Deno.test("resource_view()", async (t) => {
  await using bridge = await startBridge("rview");
  const { sql } = bridge;
  const namespace = await createNamespace(sql, "rview");
  const inNamespace = `metadata.namespace=${namespace}`;

  const [{ view }] = await sql`
    select omni_kube.resource_view('config_maps', 'v1', 'configmaps',
                                   field_selector => ${inNamespace}) as view`;
  assert.equal(view, "config_maps");
  await sql`select omni_kube.resource_view('pods', 'v1', 'pods', field_selector => ${inNamespace})`;

  // The cluster's own ConfigMap, in every namespace from its first moments (createNamespace).
  const rootCa = NAMESPACE_DEFAULTS.configMap;

  await t.step("a view over a new namespace shows what the cluster put there", async () => {
    const rows = await sql`select name, namespace, resource from config_maps`;
    assert.deepEqual(rows.map((r) => [r.name, r.namespace]), [[rootCa, namespace]]);
    assert.match(rows[0].resource.data["ca.crt"], /^-----BEGIN CERTIFICATE-----/);
    // Nothing in the cluster makes pods by itself.
    assert.deepEqual([...await sql`select * from pods`], []);
  });

  let generated = "";
  await t.step(
    "INSERT creates; generateName works and RETURNING shows the created object",
    async () => {
      const [row] = await sql`
      insert into config_maps (namespace, resource)
      values (${namespace}, '{"metadata": {"generateName": "app-"}, "data": {"mode": "fast"}}')
      returning uid, name, namespace, resource`;
      assert.match(row.name, /^app-[a-z0-9]{5}$/);
      assert.equal(row.namespace, namespace);
      assert.equal(row.uid, row.resource.metadata.uid);
      assert.equal(row.resource.kind, "ConfigMap");
      generated = row.name;
      const [direct] = await sql`
      select omni_kube.api(omni_kube.resources_path('v1', 'configmaps', ${namespace}) || '/' || ${generated}::text) as cm`;
      assert.deepEqual(direct.cm.data, { mode: "fast" });
    },
  );

  await t.step("the name can come from the column, the namespace from metadata", async () => {
    await sql`insert into config_maps (name, resource)
              values ('by-column', ${JSON.stringify({ metadata: { namespace } })}::text::jsonb)`;
    const rows = await sql`select name from config_maps order by name`;
    assert.deepEqual(rows.map((r) => r.name), [generated, "by-column", rootCa].sort());
  });

  await t.step("a pod, created through its view, is found with its spec and status", async () => {
    const [created] = await sql`
      insert into pods (name, namespace, resource)
      values ('web', ${namespace},
              '{"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}')
      returning resource -> 'status' ->> 'phase' as phase`;
    assert.equal(created.phase, "Pending");
    // The scheduler and a simulated node take it on: the view shows the status they write.
    const pod = await eventually("pod web Running in the view", async () => {
      const [pod] = await sql`
        select name, resource -> 'spec' -> 'containers' -> 0 ->> 'image' as image,
               resource -> 'spec' ->> 'nodeName' as node,
               resource -> 'status' ->> 'phase' as phase,
               resource -> 'status' ->> 'podIP' as ip
          from pods where name = 'web'`;
      return pod?.phase === "Running" ? pod : undefined;
    });
    assert.deepEqual({ name: pod.name, image: pod.image }, { name: "web", image: "nginx:1.27" });
    assert.ok(NODE_NAMES.includes(pod.node), `scheduled onto ${pod.node}`);
    assert.match(pod.ip ?? "", /^\d+\.\d+\.\d+\.\d+$/);
  });

  await t.step("UPDATE replaces the object in the cluster", async () => {
    const [row] = await sql`
      update config_maps set resource = jsonb_set(resource, '{data,mode}', '"safe"')
       where name = ${generated}
      returning resource -> 'data' as data`;
    assert.deepEqual(row.data, { mode: "safe" });
    const [again] =
      await sql`select resource -> 'data' as data from config_maps where name = ${generated}`;
    assert.deepEqual(again.data, { mode: "safe" });
  });

  await t.step("UPDATE with a stale resourceVersion is the API server's conflict", async () => {
    const [{ stale }] =
      await sql`select resource as stale from config_maps where name = 'by-column'`;
    await sql`update config_maps set resource = jsonb_set(resource, '{data}', '{"v": "1"}') where name = 'by-column'`;
    await sqlError(
      sql`update config_maps set resource = ${
        JSON.stringify({ ...stale, data: { v: "2" } })
      }::text::jsonb
           where name = 'by-column'`,
      "OK409",
      /Conflict/,
    );
  });

  await t.step("name, namespace, uid and kind are checked, with clear errors", async () => {
    await sqlError(
      sql`insert into config_maps (name, resource) values ('a', '{"metadata": {"name": "b"}}')`,
      "22023",
      /name \(a\) and resource.metadata.name \(b\) differ/,
    );
    await sqlError(
      sql`insert into config_maps (namespace, resource)
          values ('one', '{"metadata": {"name": "x", "namespace": "two"}}')`,
      "22023",
      /namespace \(one\) and resource.metadata.namespace \(two\) differ/,
    );
    await sqlError(
      sql`insert into config_maps (uid, resource) values ('u', '{"metadata": {"name": "x"}}')`,
      "22023",
      /uid is assigned by Kubernetes/,
    );
    await sqlError(
      sql`insert into config_maps (resource) values ('{"data": {}}')`,
      "23502",
      /needs a name/,
    );
    await sqlError(
      sql`insert into config_maps (resource) values ('{"kind": "Secret", "metadata": {"name": "x"}}')`,
      "22023",
      /holds v1 ConfigMap objects, but the resource is a v1 Secret/,
    );
    await sqlError(
      sql`insert into config_maps (resource) values ('"text"')`,
      "22023",
      /must be a JSON object, got string/,
    );
    await sqlError(
      sql`update config_maps set name = 'renamed' where name = 'by-column'`,
      "22023",
      /differ/,
    );
    await sqlError(
      sql`update config_maps set resource = jsonb_set(resource, '{metadata,name}', '"renamed"'),
                                 name = 'renamed'
           where name = 'by-column'`,
      "22023",
      /cannot be renamed or moved/,
    );
    await sqlError(
      sql`insert into config_maps (name, namespace, resource) values (${generated}, ${namespace}, '{}')`,
      "OK409",
      /AlreadyExists/,
    );
  });

  await t.step("a cluster-scoped resource has no namespace", async () => {
    await sql`select omni_kube.resource_view('cluster_namespaces', 'v1', 'namespaces')`;
    await sqlError(
      sql`insert into cluster_namespaces (name, namespace, resource) values ('x', 'default', '{}')`,
      "22023",
      /cluster-scoped; it has no namespace/,
    );
    const [row] =
      await sql`select count(*)::int as n from cluster_namespaces where name = ${namespace}`;
    assert.equal(row.n, 1);
  });

  await t.step("DELETE deletes in the cluster; a row already gone counts as deleted", async () => {
    const deleted = await sql`delete from config_maps where name = ${generated} returning name`;
    assert.equal(deleted.length, 1);
    const [{ status }] = await sql`
      select status from omni_kube.api(array[omni_kube.resources_path('v1', 'configmaps', ${namespace}) || '/' || ${generated}::text])`;
    assert.equal(status, 404);
    const remaining = await sql`select name from config_maps`;
    assert.deepEqual(remaining.map((r) => r.name).sort(), ["by-column", rootCa].sort());
  });

  await t.step("an unknown resource names the ones the group version serves", async () => {
    const error = await sqlError(
      sql`select omni_kube.resource_view('x', 'v1', 'configmap')`,
      "22023",
      /group version v1 has no resource "configmap"/,
    );
    assert.match(error.hint ?? "", /configmaps, endpoints/);
    await sqlError(
      sql`select omni_kube.resource_view('x', 'v1', 'pods', schema => null)`,
      "3F000",
      /no schema/,
    );
  });

  await t.step("resource_view() in another schema, created when missing", async () => {
    const [{ view }] = await sql`
      select omni_kube.resource_view('deployments', 'apps/v1', 'deployments', schema => 'apps')::text as view`;
    assert.equal(view, "apps.deployments");
    await sql`
      insert into apps.deployments (namespace, resource) values (${namespace}, ${
      JSON.stringify({
        metadata: { name: "web" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "web", image: "nginx" }] },
          },
        },
      })
    }::text::jsonb)`;
    // The deployment controller writes the object's status as its rollout goes on; an UPDATE, a
    // replace at the resourceVersion it read, would race those writes (and rightly get 409). Once
    // the rollout is complete, nothing else writes to it.
    await eventually("deployment web rolled out", async () => {
      const [{ done }] = await sql`
        select coalesce((resource #>> '{status,observedGeneration}')::int8 =
                          (resource #>> '{metadata,generation}')::int8
                        and (resource #>> '{status,updatedReplicas}')::int = 2
                        and (resource #>> '{status,availableReplicas}')::int = 2, false) as done
          from apps.deployments where name = 'web' and namespace = ${namespace}`;
      return done ? true : undefined;
    });
    const [row] = await sql`
      update apps.deployments set resource = jsonb_set(resource, '{spec,replicas}', '5')
       where name = 'web' and namespace = ${namespace}
      returning (resource -> 'spec' ->> 'replicas')::int as replicas`;
    assert.equal(row.replicas, 5);
  });
});
