/**
 * Dispatch end to end: GETs and HEADs that carry no secret travel whole on the secret dispatch
 * channel and are started by the worker holding their locks, with no claim before the call; the
 * rest are announced on omni_kube_request and claimed, as before.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { dropRoles, eventually, sqlError, testbedEnv, uniqueName } from "./testbed.ts";
import type { Worker } from "../lib/worker.ts";

const DEFAULT_NAMESPACE = "/api/v1/namespaces/default";

/** How many calls `workers` ran, from their metrics (every call run, answered or not). */
async function callsRun(workers: Worker[]): Promise<number> {
  let total = 0;
  for (const worker of workers) {
    const { values } = await worker.metrics!.results.get();
    for (const { value } of values) total += value;
  }
  return total;
}

Deno.test("dispatch", async (t) => {
  const env = testbedEnv();
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  await using bridge = await startBridge("dispatch");
  const { sql } = bridge;
  const member = uniqueName("member");
  await sql`create role ${sql(member)} login in role omni_kube`;
  const asMember = bridge.connectAs(member);

  try {
    await t.step(
      "a GET with the worker's credentials, or only a CA, is dispatched and recorded",
      async () => {
        const [{ ns }] = await asMember`select omni_kube.api(${DEFAULT_NAMESPACE}) as ns`;
        assert.equal(ns.metadata.name, "default");
        await asMember`select omni_kube.api('/version', server => ${env.KUBE_SERVER},
                                          cacert => ${caCert}, method => 'HEAD')`
          .catch(() => {}); // anonymous: the answer does not matter, only how it travelled
        const rows = await sql`
        select path, method::text, state::text, dispatched, worker_id = ${bridge.workers[0].id}
                 as by_worker, claimed_at is not null and claimed_at <= finished_at as claimed
          from omni_kube.request where requested_by = ${member} order by id`;
        assert.deepEqual(rows.map((r) => ({ ...r })), [
          {
            path: DEFAULT_NAMESPACE,
            method: "GET",
            state: "done",
            dispatched: true,
            by_worker: true,
            claimed: true,
          },
          {
            path: "/version",
            method: "HEAD",
            state: "done",
            dispatched: true,
            by_worker: true,
            claimed: true,
          },
        ]);
      },
    );

    await t.step(
      "a call with a secret, or one that changes something, is announced and claimed",
      async () => {
        const heard: string[] = [];
        // Anyone may listen here: what it carries names no request.
        const listener = await asMember.listen(
          "omni_kube_request",
          (payload) => heard.push(payload),
        );
        await asMember`select omni_kube.api(${DEFAULT_NAMESPACE})`;
        await sqlError(
          asMember`select omni_kube.api(${DEFAULT_NAMESPACE}, token => 'not-a-valid-token')`,
          "OK401",
        );
        await eventually(
          "the claimed call's notification",
          () => Promise.resolve(heard.length > 0 ? true : undefined),
          5000,
        );
        assert.deepEqual(heard, [""]);
        await listener.unlisten();
        const [{ dispatched }] = await sql`
        select dispatched from omni_kube.request
         where requested_by = ${member} order by id desc limit 1`;
        assert.equal(dispatched, false);
      },
    );

    await t.step("a member cannot read the dispatch channel's name", async () => {
      await sqlError(asMember`select value from omni_kube.instance_settings`, "42501");
    });

    await t.step(
      "two workers: every dispatched GET is done once, and hardly any is sent twice",
      async () => {
        await bridge.startWorker();
        const sessions = Array.from({ length: 4 }, () => bridge.connectAs(member));
        const before = await callsRun(bridge.workers);
        const [{ last }] =
          await sql`select coalesce(max(id), 0)::int8 as last from omni_kube.request`;
        // Rounds of 100 GETs until both workers have run some (which one holds a lock is a race).
        let rounds = 0;
        let workers = 0;
        while (workers < 2 && rounds < 10) {
          rounds++;
          await Promise.all(sessions.map(async (s) => {
            for (let i = 0; i < 25; i++) await s`select omni_kube.api(${DEFAULT_NAMESPACE})`;
          }));
          [{ workers }] = await sql`
          select count(distinct worker_id)::int as workers from omni_kube.request
           where id > ${last} and requested_by = ${member}`;
        }
        assert.equal(workers, 2);
        const [{ done }] = await sql`
        select count(*) filter (where state = 'done' and dispatched)::int as done
          from omni_kube.request where id > ${last} and requested_by = ${member}`;
        assert.equal(done, 100 * rounds);
        // A GET sent twice changes nothing, and races that send one twice are rare: a second send
        // for at most one request in fifty (under the load of a CI run, one in two hundred).
        const sent = await callsRun(bridge.workers) - before;
        assert.ok(
          sent >= 100 * rounds && sent <= 100 * rounds * 1.02,
          `${sent} calls sent for ${100 * rounds} requests`,
        );
        for (const s of sessions) await s.end();
      },
    );
  } finally {
    await asMember.end();
    await dropRoles(sql, member);
  }
});
