/**
 * Members cannot hurt each other (issue #21): each case against a hostile HTTPS endpoint started
 * here (tests/hostile.ts) and two member roles made here, A (who calls) and B (who attacks).
 *
 * The memory bound stated: while it reads from servers that never stop sending, the worker
 * process's resident set (VmRSS sampled, and its peak VmHWM) stays within its resident set before
 * plus 3 x --max-response-bytes (what a call may hold: its lines or events, the line being read,
 * their copies) plus 192 MiB. The 192 MiB is the garbage the runtime lets pile up: V8 collects
 * network buffers only once some 64 MiB of them are garbage, its heap grows ahead of what is
 * live, and freed pages stay resident (the growth measured here over these four calls was 84 to
 * 147 MiB with an 8 MiB limit, the most on a busy machine). Without the limit the worker would
 * keep whatever the server sends until the call's timeout: gigabytes.
 * The disk bound: omni_kube.response_piece grows by at most --max-response-bytes x 1.1 + 1 MiB
 * (its pages, committed or not) for one call.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type Bridge, startBridge } from "./bridge.ts";
import { dropRoles, sqlError, uniqueName } from "./testbed.ts";
import { type EndlessResponse, type HostileEndpoint, hostileEndpoint } from "./hostile.ts";
import { promptly } from "./kube/fakes.ts";

/** A connection, or a transaction on one. */
type Session = postgres.Sql<Record<string, never>> | postgres.TransactionSql<Record<string, never>>;

const MiB = 1024 * 1024;
/** The worker's --max-response-bytes in these tests. */
const LIMIT = 8 * MiB;
/** The worker's --max-watch-events in these tests. */
const MAX_EVENTS = 2000;
/** The memory bound stated above, over the resident set before. */
const MEMORY_BOUND = 3 * LIMIT + 192 * MiB;
/** The disk bound stated above. */
const DISK_BOUND = LIMIT * 1.1 + MiB;
const OVER_LIMIT = /the response exceeded 8388608 bytes \(--max-response-bytes\); it was not kept/;
/** Classes of the request locks and of the worker locks (omni_kube._lock_class() and friends). */
const LOCK_CLASS = 1869442401;
const WORKER_LOCK_CLASS = 1869442402;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Two member roles (`in role omni_kube`) with a connection each, and `connect` for more; on
 * dispose, the connections are closed (a query still waiting is dropped) and the roles dropped.
 */
async function members(bridge: Bridge) {
  const { sql } = bridge;
  const names = [uniqueName("member_a"), uniqueName("member_b")].map((n) => n.replace("-", "_"));
  for (const name of names) await sql`create role ${sql(name)} login in role omni_kube`;
  const connections: ReturnType<Bridge["connectAs"]>[] = [];
  const connect = (name: string) => {
    const connection = bridge.connectAs(name);
    connections.push(connection);
    return connection;
  };
  return {
    a: connect(names[0]),
    b: connect(names[1]),
    nameA: names[0],
    nameB: names[1],
    connect,
    async [Symbol.asyncDispose]() {
      for (const connection of connections) await connection.end({ timeout: 1 });
      await dropRoles(sql, ...names);
    },
  };
}

/** `omni_kube.api(path)` against the hostile endpoint. */
function call(sql: Session, hostile: HostileEndpoint, path: string, stream = false) {
  return sql`select omni_kube.api(${path}, server => ${hostile.url}, cacert => ${hostile.caCert},
                                  token => 'x', stream => ${stream}) as response`;
}

/** Calls `read` every `ms` until stopped; `stop()` gives the highest value it returned. */
function sample(read: () => number | Promise<number>, ms = 20) {
  let running = true;
  let max = -Infinity;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await read());
      await sleep(ms);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Resident set and its peak of process `pid`, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kB = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))![1]);
  return { rss: kB("VmRSS") * 1024, peak: kB("VmHWM") * 1024 };
}

/** The endless response the endpoint began last, which must be of `mode`. */
function lastEndless(hostile: HostileEndpoint, mode: string): EndlessResponse {
  const response = hostile.endless.at(-1);
  assert.equal(response?.mode, mode, "the endpoint did not get the call");
  return response!;
}

/** Polls `query` (a count) until it is 0, for `ms` at most; returns the last count. */
async function untilNone(query: () => Promise<number>, ms = 5000): Promise<number> {
  const deadline = performance.now() + ms;
  let count = await query();
  while (count > 0 && performance.now() < deadline) {
    await sleep(50);
    count = await query();
  }
  return count;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

Deno.test("a server that never stops sending: the worker lives, in bounded memory", async (t) => {
  await using hostile = await hostileEndpoint();
  await using bridge = await startBridge("iso_memory");
  for (const worker of bridge.workers.splice(0)) await worker.stop();
  const worker = await bridge.spawnWorker([
    "--max-response-bytes",
    String(LIMIT),
    "--max-watch-events",
    String(MAX_EVENTS),
    "--http-port",
    "0",
    "--http-host",
    "127.0.0.1",
  ]);
  let exited = false;
  worker.status.then(() => exited = true);
  await using roles = await members(bridge);
  const { a, b } = roles;
  // Warm: a call to the endpoint and one to the cluster, then the resident set before.
  await call(a, hostile, "/ok");
  await b`select omni_kube.api('/api/v1/namespaces/default')`;
  await sleep(300);
  const before = memory(worker.pid).rss;
  // Resets VmHWM to the current resident set (Linux: "5" in clear_refs).
  await Deno.writeTextFile(`/proc/${worker.pid}/clear_refs`, "5");
  const rss = sample(() => memory(worker.pid).rss);

  /** The endless response ended by the worker soon after the call failed, near the limit. */
  const stoppedNearLimit = async (response: EndlessResponse) => {
    await promptly(response.closed, 2000);
    assert.ok(response.sent < 2 * LIMIT, `the endpoint sent ${mib(response.sent)}`);
  };
  /** The worker process still runs and serves B. */
  const serves = async () => {
    assert.equal(exited, false, "the worker process died");
    const [{ kind }] =
      await b`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
    assert.equal(kind, "Namespace");
  };

  await t.step("stream => true, NDJSON without end: OKL01", async () => {
    await sqlError(call(a, hostile, "/endless-ndjson", true), "OKL01", OVER_LIMIT);
    await stoppedNearLimit(lastEndless(hostile, "endless-ndjson"));
    await serves();
  });

  await t.step("stream => true, a line that never ends: OKL01", async () => {
    await sqlError(call(a, hostile, "/endless-line", true), "OKL01", OVER_LIMIT);
    await stoppedNearLimit(lastEndless(hostile, "endless-line"));
    await serves();
  });

  await t.step(
    "watch(): events without end, small (event limit) and large (byte limit)",
    async () => {
      const watch = (resource: string) =>
        a`select * from omni_kube.watch('v1', ${resource}, timeout => 60, server => ${hostile.url},
                                      cacert => ${hostile.caCert}, token => 'x')`;
      await sqlError(
        watch("watchable"),
        "OKL01",
        /the watch exceeded 2000 events \(--max-watch-events\); it was not kept/,
      );
      await stoppedNearLimit(lastEndless(hostile, "watchable"));
      await sqlError(
        watch("watchable-large"),
        "OKL01",
        /the watch exceeded 8388608 bytes \(--max-response-bytes\); it was not kept/,
      );
      await stoppedNearLimit(lastEndless(hostile, "watchable-large"));
      await serves();
    },
  );

  await t.step(`memory: within the resident set before + ${mib(MEMORY_BOUND)}`, async () => {
    const sampled = await rss.stop();
    const { peak } = memory(worker.pid);
    console.log(
      `worker memory: before ${mib(before)}, sampled max ${mib(sampled)}, peak ${mib(peak)}`,
    );
    assert.ok(sampled - before <= MEMORY_BOUND, `sampled ${mib(sampled)} over ${mib(before)}`);
    assert.ok(peak - before <= MEMORY_BOUND, `peak ${mib(peak)} over ${mib(before)}`);
  });
});

Deno.test("a body without end: bounded on disk; a cancelled caller stops the read", async (t) => {
  await using hostile = await hostileEndpoint();
  await using bridge = await startBridge("iso_disk", { maxResponseBytes: LIMIT });
  await using roles = await members(bridge);
  const { a } = roles;
  const { sql } = bridge;
  const pieces = async () => {
    const [{ n }] = await sql`select count(*)::int as n from omni_kube.response_piece`;
    return n as number;
  };

  await t.step("OKL01; response_piece never over the limit, empty afterwards", async () => {
    // Its pages, committed rows or not (the pieces are copied in one transaction), and whether
    // the worker's COPY into it runs.
    const disk = async () => {
      const [row] = await sql`
        select pg_total_relation_size('omni_kube.response_piece')::int8 as bytes,
               exists (select from pg_stat_activity
                        where application_name = 'omni_kube_worker_copy'
                          and query ~ 'copy omni_kube.response_piece' and state = 'active')
                 as copying`;
      return { bytes: Number(row.bytes), copying: row.copying as boolean };
    };
    const before = (await disk()).bytes;
    let copying = false;
    const growth = sample(async () => {
      const now = await disk();
      copying ||= now.copying;
      return now.bytes - before;
    }, 10);
    // At 5 MiB/s: for a while the body goes to the database, piece by piece.
    await sqlError(call(a, hostile, "/endless-body?trickle=256"), "OKL01", OVER_LIMIT);
    const peak = await growth.stop();
    console.log(`response_piece: peak growth ${mib(peak)}`);
    assert.ok(copying, "the body never went to response_piece");
    assert.ok(peak <= DISK_BOUND, `response_piece grew by ${mib(peak)}`);
    assert.equal(await pieces(), 0);
    const [request] = await sql`
      select state, error_code from omni_kube.request order by id desc limit 1`;
    assert.deepEqual({ ...request }, { state: "failed", error_code: "OKL01" });
  });

  /** The endless response of the last call was closed within 2 s of the caller's cancel. */
  const closedAtOnce = async (mode: string, cancelledAt: number) => {
    const response = lastEndless(hostile, mode);
    await promptly(response.closed, 3000);
    const after = response.closedAt! - cancelledAt;
    console.log(`${mode}: closed ${Math.round(after)} ms after the caller's cancel`);
    assert.ok(after < 2000, `closed ${Math.round(after)} ms after the cancel`);
    assert.ok(response.sent < LIMIT, "it should not have reached the limit");
  };
  /** A's last request was cancelled, and nothing of its body stays. */
  const cancelled = async () => {
    const [request] = await sql`select state from omni_kube.request order by id desc limit 1`;
    assert.equal(request.state, "cancelled");
    assert.equal(await untilNone(pieces), 0);
  };

  await t.step("statement_timeout stops a large body's read at once", async () => {
    const error = await a.begin(async (tx) => {
      await tx`set local statement_timeout = '1500ms'`;
      await call(tx, hostile, "/endless-body?trickle");
    }).then(() => undefined, (e) => e);
    const cancelledAt = performance.now();
    assert.equal(error?.code, "57014", String(error));
    // At 16 KiB every 50 ms, more than the 256 KiB that makes a body large went to the pieces.
    assert.ok(lastEndless(hostile, "endless-body").sent > 256 * 1024);
    await closedAtOnce("endless-body", cancelledAt);
    await cancelled();
  });

  await t.step("pg_cancel_backend stops a stream's read at once", async () => {
    const error = await a.begin(async (tx) => {
      const [{ pid }] = await tx`select pg_backend_pid() as pid`;
      const cancel = sleep(1000).then(() => sql`select pg_cancel_backend(${pid})`);
      try {
        await call(tx, hostile, "/endless-ndjson?trickle", true);
      } finally {
        await cancel;
      }
    }).then(() => undefined, (e) => e);
    const cancelledAt = performance.now();
    assert.equal(error?.code, "57014", String(error));
    await closedAtOnce("endless-ndjson", cancelledAt);
    await cancelled();
  });
});

Deno.test("forged cancellations and done notifications stop none of A's calls", async () => {
  await using hostile = await hostileEndpoint();
  await using bridge = await startBridge("iso_cancel");
  await using roles = await members(bridge);
  const { a, b, nameA } = roles;
  const { sql } = bridge;
  // B has a request of its own: it knows where the ids are.
  await call(b, hostile, "/ok");
  const started = performance.now();
  const paths = Array.from({ length: 5 }, (_, i) => `/slow?ms=1000&n=${i}`);
  const calls = Promise.all([
    call(a, hostile, "/slow?ms=1000"),
    a`select response, status from omni_kube.api(${paths}::text[],
        server => ${hostile.url}, cacert => ${hostile.caCert}, token => 'x')`,
  ]);
  let running: { id: string; backend_pid: number }[] = [];
  for (let i = 0; i < 100 && running.length < 6; i++) {
    await sleep(20);
    running = await sql`select id, backend_pid from omni_kube.request
                         where requested_by = ${nameA} and state = 'running'`;
  }
  assert.equal(running.length, 6, "A's calls did not start");
  const ids = running.map((r) => r.id).join(",");
  const [{ last }] = await b`select max(id)::int as last from omni_kube.requests`;
  const everyId = Array.from({ length: last + 100 }, (_, i) => i + 1).join(",");

  // What B can reach, refused.
  for (
    const forged of [
      b`select omni_kube._cancel_requests(${`{${ids}}`}::bigint[], 'forged')`,
      b`select omni_kube._abandon(${`{${ids}}`}::bigint[], 'forged')`,
      b`select pg_cancel_backend(${running[0].backend_pid})`,
    ]
  ) await sqlError(forged, "42501");
  // A flood of notifications, the whole time A's calls run.
  let forgeries = 0;
  let flooding = true;
  const flood = (async () => {
    while (flooding) {
      await b`select pg_notify('omni_kube_cancel', ${ids}), pg_notify('omni_kube_cancel', ${everyId}),
                     pg_notify('omni_kube_cancel', ''), pg_notify('omni_kube_done', ${ids}),
                     pg_notify('omni_kube_done', ${everyId}), pg_notify('omni_kube_done', '*')`;
      forgeries += 6;
      await sleep(10);
    }
  })();
  try {
    const [[{ response }], rows] = await calls;
    assert.deepEqual(response, {});
    assert.deepEqual(rows.map((r) => [r.status, r.response]), paths.map(() => [200, {}]));
  } finally {
    flooding = false;
    await flood;
  }
  const elapsed = performance.now() - started;
  console.log(`${forgeries} forged notifications; A's calls took ${Math.round(elapsed)} ms`);
  assert.ok(forgeries > 50, "B did not get to forge");
  assert.ok(elapsed < 2500, `A's calls took ${Math.round(elapsed)} ms`);
  const states = await sql`select state, count(*)::int as n from omni_kube.request
                            where requested_by = ${nameA} group by state`;
  assert.deepEqual(states.map((r) => [r.state, r.n]), [["done", 6]]);
  assert.equal(hostile.received("slow"), 6, "each call was sent once");
});

Deno.test("forged attribution: B's requests are B's, and B sees only its own", async () => {
  await using bridge = await startBridge("iso_attribution");
  await using roles = await members(bridge);
  const { a, b, nameA, nameB } = roles;
  const { sql } = bridge;
  await a`select omni_kube.api('/api/v1/namespaces/default')`;

  // No function B may run takes the role to attribute a request to.
  const roleParameters = await sql`
    select p.oid::regprocedure::text as function from pg_proc p
     where p.pronamespace = 'omni_kube'::regnamespace
       and has_function_privilege(${nameB}, p.oid, 'execute')
       and exists (select from unnest(p.proargnames) a
                    where a ~* 'role|requested|user|owner|session')`;
  assert.deepEqual(roleParameters.map((r) => r.function), []);

  // A direct _call is attributed to B.
  const [direct] = await b`
    select id, state from omni_kube._call('api', array['/api/v1/namespaces/default'],
                                          array['GET']::omni_kube.http_method[],
                                          array[null]::jsonb[], false, null, null, null, null)`;
  assert.equal(direct.state, "done");
  const [row] = await sql`select requested_by, session_role from omni_kube.request
                           where id = ${direct.id}`;
  assert.deepEqual({ ...row }, { requested_by: nameB, session_role: nameB });

  // B cannot become A.
  await sqlError(b`set role ${b(nameA)}`, "42501");
  await sqlError(b`set session authorization ${b(nameA)}`, "42501");
  await sqlError(b`select set_config('role', ${nameA}, false)`, "42501");
  await sqlError(
    b.begin(async (tx) => {
      await tx`set local role ${tx(nameA)}`;
      await tx`select omni_kube.api('/api/v1/namespaces/default')`;
    }),
    "42501",
  );

  // B's view holds B's requests only; A's exist.
  const seen = await b`select distinct requested_by from omni_kube.requests`;
  assert.deepEqual(seen.map((r) => r.requested_by), [nameB]);
  const [{ theirs }] = await sql`
    select count(*)::int as theirs from omni_kube.request where requested_by = ${nameA}`;
  assert.ok(theirs > 0);
});

Deno.test("advisory-lock squatting: A's latency holds; liveness is not fooled", async (t) => {
  await using hostile = await hostileEndpoint();
  await using bridge = await startBridge("iso_locks");
  for (const worker of bridge.workers.splice(0)) await worker.stop();
  const worker = await bridge.spawnWorker(["--http-port", "0", "--http-host", "127.0.0.1"]);
  await using roles = await members(bridge);
  const { a, b, nameA, nameB } = roles;
  const { sql } = bridge;
  // B's extra connections, for waits that block.
  const waits = roles.connect(nameB);
  const workerKeyWait = roles.connect(nameB);
  // The advisory locks of this database, as anyone may read them in pg_locks: the keys as given.
  await sql`
    create view advisory_keys as
      select classid::int4 as class, objid::int8::bit(32)::int4 as key, granted, pid
        from pg_locks
       where locktype = 'advisory' and objsubid = 2
         and database = (select oid from pg_database where datname = current_database())`;
  await sql`grant select on advisory_keys to ${sql(nameB)}`;

  /** `n` single calls of A one after the other: their median and slowest, in ms. */
  const latencies = async (n: number) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      await call(a, hostile, "/ok");
      times.push(performance.now() - started);
    }
    times.sort((x, y) => x - y);
    return { median: times[Math.floor(n / 2)], max: times[n - 1] };
  };
  const workerRow = async () => {
    const [row] = await sql`select lock_key, lock_backend_pid from omni_kube.workers`;
    return row as { lock_key: number; lock_backend_pid: number };
  };
  /** Whether one of B's sessions holds (or waits for) worker lock `key`. */
  const bHoldsWorkerKey = async (key: number, granted = true) => {
    const [{ holds }] = await sql`
      select exists (select from advisory_keys l join pg_stat_activity s using (pid)
                      where l.class = ${WORKER_LOCK_CLASS} and l.key = ${key}
                        and l.granted = ${granted} and s.usename = ${nameB}) as holds`;
    return holds as boolean;
  };

  /** B's blocking wait for the worker's key, queued while the worker holds it. */
  const waitForWorkerKey = async (key: number) => {
    const waiting = workerKeyWait`select pg_advisory_lock(${WORKER_LOCK_CLASS}, ${key}::int4)`
      .then(() => "granted", (error) => error);
    for (let i = 0; i < 50 && !await bHoldsWorkerKey(key, false); i++) await sleep(20);
    assert.ok(await bHoldsWorkerKey(key, false), "B is not waiting for the worker's key");
    // (In an object: an async function would wait for the promise it returns.)
    return { waiting };
  };
  let workerKeySquat: { waiting: Promise<unknown> } | undefined;

  await latencies(10);
  const baseline = await latencies(100);

  await t.step("B squats every key it can see or guess: A's calls keep their latency", async () => {
    // The keys of the next few hundred ids in the unsalted scheme of 0.1.0.
    await call(b, hostile, "/ok");
    const [{ last }] = await b`select max(id)::int8 as last from omni_kube.requests`;
    const [{ plain }] = await b`
      select count(*) filter (where pg_try_advisory_lock(${LOCK_CLASS}, (k % 2147483648)::int4))::int
               as plain
        from generate_series(${last}::int8 + 1, ${last}::int8 + 300) k`;
    assert.ok(
      plain >= 290,
      `B took only ${plain} of the 300 plain keys: others hold them (the request keys?)`,
    );
    // The worker's lock, as B reads it in pg_locks, and key 0.
    const { lock_key } = await workerRow();
    const [{ seen }] = await b`
      select array_agg(key) as seen from advisory_keys
       where class = ${WORKER_LOCK_CLASS} and granted`;
    assert.deepEqual(seen, [lock_key]);
    const [tried] = await b`
      select pg_try_advisory_lock(${WORKER_LOCK_CLASS}, ${lock_key}::int4) as exclusive,
             pg_try_advisory_lock_shared(${WORKER_LOCK_CLASS}, ${lock_key}::int4) as shared,
             pg_try_advisory_lock(${WORKER_LOCK_CLASS}, 0) as zero`;
    assert.deepEqual({ ...tried }, { exclusive: false, shared: false, zero: true });
    workerKeySquat = await waitForWorkerKey(lock_key);

    // Every advisory key held by others, tried both ways, again and again; and blocking waits on
    // the worker's window keys, a few at a time, each given up after a while for another.
    let squatting = true;
    let tries = 0;
    let queued = 0;
    const everyKey = (async () => {
      while (squatting) {
        const [{ n }] = await b`
          select count(*)::int as n from (
            select pg_try_advisory_lock(class, key), pg_try_advisory_lock_shared(class, key)
              from (select distinct class, key from advisory_keys
                     where pid not in (select pid from pg_stat_activity
                                        where usename = current_user)) l) tried`;
        tries += n;
        await sleep(20);
      }
    })();
    const windowWaits = Array.from({ length: 4 }, () =>
      (async () => {
        while (squatting) {
          await waits.begin(async (tx) => {
            await tx`set local statement_timeout = '100ms'`;
            const [held] = await tx`
              select key from advisory_keys
               where class = ${LOCK_CLASS} and granted
                 and pid not in (select pid from pg_stat_activity where usename = current_user)
               order by random() limit 1`;
            if (!held) return;
            queued++;
            await tx`select pg_advisory_lock(${LOCK_CLASS}, ${held.key}::int4)`;
          }).catch(() => {}); // the wait's timeout
        }
      })());
    let squatted;
    try {
      await sleep(200);
      squatted = await latencies(100);
    } finally {
      squatting = false;
      await Promise.all([everyKey, ...windowWaits]);
    }
    console.log(
      `A's calls: baseline median ${baseline.median.toFixed(1)} ms, max ${
        baseline.max.toFixed(1)
      } ms; squatted median ${squatted.median.toFixed(1)} ms, max ${
        squatted.max.toFixed(1)
      } ms (B: ${plain} plain keys, ${tries} keys tried, ${queued} waits queued)`,
    );
    assert.ok(tries > 1000 && queued > 10, "B's squatting did not happen");
    // The keys B took ahead of A's requests are none of theirs (they would be, unsalted).
    const [{ squattedOnes }] = await sql`
      select count(*)::int as "squattedOnes" from omni_kube.request
       where requested_by = ${nameA} and id > ${last}
         and omni_kube._lock_key(id, omni_kube._lock_salt())
               in (select (k % 2147483648)::int4
                     from generate_series(${last}::int8 + 1, ${last}::int8 + 300) k)`;
    assert.equal(squattedOnes, 0, "A's requests used keys B held");
    assert.ok(
      squatted.median <= 1.5 * baseline.median + 20,
      `median ${squatted.median} ms against ${baseline.median} ms`,
    );
    assert.ok(squatted.max <= 200, `a call took ${squatted.max} ms`);
  });

  await t.step("the worker's queue session terminated while B waits for its key", async () => {
    const before = await workerRow();
    assert.ok(await bHoldsWorkerKey(before.lock_key, false), "B is not waiting for the key");
    await sql`select pg_terminate_backend(${before.lock_backend_pid})`;
    assert.equal(await promptly(workerKeySquat!.waiting, 5000), "granted");
    assert.ok(await bHoldsWorkerKey(before.lock_key), "B does not hold the worker's old key");
    // Registered again, on a key of its own.
    let after = before;
    for (let i = 0; i < 100 && after.lock_backend_pid === before.lock_backend_pid; i++) {
      await sleep(100);
      after = await workerRow();
    }
    assert.notEqual(after.lock_backend_pid, before.lock_backend_pid, "not registered again");
    assert.notEqual(after.lock_key, before.lock_key);
    const [{ alive }] = await a`select omni_kube._worker_alive() as alive`;
    assert.equal(alive, true);
    const [{ response }] = await call(a, hostile, "/ok");
    assert.deepEqual(response, {});
  });

  await t.step("the worker killed while B waits for its key: A is told at once", async () => {
    const { lock_key } = await workerRow();
    const squat = await waitForWorkerKey(lock_key);
    // A call in flight when it dies, and the next one.
    const inFlight = call(a, hostile, "/slow?ms=5000").then(() => undefined, (e) => e);
    await sleep(500);
    worker.kill("SIGKILL");
    await worker.status;
    const killed = performance.now();
    assert.equal(await promptly(squat.waiting, 5000), "granted");
    assert.ok(await bHoldsWorkerKey(lock_key), "B does not hold the dead worker's key");
    const error = await inFlight;
    assert.equal(error?.code, "OKW02", String(error));
    await a`set omni_kube.request_timeout = '30s'`;
    await sqlError(call(a, hostile, "/ok"), "OKW01");
    const elapsed = performance.now() - killed;
    assert.ok(elapsed < 5000, `told after ${Math.round(elapsed)} ms`);
  });
});

Deno.test("a cancelled batch: nothing of it queued or sent afterwards", async (t) => {
  await using hostile = await hostileEndpoint();
  await using bridge = await startBridge("iso_batch");
  await using roles = await members(bridge);
  const { a, nameA } = roles;
  const { sql } = bridge;
  const unfinished = async () => {
    const [{ n }] = await sql`select count(*)::int as n from omni_kube.request
                               where requested_by = ${nameA} and state in ('queued', 'running')`;
    return n as number;
  };
  const callsInFlight = async () => {
    const metric = await bridge.workers[0].metrics!.inFlight.get();
    return metric.values.reduce((sum, { value }) => sum + value, 0);
  };
  /**
   * After the cancel: nothing left in the queue or in the worker's hands, and from then on the
   * endpoint gets nothing more. A call started just before its row was cancelled may still reach
   * the endpoint until the worker has stopped it, so the count is taken once nothing is in flight.
   */
  const settles = async (method: string, atCancel: number) => {
    assert.equal(await untilNone(unfinished), 0, "requests of the batch are left");
    assert.equal(await untilNone(callsInFlight), 0, "the worker still runs calls of the batch");
    // Bytes already written to a socket before the abort reach a local endpoint within this.
    await sleep(200);
    const settled = hostile.received("slow", method);
    await sleep(1500);
    assert.equal(hostile.received("slow", method), settled, "the endpoint still gets calls");
    // What was in flight: at most one claim's worth (the worker's concurrency, 128).
    assert.ok(settled - atCancel <= 128, `${settled - atCancel} sent after the cancel`);
    return settled;
  };

  await t.step("3,000 POSTs under statement_timeout = 1s: 57014", async () => {
    const n = 3000;
    const error = await a.begin(async (tx) => {
      await tx`set local statement_timeout = '1s'`;
      await tx`select count(*) from omni_kube.api(${Array(n).fill("/slow")}::text[],
                 server => ${hostile.url}, cacert => ${hostile.caCert}, token => 'x',
                 methods => array_fill('POST'::omni_kube.http_method, array[${n}::int]),
                 bodies => array_fill('{}'::jsonb, array[${n}::int]))`;
    }).then(() => undefined, (e) => e);
    const atCancel = hostile.received("slow", "POST");
    assert.equal(error?.code, "57014", String(error));
    const sent = await settles("POST", atCancel);
    console.log(`3,000 POSTs: ${atCancel} received by the cancel, ${sent} in all`);
    assert.ok(sent < n / 2, `${sent} POSTs were sent`);
    const [{ cancelled }] = await sql`select count(*)::int as cancelled from omni_kube.request
                                       where requested_by = ${nameA} and state = 'cancelled'`;
    assert.ok(cancelled >= n - sent, `${cancelled} cancelled`);
  });

  await t.step("20,000 GETs cancelled with pg_cancel_backend", async () => {
    const n = 20_000;
    const paths = Array.from({ length: n }, (_, i) => `/slow?n=${i}`);
    let atCancel = 0;
    const error = await a.begin(async (tx) => {
      const [{ pid }] = await tx`select pg_backend_pid() as pid`;
      const batch = tx`select count(*) from omni_kube.api(${paths}::text[],
                         server => ${hostile.url}, cacert => ${hostile.caCert}, token => 'x')`
        .then(() => undefined, (e) => e);
      // Cancelled once the whole batch is queued and the first have been sent.
      for (let i = 0; i < 200 && hostile.received("slow", "GET") === 0; i++) await sleep(50);
      await sql`select pg_cancel_backend(${pid})`;
      atCancel = hostile.received("slow", "GET");
      const failure = await batch;
      if (failure) throw failure;
    }).then(() => undefined, (e) => e);
    assert.equal(error?.code, "57014", String(error));
    const sent = await settles("GET", atCancel);
    console.log(`20,000 GETs: ${atCancel} received by the cancel, ${sent} in all`);
    assert.ok(sent < 2000, `${sent} GETs were sent`);
  });
});
