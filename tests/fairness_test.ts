/**
 * Fair shares between members (issue #21): one member's load cannot hold up another's calls. Each
 * role runs at most its share of the worker's slots (--role-concurrency, --role-watch-concurrency),
 * claims take roles in turn, and enqueueing past --role-queue-limit fails with OKL03.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { dropRoles, silentEndpoint, sqlError, uniqueName } from "./testbed.ts";
import { startEndpoint } from "../bench/endpoint.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` is true (polling every 20 ms), failing with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** Milliseconds `run` took. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

Deno.test("fair shares between members", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-fairness-" });
  const endpoint = await startEndpoint(dir);
  await using _endpoint = {
    async [Symbol.asyncDispose]() {
      await endpoint.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
  await using bridge = await startBridge("fair");
  const { sql } = bridge;
  const [nameA, nameB] = [uniqueName("member_a"), uniqueName("member_b")]
    .map((name) => name.replace("-", "_"));
  for (const name of [nameA, nameB]) await sql`create role ${sql(name)} login in role omni_kube`;
  const a = bridge.connectAs(nameA);
  const b = bridge.connectAs(nameB);
  /** The requests of `role` in `state`. */
  const count = async (role: string, state: string, kind = "api") => {
    const [{ n }] = await sql`select count(*)::int as n from omni_kube.request
                               where requested_by = ${role} and state = ${state}
                                 and kind = ${kind}`;
    return n as number;
  };
  /** A GET of the minimal endpoint, which answers at once. */
  const get = (as: typeof a) =>
    as`select omni_kube.api('/api/v1/namespaces/default', server => ${endpoint.url},
                            cacert => ${endpoint.caCert}, token => 'x') as ns`;

  try {
    await t.step(
      "a member's single calls return at once during another's 20,000 GETs",
      async () => {
        const paths = Array.from({ length: 20_000 }, (_, i) => `/api/v1/namespaces/n${i}`);
        const batch = a.begin(async (tx) => {
          await tx`set local omni_kube.request_timeout = '100s'`;
          return await tx`
          select count(*)::int as rows, count(*) filter (where status = 200)::int as ok
            from omni_kube.api(${paths}::text[], server => ${endpoint.url},
                               cacert => ${endpoint.caCert}, token => 'x')`;
        });
        // Settled even if the step fails before it awaits the batch: a rejection is then no
        // dangling promise, and the batch no longer holds A's queue when the next step begins.
        const settled = batch.then(() => undefined, () => undefined);
        // Half of the worker's 128 slots at most: the rest stay free for others.
        let mostRunning = 0;
        const durations: number[] = [];
        let stillQueued: number;
        try {
          await until("A's batch runs", async () => {
            mostRunning = Math.max(mostRunning, await count(nameA, "running"));
            return mostRunning > 0;
          });
          for (let i = 0; i < 10; i++) {
            durations.push(await timed(() => get(b)));
            mostRunning = Math.max(mostRunning, await count(nameA, "running"));
          }
          stillQueued = await count(nameA, "queued");
        } finally {
          await settled;
        }
        const [{ rows, ok }] = await batch;
        console.log(
          `B's calls during A's batch: ${durations.map((d) => d.toFixed(0)).join(", ")} ms; ` +
            `A ran at most ${mostRunning} at once, ${stillQueued} still queued after B's calls`,
        );
        assert.ok(stillQueued > 0, "A's batch ended before B's calls: nothing was measured");
        for (const d of durations) assert.ok(d < 500, `B's call took ${d.toFixed(0)} ms`);
        assert.ok(mostRunning <= 64, `A ran ${mostRunning} calls at once`);
        assert.deepEqual({ rows, ok }, { rows: 20_000, ok: 20_000 });
      },
    );

    await t.step(
      "a member's call and watch start at once while another holds 300 watches",
      async () => {
        const n = 300;
        const watches = a`
        select count(*)::int as rows from omni_kube.watch(
          array_fill('v1'::text, array[${n}::int]), array_fill('configmaps'::text, array[${n}::int]),
          timeout => 60, namespaces => array_fill('default'::text, array[${n}::int]))`.execute();
        const settled = watches.then(() => undefined, (e) => e);
        const calls: number[] = [];
        let waited: number;
        try {
          // A's share of the watch slots (256 of 1,024) runs; the rest of its watches wait.
          await until(
            "A's share of watches runs",
            async () => await count(nameA, "running", "watch") === 256,
          );
          assert.equal(await count(nameA, "queued", "watch"), n - 256);
          // (Measured while A holds them, not while the worker opens them.)
          await sleep(1000);
          for (let i = 0; i < 5; i++) calls.push(await timed(() => get(b)));
          await b`select * from omni_kube.watch('v1', 'configmaps', timeout => 1, namespace => 'default')`;
          const [row] = await sql`
          select extract(epoch from claimed_at - created_at) * 1000 as waited from omni_kube.request
           where requested_by = ${nameB} and kind = 'watch'`;
          waited = Number(row.waited);
        } finally {
          // Ended whatever happens: left running, A's watches would fill its queue for the steps
          // below, and their own calls would be refused (OKL03).
          watches.cancel();
        }
        assert.equal((await settled)?.code, "57014");
        console.log(
          `during A's 300 watches: B's calls ${
            calls.map((d) => d.toFixed(0)).join(", ")
          } ms, B's watch claimed after ${waited.toFixed(0)} ms`,
        );
        for (const d of calls) assert.ok(d < 500, `B's call took ${d.toFixed(0)} ms`);
        assert.ok(waited < 500, `B's watch waited ${waited.toFixed(0)} ms to start`);
      },
    );

    // A worker with small shares for the rest.
    for (const worker of bridge.workers.splice(0)) await worker.stop();
    await bridge.startWorker({ roleConcurrency: 1, roleWatchConcurrency: 2, roleQueueLimit: 5 });

    await t.step(
      "with --role-watch-concurrency 2, a member's extra watches wait, another's run",
      async () => {
        const watches = a`
        select count(*)::int as rows from omni_kube.watch(array_fill('v1'::text, array[4]),
          array_fill('configmaps'::text, array[4]), timeout => 2,
          namespaces => array_fill('default'::text, array[4]))`.execute();
        // Held from the start: a refusal (OKL03 when A's queue is not empty) fails this step
        // with its own error instead of escaping as an unhandled rejection.
        let failure: unknown;
        watches.catch((error) => failure = error);
        await until("A's share of watches runs", async () => {
          if (failure) throw failure;
          return await count(nameA, "running", "watch") === 2;
        });
        assert.equal(await count(nameA, "queued", "watch"), 2);
        const [{ rows: bRows }] = await b`
        select count(*)::int as rows from omni_kube.watch(array['v1', 'v1'],
          array['configmaps', 'configmaps'], timeout => 1, namespaces => array['default', 'default'])`;
        assert.equal(bRows, 2);
        const [{ rows }] = await watches;
        assert.equal(rows, 4);
        // B's ran while A's last two waited; A's ran two by two.
        const [order] = await sql`
        with w as (select requested_by, claimed_at, finished_at, row_number() over
                            (partition by requested_by order by claimed_at) as nth
                     from omni_kube.request
                    where kind = 'watch' and worker_id = ${bridge.workers[0].id})
        select (select max(claimed_at) from w where requested_by = ${nameB})
                 < (select min(claimed_at) from w where requested_by = ${nameA} and nth > 2) as b_first,
               (select min(claimed_at) from w where requested_by = ${nameA} and nth > 2)
                 >= (select min(finished_at) from w where requested_by = ${nameA} and nth <= 2)
                 as a_in_turn`;
        assert.deepEqual({ ...order }, { b_first: true, a_in_turn: true });
      },
    );

    await t.step(
      "past --role-queue-limit an enqueue fails with OKL03 and enqueues nothing",
      async () => {
        await using silent = silentEndpoint();
        const slow = (as: typeof a, paths: string[]) =>
          as.begin(async (tx) => {
            await tx`set local omni_kube.request_timeout = '3s'`;
            return await tx`select * from omni_kube.api(${paths}::text[], server => ${silent.url},
                                                       token => 'x')`;
          }).then(() => undefined, (e) => e);
        // A's one call slot is taken by a call that hangs; its next four wait in the queue.
        const running = slow(a, ["/hang"]);
        await until("A's call runs", async () => await count(nameA, "running") === 1);
        const queued = slow(a, ["/q1", "/q2", "/q3", "/q4"]);
        await until("A has four queued", async () => await count(nameA, "queued") === 4);
        const [{ before }] = await sql`select count(*)::int as before from omni_kube.request`;
        const error = await sqlError(
          a`select * from omni_kube.api(array['/a', '/b'], server => ${endpoint.url},
                                      cacert => ${endpoint.caCert}, token => 'x')`,
          "OKL03",
          new RegExp(`role ${nameA} has 4 requests queued; 2 more would pass its limit of 5`),
        );
        assert.match(error.hint ?? "", /--role-queue-limit/);
        // A batch over the limit by itself, from a member with nothing queued (one of 100 or
        // more, which counts under its role's lock).
        const many = Array.from({ length: 150 }, (_, i) => `/api/v1/namespaces/n${i}`);
        await sqlError(
          b`select * from omni_kube.api(${many}::text[], server => ${endpoint.url},
                                      cacert => ${endpoint.caCert}, token => 'x')`,
          "OKL03",
          new RegExp(`role ${nameB} has 0 requests queued; 150 more would pass its limit of 5`),
        );
        const [{ after }] = await sql`select count(*)::int as after from omni_kube.request`;
        assert.equal(after, before, "a refused call enqueued requests");
        // Others' calls are not refused.
        const [{ ns }] = await get(b);
        assert.equal(ns.kind, "Namespace");
        await running;
        await queued;
      },
    );

    await t.step("a claim takes roles in turn, within each role's room", async () => {
      // No worker: the claims are made here, on requests made here.
      for (const worker of bridge.workers.splice(0)) await worker.stop();
      await sql`delete from omni_kube.request`;
      const enqueue = (role: string, kind: string, n: number) =>
        sql`insert into omni_kube.request (kind, method, path, timeout_ms, requested_by,
                                           session_role, backend_pid, enqueue_key,
                                           statement_started)
            select ${kind}, 'GET', '/api/' || i, 1000, ${role}, ${role}, 0, gen_random_uuid(), now()
              from generate_series(1, ${n}::int) i`;
      await enqueue(nameA, "api", 5);
      await enqueue(nameB, "api", 3);
      await enqueue(nameA, "watch", 3);
      type Busy = { roles: string[]; api: number[]; watch: number[] };
      const none: Busy = { roles: [], api: [], watch: [] };
      const rollback = new Error("rollback");
      /** What a claim of `api` and `watch` slots takes (each role: 10 calls, 2 watches). */
      const claim = async (api: number, watch: number, busy = none) => {
        let taken: string[] = [];
        await sql.begin(async (tx) => {
          const rows = await tx`
            select kind, requested_by, path from omni_kube._claim_requests(gen_random_uuid(),
              ${api}, ${watch}, 10, 2, ${busy.roles}::name[], ${busy.api}::int[],
              ${busy.watch}::int[])`;
          taken = rows.map((r) => `${r.kind} ${r.requested_by === nameA ? "A" : "B"} ${r.path}`);
          throw rollback;
        }).catch((e) => {
          if (e !== rollback) throw e;
        });
        return taken;
      };
      // The oldest of each role, then the second of each: A's five came first, yet B's run too.
      assert.deepEqual(await claim(4, 0), [
        "api A /api/1",
        "api A /api/2",
        "api B /api/1",
        "api B /api/2",
      ]);
      // A role the worker runs requests of takes what its room leaves it.
      assert.deepEqual(
        await claim(4, 0, { roles: [nameA], api: [1], watch: [0] }),
        ["api A /api/1", "api B /api/1", "api B /api/2", "api B /api/3"],
      );
      assert.deepEqual(await claim(0, 3), ["watch A /api/1", "watch A /api/2"]);
      assert.deepEqual(await claim(0, 3, { roles: [nameA], api: [10], watch: [0] }), []);
      // Rows another worker is claiming are skipped.
      const other = bridge.connectAs("postgres");
      let release!: () => void;
      const released = new Promise<void>((resolve) => release = resolve);
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => locked = resolve);
      const holder = other.begin(async (tx) => {
        await tx`select from omni_kube.request where requested_by = ${nameB}
                  order by id limit 1 for update`;
        locked();
        await released;
      });
      await isLocked;
      assert.deepEqual(await claim(4, 0), [
        "api A /api/1",
        "api A /api/2",
        "api B /api/2",
        "api B /api/3",
      ]);
      release();
      await holder;
    });
  } finally {
    await a.end();
    await b.end();
    await dropRoles(sql, nameA, nameB);
  }
});
