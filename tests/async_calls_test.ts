/**
 * Asynchronous calls end to end (`omni_kube.api_async`, `result`, `results`), against the test
 * bed's kube-apiserver and a local HTTPS endpoint: sent after commit and never on rollback, once;
 * results read as api() returns them; retries that honour Retry-After; callbacks run as the member
 * that made the request; producers in loops and statement-level triggers.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { hostileEndpoint } from "./hostile.ts";
import { createNamespace, eventually, sqlError, uniqueName } from "./testbed.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A ConfigMap named `name`, as a POST body. */
function configMap(name: string): string {
  return JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name } });
}

Deno.test("async calls", async (t) => {
  await using bridge = await startBridge("async");
  await using endpoint = await hostileEndpoint();
  const { sql } = bridge;
  const member = uniqueName("member");
  const other = uniqueName("other");
  await sql`create role ${sql(member)} login in role omni_kube`;
  await sql`create role ${sql(other)} login in role omni_kube`;
  const asMember = bridge.connectAs(member);
  const asOther = bridge.connectAs(other);
  const namespace = await createNamespace(sql, "async");
  const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
  /** The names of the ConfigMaps in the namespace, from the API server. */
  const names = async () => {
    const [{ list }] = await sql`select omni_kube.api(${configMaps}) as list`;
    return (list.items as { metadata: { name: string } }[])
      .map((item) => item.metadata.name)
      .filter((name) => name !== "kube-root-ca.crt")
      .sort();
  };

  await t.step(
    "a rolled-back transaction sends nothing; a committed one sends each once",
    async () => {
      const rollBack = new Error("roll back");
      const rolledBack = await asMember.begin(async (tx) => {
        await tx`select omni_kube.api_async(${configMaps}, method => 'POST',
                                          body => ${configMap("rolled-back")}::text::jsonb)`;
        throw rollBack;
      }).catch((error) => error);
      assert.equal(rolledBack, rollBack);
      const ids = await asMember.begin(async (tx) => {
        const rows = await tx`
        select omni_kube.api_async(${configMaps}, method => 'POST',
                                   body => jsonb_build_object('metadata',
                                              jsonb_build_object('name', 'sent-' || i))) as id
          from generate_series(1, 20) i`;
        return rows.map((r) => r.id);
      });
      const results = await asMember`
      select id, status, response -> 'metadata' ->> 'name' as name
        from omni_kube.results(${ids}::bigint[])`;
      assert.deepEqual(
        results.map((r) => [r.id, r.status, r.name]),
        ids.map((id, i) => [id, 201, `sent-${i + 1}`]),
      );
      // The rolled-back request never reached the server, and each committed one came once: a
      // second POST of a name would have answered 409.
      assert.deepEqual(await names(), Array.from({ length: 20 }, (_, i) => `sent-${i + 1}`).sort());
      await sleep(1500);
      assert.ok(!(await names()).includes("rolled-back"));
      const [{ count }] = await asMember`
      select count(*)::int from omni_kube.requests where kind = 'async' and method = 'POST'`;
      assert.equal(count, 20);
      const [{ attempts }] = await asMember`
      select array_agg(distinct attempts) as attempts from omni_kube.requests
       where kind = 'async' and id = any(${ids}::bigint[])`;
      assert.deepEqual(attempts, [1]);
    },
  );

  await t.step(
    "result() answers as api() does; results() returns statuses in input order",
    async () => {
      const [{ found, missing }] = await asMember`
      select omni_kube.api_async('/api/v1/namespaces/default') as found,
             omni_kube.api_async(${configMaps + "/no-such-map"}) as missing`;
      const [{ namespace }] = await asMember`select omni_kube.result(${found}) as namespace`;
      assert.equal(namespace.metadata.name, "default");
      await sqlError(asMember`select omni_kube.result(${missing})`, "OK404", /NotFound/);
      const rows = await asMember`
      select id, status, response ->> 'kind' as kind
        from omni_kube.results(array[${missing}, ${found}]::bigint[])`;
      assert.deepEqual(rows.map((r) => [r.id, r.status, r.kind]), [
        [missing, 404, "Status"],
        [found, 200, "Namespace"],
      ]);
      // Another role's request and an unknown id get the same answer.
      await sqlError(asOther`select omni_kube.result(${found})`, "OKQ04");
      await sqlError(asOther`select * from omni_kube.results(array[${found}]::bigint[])`, "OKQ04");
      await sqlError(asMember`select omni_kube.result(${Number(found) + 100000})`, "OKQ04");
      // Asked for in the transaction that made it, which must commit first (at any isolation).
      // (postgres.js rejects the transaction with its statement's error too.)
      for (const isolation of ["read committed", "repeatable read"]) {
        const refused = await asMember.begin(`isolation level ${isolation}`, async (tx) => {
          const [{ id }] = await tx`select omni_kube.api_async('/version') as id`;
          return await tx`select omni_kube.result(${id})`.then(() => undefined, (error) => error);
        }).catch((error) => error);
        assert.equal(refused?.code, "55000", isolation);
        assert.match(refused.message, /must commit before it is sent/);
      }
    },
  );

  await t.step(
    "an unfinished request: OKQ01 at once with timeout 0, its answer later",
    async () => {
      const [{ id }] = await asMember`
      select omni_kube.api_async('/slow?ms=2000', server => ${endpoint.url},
                                 cacert => ${endpoint.caCert}) as id`;
      await sqlError(
        asMember`select omni_kube.result(${id}, 0)`,
        "OKQ01",
        /is still (queued|running)/,
      );
      const [late] = await asMember`
      select id, status, response from omni_kube.results(array[${id}]::bigint[], 0)`;
      assert.deepEqual({ ...late }, { id, status: null, response: null });
      const [{ answer }] = await asMember`select omni_kube.result(${id}, 10) as answer`;
      assert.deepEqual(answer, {});
    },
  );

  await t.step(
    "GET, HEAD, PUT, DELETE and server-side apply are the requests sent again",
    async () => {
      const rows = await sql`
      select m::text as method, pt as patch_type, omni_kube._idempotent(m, pt) as idempotent
        from unnest(enum_range(null::omni_kube.http_method)) m,
             unnest(array[null, 'merge', 'json', 'strategic', 'apply']) pt`;
      assert.ok(rows.length >= 30, `${rows.length} combinations`);
      for (const { method, patch_type, idempotent } of rows) {
        const expected = ["GET", "HEAD", "PUT", "DELETE"].includes(method) ||
          (method === "PATCH" && patch_type === "apply");
        assert.equal(idempotent, expected, `${method} ${patch_type}`);
      }
    },
  );

  await t.step("every kind of body is stored as api() returns it", async () => {
    const echo = (body: string, type?: string) =>
      `/echo?${new URLSearchParams({ body, ...(type ? { type } : {}) })}`;
    const paths = [
      echo('text with "quotes", a \\ backslash,\nlines, tabs\t, ünïcødé and {braces}'),
      echo(
        '{"kind": "Thing", "text": "a \\"quoted\\" \\u00e9 word", "n": [1, 2.5, null]}',
        "application/json",
      ),
      // Said to be JSON, but it is not: kept as the text it is.
      echo('{"kind": "Thing", "cut": ', "application/json"),
      echo("", "application/json"),
      echo("null", "application/json"),
    ];
    const ids = await asMember.begin(async (tx) => {
      const rows = await tx`
        select omni_kube.api_async(p, server => ${endpoint.url}, cacert => ${endpoint.caCert}) as id
          from unnest(${paths}::text[]) with ordinality u(p, n) order by n`;
      return rows.map((r) => r.id);
    });
    const results = await asMember`
      select r.id, r.status, r.response, omni_kube.api(p, server => ${endpoint.url},
                                                       cacert => ${endpoint.caCert}) as direct
        from omni_kube.results(${ids}::bigint[]) with ordinality r(id, response, status, n)
        join unnest(${paths}::text[]) with ordinality u(p, n) using (n)
       order by n`;
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200]);
    for (const [i, r] of results.entries()) {
      assert.deepEqual(r.response, r.direct, paths[i]);
    }
    assert.equal(typeof results[0].response, "string");
    assert.equal(results[1].response.text, 'a "quoted" é word');
    assert.equal(results[2].response, '{"kind": "Thing", "cut": ');
    assert.equal(results[3].response, null);
  });

  await t.step("bad input is refused before anything is enqueued", async () => {
    const before = await asMember`select count(*)::int as n from omni_kube.requests`;
    await sqlError(
      asMember`select omni_kube.api_async(${configMaps}, method => 'POST', retries => 2,
                                          body => ${configMap("never")}::text::jsonb)`,
      "22023",
      /a POST is never sent twice/,
    );
    await sqlError(asMember`select omni_kube.api_async('/api', retries => -1)`, "22023");
    await sqlError(asMember`select omni_kube.api_async('api')`, "22023", /must start with \//);
    await sqlError(asMember`select omni_kube.api_async(null)`, "22004", /must not be NULL/);
    await sqlError(
      asMember`select omni_kube.api_async('/api/v1/name spaces')`,
      "22023",
      /whitespace or control characters/,
    );
    await sqlError(
      asMember`select omni_kube.api_async('/api', server => 'http://example.com')`,
      "22023",
      /must be https:\/\/host\[:port\]/,
    );
    await sqlError(
      asMember`select omni_kube.api_async('/api', token => 'Bearer abc')`,
      "22023",
      /the token contains spaces/,
    );
    await sqlError(
      asMember`select omni_kube.api_async('/api',
                 clientcert => row('-----BEGIN CERTIFICATE-----', null)::omni_kube.client_certificate)`,
      "22023",
      /needs both its certificate and its private key/,
    );
    await sqlError(
      asMember`select omni_kube.api_async('/api', on_done => 'pg_catalog.now()')`,
      "42883",
      /must be a function of \(bigint, smallint, jsonb\)/,
    );
    await sqlError(asMember`select omni_kube.result(null)`, "22004");
    await sqlError(asMember`select omni_kube.result(1, -1)`, "22023");
    const after = await asMember`select count(*)::int as n from omni_kube.requests`;
    assert.equal(after[0].n, before[0].n);
  });

  await t.step("retries honour Retry-After, back off on 5xx, and never resend a POST", async () => {
    const flaky = (key: string, query: string) => `/flaky?key=${key}&${query}`;
    const [{ throttled, failing, posted }] = await asMember`
      select omni_kube.api_async(${flaky("throttled", "status=429&times=2&retry-after=1")},
                                 server => ${endpoint.url}, cacert => ${endpoint.caCert},
                                 retries => 3) as throttled,
             omni_kube.api_async(${flaky("failing", "status=503&times=9")},
                                 server => ${endpoint.url}, cacert => ${endpoint.caCert},
                                 retries => 1) as failing,
             omni_kube.api_async(${flaky("posted", "status=503&times=1")},
                                 server => ${endpoint.url}, cacert => ${endpoint.caCert},
                                 method => 'POST') as posted`;
    const [{ answer }] = await asMember`select omni_kube.result(${throttled}) as answer`;
    assert.deepEqual(answer, { attempt: 3 });
    const arrivals = endpoint.flakyArrivals("throttled");
    assert.equal(arrivals.length, 3);
    for (let i = 1; i < arrivals.length; i++) {
      assert.ok(arrivals[i] - arrivals[i - 1] >= 950, `attempt ${i + 1} came before Retry-After`);
    }
    await sqlError(asMember`select omni_kube.result(${failing})`, "OK503");
    assert.equal(endpoint.flakyArrivals("failing").length, 2);
    await sqlError(asMember`select omni_kube.result(${posted})`, "OK503");
    assert.equal(endpoint.flakyArrivals("posted").length, 1);
    const rows = await asMember`
      select id, attempts, status, state::text from omni_kube.requests
       where id = any(array[${throttled}, ${failing}, ${posted}]::bigint[]) and kind = 'async'
       order by id`;
    assert.deepEqual(rows.map((r) => [r.attempts, r.status, r.state]), [
      [3, 200, "done"],
      [2, 503, "done"],
      [1, 503, "done"],
    ]);
  });

  await t.step("callbacks run once, as the member, in their own transaction", async () => {
    await sql`create schema ${sql(member)} authorization ${sql(member)}`;
    await asMember`create table calls (id bigint, status int2, kind text, by_role name,
                                       by_session name)`;
    await asMember`
      create function record_call(id bigint, status smallint, response jsonb) returns void
        language sql as $$
          insert into calls values (id, status, response ->> 'kind', current_user, session_user)
        $$`;
    await asMember`
      create function failing_call(id bigint, status smallint, response jsonb) returns void
        language plpgsql as $$
        begin
          insert into calls values (id, status, 'never kept', current_user, session_user);
          raise exception 'the callback refuses request %', id;
        end $$`;
    await asMember`
      create function escalating_call(id bigint, status smallint, response jsonb) returns void
        language plpgsql as $$
        begin
          execute 'reset role';
          create role omni_kube_async_intruder superuser;
        end $$`;
    const [{ recorded, failed, escalating }] = await asMember`
      select omni_kube.api_async('/api/v1/namespaces/default',
                                 on_done => 'record_call(bigint, smallint, jsonb)') as recorded,
             omni_kube.api_async('/api/v1/namespaces/default',
                                 on_done => 'failing_call(bigint, smallint, jsonb)') as failed,
             omni_kube.api_async('/api/v1/namespaces/default',
                                 on_done => 'escalating_call(bigint, smallint, jsonb)') as escalating`;
    const ids = [recorded, failed, escalating];
    const callbacks = await eventually("the three callbacks to have run", async () => {
      const rows = await asMember`
        select id, callback, callback_error from omni_kube.requests
         where kind = 'async' and id = any(${ids}::bigint[]) order by id`;
      return rows.every((r) => r.callback === "done" || r.callback === "failed") ? rows : undefined;
    });
    assert.deepEqual(callbacks.map((r) => r.callback), ["done", "failed", "failed"]);
    assert.match(callbacks[1].callback_error, /the callback refuses request/);
    assert.match(callbacks[2].callback_error, /(permission denied|cannot set parameter "role")/);
    const calls = await asMember`select id, status, kind, by_role, by_session from calls`;
    assert.deepEqual(calls.map((r) => ({ ...r })), [{
      id: recorded,
      status: 200,
      kind: "Namespace",
      by_role: member,
      by_session: calls[0].by_session,
    }]);
    assert.notEqual(calls[0].by_role, calls[0].by_session);
    const [{ intruder }] = await sql`
      select count(*)::int as intruder from pg_roles where rolname = 'omni_kube_async_intruder'`;
    assert.equal(intruder, 0);
    // A callback dropped before its request finished is recorded as such.
    await asMember`
      create function dropped_call(id bigint, status smallint, response jsonb) returns void
        language sql as $$ select $$`;
    const [{ orphan }] = await asMember`
      select omni_kube.api_async('/slow?ms=1000', server => ${endpoint.url},
                                 cacert => ${endpoint.caCert},
                                 on_done => 'dropped_call(bigint, smallint, jsonb)') as orphan`;
    await asMember`drop function dropped_call(bigint, smallint, jsonb)`;
    const [dropped] = await eventually("the dropped callback's outcome", async () => {
      const rows = await asMember`
        select callback, callback_error from omni_kube.requests
         where kind = 'async' and id = ${orphan} and callback = 'failed'`;
      return rows.length > 0 ? rows : undefined;
    });
    assert.match(dropped.callback_error, /no longer exists/);
    // Members cannot run callbacks themselves, nor reach their callers.
    await sqlError(
      asMember`select omni_kube._async_invoke('record_call(bigint, smallint, jsonb)', 1, 200::int2,
                                             '{}')`,
      "42501",
    );
    await sqlError(asMember`select omni_kube._async_run_callback()`, "42501");
  });

  await t.step("producers: a plain loop, and a statement-level trigger", async () => {
    await asMember`
      do $$
      begin
        for i in 1..5 loop
          perform omni_kube.api_async(${sql.unsafe(`'${configMaps}'`)}, method => 'POST',
                                      body => jsonb_build_object('metadata',
                                                jsonb_build_object('name', 'loop-' || i)));
        end loop;
      end $$`;
    await asMember`create table jobs (name text primary key)`;
    await asMember`
      create function create_job_maps() returns trigger language plpgsql as $$
      begin
        perform omni_kube.api_async(${sql.unsafe(`'${configMaps}'`)}, method => 'POST',
                                    body => jsonb_build_object('metadata',
                                              jsonb_build_object('name', 'job-' || j.name)))
           from new_jobs j;
        return null;
      end $$`;
    await asMember`
      create trigger create_job_maps after insert on jobs referencing new table as new_jobs
        for each statement execute function create_job_maps()`;
    await asMember`insert into jobs select 'n' || i from generate_series(1, 5) i`;
    const expected = [
      ...Array.from({ length: 5 }, (_, i) => `job-n${i + 1}`),
      ...Array.from({ length: 5 }, (_, i) => `loop-${i + 1}`),
    ].sort();
    await eventually("the loop's and the trigger's ConfigMaps", async () => {
      const made = (await names()).filter((n) => n.startsWith("job-") || n.startsWith("loop-"));
      return made.length === 10 ? made : undefined;
    }).then((made) => assert.deepEqual(made, expected));
  });
});
