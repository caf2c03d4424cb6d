import assert from "node:assert/strict";
import { join } from "node:path";
import { ServedClusters } from "../../lib/worker/clusters.ts";
import type { KubeFetch, KubeTarget } from "../../lib/kube/client.ts";
import type { NamedCluster } from "../../lib/kube/clusters.ts";
import type { PublishedCluster } from "../../lib/queue/maintenance.ts";
import { recordingLog } from "./fakes.ts";
import { CA } from "../kube/kubeconfig_fixtures.ts";

/** A kubeconfig with context `good` (a token) and `bad` (a CA file that does not exist). */
async function kubeconfig(dir: string): Promise<string> {
  const file = join(dir, "config.json");
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "good",
      clusters: [
        {
          name: "good",
          cluster: { server: "https://good.test", "certificate-authority-data": btoa(CA) },
        },
        {
          name: "bad",
          cluster: { server: "https://bad.test", "certificate-authority": "missing.crt" },
        },
      ],
      users: [{ name: "u", user: { token: "good-token" } }],
      contexts: [
        { name: "good", context: { cluster: "good", user: "u" } },
        { name: "bad", context: { cluster: "bad", user: "u" } },
      ],
    }),
  );
  return file;
}

/** ServedClusters with a fake /version and the rows it publishes. */
function served(fetch: KubeFetch = () => Promise.resolve(new Response("{}"))) {
  const published: PublishedCluster[][] = [];
  const clusters = new ServedClusters({
    fetch,
    publish: (rows) => {
      published.push(rows);
      return Promise.resolve();
    },
    log: recordingLog(),
  });
  return { clusters, published };
}

Deno.test("ServedClusters: a context it cannot use is published with why, and not claimed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { clusters, published } = served();
    await clusters.load([await kubeconfig(dir)], undefined, undefined);
    assert.deepEqual(clusters.usable(), ["good"]);
    const bad = clusters.get("bad");
    assert.ok(bad && "error" in bad);
    assert.match(bad.error, /missing\.crt/);
    await clusters.publish();
    const [rows] = published;
    assert.deepEqual(rows.find((r) => r.name === "good"), {
      name: "good",
      usable: true,
      server: "https://good.test",
      auth: "token",
      server_version: null,
      reachable: null,
      last_error: null,
      checked: false,
    });
    const badRow = rows.find((r) => r.name === "bad")!;
    assert.equal(badRow.usable, false);
    assert.equal(badRow.auth, null);
    assert.match(badRow.last_error!, /missing\.crt/);
    assert.ok(!JSON.stringify(rows).includes("good-token"), "no credential is published");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ServedClusters: a probe publishes the version each usable cluster answers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const asked: KubeTarget[] = [];
    const { clusters, published } = served((target, request) => {
      asked.push(target);
      assert.equal(request.path, "/version");
      return Promise.resolve(Response.json({ gitVersion: "v1.37.2" }));
    });
    await clusters.load([await kubeconfig(dir)], undefined, undefined);
    await clusters.probe();
    assert.deepEqual(asked.map((t) => [t.server, t.token]), [["https://good.test", "good-token"]]);
    const good = published.at(-1)!.find((r) => r.name === "good")!;
    assert.equal(good.server_version, "v1.37.2");
    assert.equal(good.reachable, true);
    assert.equal(good.checked, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ServedClusters: the pod's account is in-cluster, with its token as it rotates", async () => {
  const { clusters } = served();
  const pod = (token: string) => ({
    source: "service account (/var/run/secrets)",
    target: { server: "https://kubernetes.default.svc", token, caCert: CA },
  });
  await clusters.load([], undefined, pod("first"));
  const inCluster = clusters.get("in-cluster") as NamedCluster;
  assert.equal((await inCluster.target()).token, "first");
  clusters.podAccount(pod("rotated"));
  assert.equal((await inCluster.target()).token, "rotated");
  assert.deepEqual(clusters.usable(), ["in-cluster"]);
});

Deno.test("ServedClusters: a context asked for that the kubeconfig lacks is an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { clusters } = served();
    await assert.rejects(
      clusters.load([await kubeconfig(dir)], ["good", "godo"], undefined),
      /has no context "godo"; it has "good", "bad"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
