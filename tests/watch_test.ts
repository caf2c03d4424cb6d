/**
 * omni_kube.watch() against the real kube-apiserver: events, resuming, selectors, batches, 410 and
 * cancellation.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { type Bridge, startBridge } from "./bridge.ts";
import { createNamespace as createNamespaceWithDefaults, uniqueName } from "./testbed.ts";

type Sql = postgres.Sql<Record<string, never>>;
interface WatchEvent {
  type: string;
  object: { kind?: string; code?: number; metadata: { name?: string; resourceVersion?: string } };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A fresh namespace, once the controllers have given it its ConfigMap kube-root-ca.crt: a watch
 * begun earlier would see that ConfigMap ADDED among the test's own changes.
 */
function createNamespace(sql: Sql): Promise<string> {
  return createNamespaceWithDefaults(sql, "watch");
}

async function createConfigMap(sql: Sql, namespace: string, name: string, labels = {}) {
  await sql`select omni_kube.api(${`/api/v1/namespaces/${namespace}/configmaps`}, method => 'POST',
              body => ${
    JSON.stringify({ metadata: { name, labels }, data: { v: "1" } })
  }::text::jsonb)`;
}

async function collectionVersion(sql: Sql, namespace: string): Promise<string> {
  const [{ rv }] = await sql`
    select omni_kube.api(${`/api/v1/namespaces/${namespace}/configmaps`})
           -> 'metadata' ->> 'resourceVersion' as rv`;
  return rv;
}

/** Events other than the final resume BOOKMARK, as [type, name] pairs. */
function changes(events: WatchEvent[]): [string, string | undefined][] {
  assert.equal(events.at(-1)?.type, "BOOKMARK", "a watch ends with a BOOKMARK");
  return events.slice(0, -1).map((e) => [e.type, e.object.metadata.name]);
}

function resumeVersion(events: WatchEvent[]): string {
  const version = events.at(-1)?.object.metadata.resourceVersion;
  assert.ok(version, "the final BOOKMARK carries a resourceVersion");
  return version;
}

Deno.test("omni_kube.watch()", async (t) => {
  await using bridge: Bridge = await startBridge("watch");
  const { sql } = bridge;
  const writer = bridge.connectAs("postgres");
  const namespace = await createNamespace(sql);

  await t.step("sees ADDED, MODIFIED and DELETED for changes made during the watch", async () => {
    const name = uniqueName("cm");
    const path = `/api/v1/namespaces/${namespace}/configmaps/${name}`;
    const watching = sql`
      select events, status from omni_kube.watch('v1', 'configmaps', namespace => ${namespace},
                                                 timeout => 3)`.execute(); // queries are lazy
    // The watch lists first, then watches: begin the changes once it runs (and a moment more).
    while (
      (await sql`select count(*)::int as n from omni_kube.request
                  where kind = 'watch' and state = 'running'`)[0].n === 0
    ) await sleep(20);
    await sleep(300);
    await createConfigMap(writer, namespace, name);
    await writer`select omni_kube.api(${path}, method => 'PATCH', body => '{"data":{"v":"2"}}')`;
    await writer`select omni_kube.api(${path}, method => 'DELETE')`;
    const [{ events, status }] = await watching;
    assert.equal(status, 200);
    assert.deepEqual(changes(events), [["ADDED", name], ["MODIFIED", name], ["DELETED", name]]);
  });

  await t.step(
    "from a saved resourceVersion: exactly one ADDED; from a later one: none",
    async () => {
      const saved = await collectionVersion(sql, namespace);
      const name = uniqueName("cm");
      await createConfigMap(sql, namespace, name);
      const [{ events }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${saved}, namespace => ${namespace})`;
      assert.deepEqual(changes(events), [["ADDED", name]]);

      const later = resumeVersion(events);
      const [{ events: none }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${later}, namespace => ${namespace})`;
      assert.deepEqual(changes(none), []);
      assert.equal(resumeVersion(none), later);
    },
  );

  await t.step("namespace, label and field selectors", async () => {
    const other = await createNamespace(sql);
    const saved = await collectionVersion(sql, namespace);
    const [red, blue, elsewhere] = [uniqueName("red"), uniqueName("blue"), uniqueName("far")];
    await createConfigMap(sql, namespace, red, { color: "red" });
    await createConfigMap(sql, namespace, blue, { color: "blue" });
    await createConfigMap(sql, other, elsewhere, { color: "red" });

    const [{ events: inNamespace }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${saved}, namespace => ${namespace})`;
    assert.deepEqual(changes(inNamespace).map(([, n]) => n), [red, blue]);

    const [{ events: labelled }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${saved}, namespace => ${namespace},
                                         label_selector => 'color in (red, green)')`;
    assert.deepEqual(changes(labelled).map(([, n]) => n), [red]);

    const [{ events: named }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${saved},
                                         field_selector => ${`metadata.name=${blue}`})`;
    assert.deepEqual(changes(named).map(([, n]) => n), [blue]);
  });

  await t.step(
    "a batch of three watches runs in parallel, one row per input in order",
    async () => {
      const rows = await sql`
      select events, status from omni_kube.watch(
        array['v1', 'apps/v1', 'v1'], array['configmaps', 'deployments', 'secrets'],
        timeout => 2, namespaces => array[${namespace}, ${namespace}, ${namespace}])`;
      assert.deepEqual(rows.map((r) => r.status), [200, 200, 200]);
      assert.deepEqual(rows.map((r) => r.events.at(-1).object.kind), [
        "ConfigMap",
        "Deployment",
        "Secret",
      ]);
      // All three were running at once: each was claimed before any of them finished.
      const [{ overlapping }] = await sql`
      with batch as (select * from omni_kube.request where kind = 'watch'
                      order by id desc limit 3)
      select max(claimed_at) < min(finished_at) as overlapping from batch`;
      assert.equal(overlapping, true);
    },
  );

  await t.step("an expired resourceVersion gives status 410 and the Status object", async () => {
    // The test bed serves PodTemplates from etcd (no watch cache), and the API server compacts
    // etcd's history every five minutes: compact it now, as that would, and resume from before.
    const etcd = Deno.env.get("OMNI_KUBE_TESTBED_ETCD_URL");
    assert.ok(etcd, "the test runner names the test bed's etcd");
    const templates = `/api/v1/namespaces/${namespace}/podtemplates`;
    const [{ before }] = await sql`
      select omni_kube.api(${templates}) -> 'metadata' ->> 'resourceVersion' as before`;
    // A watch from `before` starts at the next revision, and compaction keeps the one it names:
    // two writes put that revision behind the compacted one.
    await createConfigMap(sql, namespace, uniqueName("after"));
    await createConfigMap(sql, namespace, uniqueName("after"));
    const [{ now }] = await sql`
      select omni_kube.api(${templates}) -> 'metadata' ->> 'resourceVersion' as now`;
    const compaction = await fetch(`${etcd}/v3/kv/compaction`, {
      method: "POST",
      body: JSON.stringify({ revision: now, physical: true }),
    });
    assert.ok(
      compaction.ok,
      `etcd compaction: HTTP ${compaction.status} ${await compaction.text()}`,
    );
    const [{ events, status }] = await sql`
      select events, status from omni_kube.watch('v1', 'podtemplates', ${before},
                                                 namespace => ${namespace})`;
    assert.equal(status, 410);
    assert.equal(events[0].type, "ERROR");
    assert.equal(events[0].object.code, 410);
    assert.equal(events[0].object.reason, "Expired");
  });

  await t.step(
    "ten resumed watches around a stream of writes miss and repeat nothing",
    async () => {
      // Taken before the first write, so that every write comes after it.
      let version = await collectionVersion(sql, namespace);
      const created: string[] = [];
      let writing = true;
      const writes = (async () => {
        for (let i = 0; i < 30; i++) {
          const name = `stream-${String(i).padStart(2, "0")}-${uniqueName("x")}`;
          await createConfigMap(writer, namespace, name, { stream: "yes" });
          created.push(name);
          await sleep(150);
        }
        writing = false;
      })();
      const seen: string[] = [];
      for (let round = 0; round < 10 || writing; round++) {
        const [{ events, status }] = await sql`
        select events, status from omni_kube.watch('v1', 'configmaps', ${version},
          namespace => ${namespace}, label_selector => 'stream=yes')`;
        assert.equal(status, 200);
        for (const [type, name] of changes(events)) {
          assert.equal(type, "ADDED");
          seen.push(name!);
        }
        version = resumeVersion(events);
      }
      await writes;
      // Anything written after the last watch began is picked up by one more.
      const [{ events }] = await sql`
      select events from omni_kube.watch('v1', 'configmaps', ${version},
        namespace => ${namespace}, label_selector => 'stream=yes')`;
      seen.push(...changes(events).map(([, name]) => name!));
      assert.deepEqual(seen, created);
    },
  );

  await t.step("bad input is refused with a clear error", async () => {
    for (
      const [query, code] of [
        [sql`select * from omni_kube.watch('v1', 'configmaps', timeout => -1)`, "22023"],
        [sql`select * from omni_kube.watch('v1', 'configmaps', timeout => 100000)`, "22023"],
        [sql`select * from omni_kube.watch('not a version', 'pods')`, "22023"],
        [sql`select * from omni_kube.watch('v1', 'Pods; drop')`, "22023"],
        [sql`select * from omni_kube.watch(array['v1'], array['pods', 'secrets'])`, "2202E"],
      ] as const
    ) {
      await assert.rejects(query, (error: { code?: string }) => error.code === code);
    }
  });

  await writer.end();
});

Deno.test("omni_kube.watch(): a cancelled watch frees its worker slot", async () => {
  await using bridge = await startBridge("watchcancel", { watchConcurrency: 1 });
  const { sql } = bridge;
  await assert.rejects(
    sql.begin(async (tx) => {
      await tx`set local statement_timeout = '1s'`;
      await tx`select * from omni_kube.watch('v1', 'configmaps', timeout => 60)`;
    }),
    (error: { code?: string }) => error.code === "57014",
  );
  const [request] = await sql`
    select state, error from omni_kube.request where kind = 'watch' order by id desc limit 1`;
  assert.equal(request.state, "cancelled");
  assert.match(request.error, /cancelled the statement/);
  // With one watch slot, this watch can only run if the cancelled one let go of it; if not, it
  // would wait past its request timeout and fail.
  const [{ status }] = await sql.begin(async (tx) => {
    await tx`set local omni_kube.request_timeout = '2s'`;
    return await tx`select status from omni_kube.watch('v1', 'configmaps')`;
  });
  assert.equal(status, 200);
});
