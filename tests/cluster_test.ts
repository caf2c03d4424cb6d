/**
 * The test bed behaves like a real cluster: controllers, the scheduler and KWOK's nodes act on what
 * SQL creates through the bridge, and SQL sees the changes.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { createNamespace, eventually } from "./testbed.ts";
import { CONTAINER_LOG_LINE, NODE_NAMES } from "../testbed/kwok.ts";

type Sql = Awaited<ReturnType<typeof startBridge>>["sql"];

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { state: { running?: unknown } }[];
  };
}

async function podsOf(sql: Sql, namespace: string, app: string): Promise<Pod[]> {
  const rows = await sql`
    select r as pod from omni_kube.resources('v1', 'pods', label_selector => ${`app=${app}`},
                                              namespace => ${namespace}) r`;
  return rows.map((row) => row.pod as Pod);
}

function isRunning(pod: Pod): boolean {
  return pod.status.phase === "Running" && !pod.metadata.deletionTimestamp &&
    (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function deployment(name: string, replicas: number) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
      },
    },
  };
}

Deno.test("a Deployment gets Pods that run, scale and go", async (t) => {
  await using bridge = await startBridge("cluster");
  const { sql } = bridge;
  const namespace = await createNamespace(sql, "cluster");
  const deployments = `/apis/apps/v1/namespaces/${namespace}/deployments`;

  await t.step("3 replicas: 3 Pods Running on the simulated nodes, with IPs", async () => {
    await sql`select omni_kube.api(${deployments}, method => 'POST',
                                   body => ${sql.json(deployment("web", 3))})`;
    const pods = await eventually("3 Pods Running", async () => {
      const pods = await podsOf(sql, namespace, "web");
      return pods.length === 3 && pods.every(isRunning) ? pods : undefined;
    });
    for (const pod of pods) {
      assert.ok(NODE_NAMES.includes(pod.spec.nodeName as typeof NODE_NAMES[number]));
      assert.match(pod.status.podIP ?? "", /^10\.244\./);
      assert.ok(pod.status.containerStatuses?.[0].state.running, "container state is running");
    }
    await eventually("the Deployment reports 3 ready replicas", async () => {
      const [row] = await sql`select omni_kube.api(${`${deployments}/web`}) -> 'status' as status`;
      return row.status.readyReplicas === 3 ? row : undefined;
    });
  });

  await t.step("scaled to 1: 2 Pods go", async () => {
    await sql`select omni_kube.api(${`${deployments}/web/scale`}, method => 'PATCH',
                body => '{"spec": {"replicas": 1}}'::jsonb)`;
    await eventually("1 Pod left", async () => {
      const pods = await podsOf(sql, namespace, "web");
      return pods.length === 1 && isRunning(pods[0]) ? pods : undefined;
    });
  });

  await t.step("the scheduler and the controllers recorded Events", async () => {
    const reasons = await eventually("Scheduled and ScalingReplicaSet events", async () => {
      const rows = await sql`
        select r ->> 'reason' as reason
          from omni_kube.resources('events.k8s.io/v1', 'events', namespace => ${namespace}) r`;
      const reasons = new Set(rows.map((row) => row.reason as string));
      return reasons.has("Scheduled") && reasons.has("ScalingReplicaSet") ? reasons : undefined;
    });
    assert.ok(reasons.has("SuccessfulCreate"), `events: ${[...reasons].join(", ")}`);
  });

  await t.step("a Pod's log comes from its simulated node", async () => {
    const [pod] = await podsOf(sql, namespace, "web");
    const [row] = await sql`
      select omni_kube.api(${`/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}/log`})
        as log`;
    assert.match(JSON.stringify(row.log), new RegExp(CONTAINER_LOG_LINE));
  });

  await t.step("deleting the Deployment collects its ReplicaSet and Pod", async () => {
    await sql`select omni_kube.api(${`${deployments}/web`}, method => 'DELETE',
                body => '{"propagationPolicy": "Background"}'::jsonb)`;
    await eventually("no ReplicaSet and no Pod left", async () => {
      const [row] = await sql`
        select (select count(*) from omni_kube.resources('apps/v1', 'replicasets',
                                                         namespace => ${namespace}))::int as sets,
               (select count(*) from omni_kube.resources('v1', 'pods',
                                                         namespace => ${namespace}))::int as pods`;
      return row.sets === 0 && row.pods === 0 ? row : undefined;
    });
  });

  await t.step("a deleted namespace finishes deleting", async () => {
    await sql`select omni_kube.api(${`/api/v1/namespaces/${namespace}`}, method => 'DELETE')`;
    await eventually("the namespace gone", async () => {
      const [row] = await sql`
        select count(*)::int as left from omni_kube.resources('v1', 'namespaces',
                                                               field_selector => ${`metadata.name=${namespace}`}) r`;
      return row.left === 0 ? row : undefined;
    }, 60_000); // the namespace controller deletes every kind of object in it first
  });
});

Deno.test("/version reports the Kubernetes release that was built", async () => {
  await using bridge = await startBridge("version");
  const [{ version }] = await bridge.sql`select omni_kube.api('/version') as version`;
  assert.match(version.gitVersion, /^v1\.\d+\.\d+$/);
  assert.equal(
    version.gitVersion,
    `v${version.major}.${version.minor}.${version.gitVersion.split(".")[2]}`,
  );
  const built = Deno.env.get("OMNI_KUBE_TESTBED_KUBE_VERSION");
  assert.ok(
    built,
    "the test runner names the Kubernetes release only when testbed/build.sh provides the " +
      "binaries: unset KUBE_APISERVER_BIN and the other *_BIN variables",
  );
  assert.equal(version.gitVersion, `v${built}`);
  // The release's tag time, as Kubernetes' own build sets it.
  assert.match(version.buildDate, /^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
});
