/**
 * omni_kube.api() end to end: SQL -> queue -> worker -> real kube-apiserver -> SQL.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startBridge } from "./bridge.ts";
import { dropRoles, sqlError, testbedEnv, uniqueName } from "./testbed.ts";
import { createCertificateAuthority } from "../testbed/pki.ts";
import { hostileEndpoint } from "./hostile.ts";

const CONFIGMAPS = "/api/v1/namespaces/default/configmaps";

/**
 * JSON text for a `${...}::text::jsonb` parameter. (A parameter cast straight to jsonb is
 * serialised by postgres.js itself, and a string would arrive as a JSON string.)
 */
function json(value: unknown): string {
  return JSON.stringify(value);
}

Deno.test("omni_kube.api()", async (t) => {
  const env = testbedEnv();
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  await using bridge = await startBridge("api");
  const { sql } = bridge;

  await t.step("with no server or credentials, the worker's own cluster answers", async () => {
    const [{ ns }] = await sql`select omni_kube.api('/api/v1/namespaces/default') as ns`;
    assert.equal(ns.kind, "Namespace");
    assert.equal(ns.metadata.name, "default");
  });

  await t.step("create, get, replace, merge patch, JSON patch and delete a ConfigMap", async () => {
    const name = uniqueName("crud");
    const path = `${CONFIGMAPS}/${name}`;
    const [{ created }] = await sql`
      select omni_kube.api(${CONFIGMAPS}, method => 'POST',
        body => ${json({ metadata: { name }, data: { a: "1" } })}::text::jsonb) as created`;
    assert.equal(created.metadata.name, name);

    const [{ got }] = await sql`select omni_kube.api(${path}) as got`;
    assert.deepEqual(got.data, { a: "1" });

    const [{ replaced }] = await sql`
      select omni_kube.api(${path}, method => 'PUT',
        body => ${json({ ...got, data: { b: "2" } })}::text::jsonb) as replaced`;
    assert.deepEqual(replaced.data, { b: "2" });

    const [{ merged }] = await sql`
      select omni_kube.api(${path}, method => 'PATCH', body => '{"data":{"c":"3"}}') as merged`;
    assert.deepEqual(merged.data, { b: "2", c: "3" });

    const [{ patched }] = await sql`
      select omni_kube.api(${path}, method => 'PATCH',
        body => '[{"op":"remove","path":"/data/b"}]') as patched`;
    assert.deepEqual(patched.data, { c: "3" });

    const [{ deleted }] = await sql`select omni_kube.api(${path}, method => 'DELETE') as deleted`;
    assert.equal(deleted.status, "Success");
    const [{ status }] = await sql`select status from omni_kube.api(array[${path}])`;
    assert.equal(status, 404);
  });

  await t.step("server-side apply through PATCH with an apply content type", async () => {
    const name = uniqueName("apply");
    const [{ applied }] = await sql.begin(async (tx) => {
      await tx`set local omni_kube.patch_type = 'apply'`;
      return await tx`
        select omni_kube.api(${`${CONFIGMAPS}/${name}?fieldManager=omni-kube-test`},
          method => 'PATCH',
          body => ${
        JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name },
          data: { x: "y" },
        })
      }::text::jsonb
        ) as applied`;
    });
    assert.deepEqual(applied.data, { x: "y" });
    assert.equal(applied.metadata.managedFields[0].operation, "Apply");
  });

  await t.step(
    "errors: 404, 409, 403 and 401 raise with the Status reason and message",
    async () => {
      const missing = await sqlError(sql`select omni_kube.api('/api/v1/namespaces/nope')`, "OK404");
      assert.equal(missing.message, "NotFound");
      assert.match(missing.detail!, /namespaces "nope" not found/);

      const name = uniqueName("conflict");
      const body = { metadata: { name } };
      await sql`select omni_kube.api(${CONFIGMAPS}, method => 'POST', body => ${
        JSON.stringify(body)
      }::text::jsonb)`;
      const conflict = await sqlError(
        sql`select omni_kube.api(${CONFIGMAPS}, method => 'POST', body => ${
          JSON.stringify(body)
        }::text::jsonb)`,
        "OK409",
      );
      assert.equal(conflict.message, "AlreadyExists");

      const forbidden = await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces', server => ${env.KUBE_SERVER},
            cacert => ${caCert}, token => ${env.KUBE_LIMITED_TOKEN})`,
        "OK403",
      );
      assert.equal(forbidden.message, "Forbidden");
      assert.match(forbidden.detail!, /"limited" cannot list/);

      const unauthorized = await sqlError(
        sql`select omni_kube.api('/api/v1/namespaces', server => ${env.KUBE_SERVER},
            cacert => ${caCert}, token => 'wrong-token')`,
        "OK401",
      );
      assert.equal(unauthorized.message, "Unauthorized");
    },
  );

  await t.step("batch: mixed methods, one row per path in input order", async () => {
    const name = uniqueName("batch");
    const existing = uniqueName("batch");
    await sql`select omni_kube.api(${CONFIGMAPS}, method => 'POST',
                body => ${json({ metadata: { name: existing } })}::text::jsonb)`;
    // The calls run in parallel; the rows still come back in input order.
    const rows = await sql`
      select response, status from omni_kube.api(
        array[${CONFIGMAPS}, '/api/v1/namespaces/nope', '/api/v1/namespaces/default', ${CONFIGMAPS}],
        methods => array['POST', 'GET', 'GET', 'POST']::omni_kube.http_method[],
        bodies => array[${json({ metadata: { name } })}::text::jsonb, null, null,
                        ${json({ metadata: { name: existing } })}::text::jsonb])`;
    assert.deepEqual(rows.map((r) => r.status), [201, 404, 200, 409]);
    assert.equal(rows[0].response.metadata.name, name);
    assert.equal(rows[1].response.reason, "NotFound");
    assert.equal(rows[2].response.metadata.name, "default");
    assert.equal(rows[3].response.reason, "AlreadyExists");
  });

  await t.step("batch: 600 paths with repeats, each answered in input order", async () => {
    // More paths than a wait reads at once (256), and each GET repeated: repeats share a request.
    const names = ["default", "kube-system", "kube-public", "nope"];
    const paths = Array.from({ length: 600 }, (_, i) => `/api/v1/namespaces/${names[i % 4]}`);
    const rows = await sql`
      select status, response -> 'metadata' ->> 'name' as name
        from omni_kube.api(${paths}::text[])`;
    assert.deepEqual(
      rows.map((r) => [r.status, r.name]),
      paths.map((_, i) => i % 4 === 3 ? [404, null] : [200, names[i % 4]]),
    );
    const [{ sent }] = await sql`
      select count(*)::int as sent from omni_kube.request
       where path = any(${paths}::text[])
         and statement_started = (select max(statement_started) from omni_kube.request
                                   where path = '/api/v1/namespaces/nope')`;
    assert.equal(sent, 4);
  });

  await t.step("a retried enqueue inserts nothing and maps every input again", async () => {
    // What the autonomous connection does after losing the answer to a commit: send it again.
    const key = crypto.randomUUID();
    const started = new Date().toISOString();
    const enqueue = async (): Promise<number[]> => {
      const [{ ids }] = await sql`
        select omni_kube._insert_requests(${key}::uuid, current_user, session_user, -1,
          ${started}::timestamptz, 'api', array['GET', 'POST', 'GET']::omni_kube.http_method[],
          array['/api/v1/namespaces/default', ${CONFIGMAPS}, '/api/v1/namespaces/default'],
          array[null, '{}', null]::jsonb[], false, null, null, 1000, true, null, null, null, null,
          '\\x00'::bytea, null) as ids`;
      return ids;
    };
    const first = await enqueue();
    assert.equal(first.length, 3);
    assert.equal(first[2], first[0], "the repeated GET shares the first one's request");
    assert.deepEqual(await enqueue(), first);
    const [{ rows }] = await sql`
      select count(*)::int as rows from omni_kube.request where enqueue_key = ${key}::uuid`;
    assert.equal(rows, 2);
  });

  await t.step("a single path: a retry maps to its own request, a repeat shares one", async () => {
    const started = new Date().toISOString();
    const enqueue = async (key: string, method = "GET"): Promise<number[]> => {
      const [{ ids }] = await sql`
        select omni_kube._insert_requests(${key}::uuid, current_user, session_user, -1,
          ${started}::timestamptz, 'api', array[${method}]::omni_kube.http_method[],
          array['/api/v1/namespaces/default'], array[null]::jsonb[], false, null, null, 1000, true,
          null, null, null, null, '\\x00'::bytea, null) as ids`;
      return ids;
    };
    const [key, other, head] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    const first = await enqueue(key);
    assert.equal(first.length, 1);
    assert.deepEqual(await enqueue(key), first, "a retry maps to its own request");
    assert.deepEqual(await enqueue(other), first, "the statement's same GET shares it");
    const [own] = await enqueue(head, "HEAD");
    assert.notEqual(own, first[0], "a HEAD is never shared");
    const [{ rows }] = await sql`
      select count(*)::int as rows from omni_kube.request
       where enqueue_key in (${key}::uuid, ${other}::uuid, ${head}::uuid)`;
    assert.equal(rows, 2);
  });

  await t.step(
    "a session's last call is kept for its next wait; a nonsense value there is ignored",
    async () => {
      const [{ last }] = await sql.begin(async (tx) => {
        await tx`select omni_kube.api('/api/v1/namespaces/default')`;
        return await tx`select current_setting('omni_kube.last_call_ms', true) as last`;
      });
      assert.match(last, /^[0-9]+$/);
      const [{ kind }] = await sql.begin(async (tx) => {
        await tx`set local omni_kube.last_call_ms = 'no number'`;
        return await tx`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
      });
      assert.equal(kind, "Namespace");
    },
  );

  await t.step(
    "a call that outlasts its first wait is answered by the wait that follows, and sizes the next",
    async () => {
      await using endpoint = await hostileEndpoint();
      const session = await sql.reserve();
      try {
        const slow = async (ms: number) => {
          const [{ answer }] = await session`
            select omni_kube.api(${`/slow?ms=${ms}`}, server => ${endpoint.url},
                                 cacert => ${endpoint.caCert}) as answer`;
          const [{ last }] = await session`
            select current_setting('omni_kube.last_call_ms', true)::int as last`;
          return { answer, last };
        };
        // A first slice of 10 ms, against a call of 150: the first wait ends before the answer.
        await session`set omni_kube.last_call_ms = 5`;
        const outlasting = await slow(150);
        assert.deepEqual(outlasting.answer, {});
        // What the wait after the first slice took: the call's 150 ms, less that slice.
        assert.ok(outlasting.last >= 100, `kept ${outlasting.last} ms`);
        // The next first slice is about 200 ms, and answers the call; it keeps its own time.
        const within = await slow(20);
        assert.deepEqual(within.answer, {});
        assert.ok(within.last >= 20 && within.last < 150, `kept ${within.last} ms`);
        assert.equal(endpoint.received("slow"), 2);
      } finally {
        session.release();
      }
    },
  );

  await t.step(
    "batch: mismatched arrays and bad paths are refused before anything runs",
    async () => {
      await sqlError(
        sql`select * from omni_kube.api(array['/a', '/b'], methods => array['GET']::omni_kube.http_method[])`,
        "2202E",
      );
      await sqlError(
        sql`select * from omni_kube.api(array['/a'], bodies => array[null, null]::jsonb[])`,
        "2202E",
      );
      await sqlError(
        sql`select * from omni_kube.api(array[['/a', '/b'], ['/c', '/d']])`,
        "2202E",
        /one-dimensional/,
      );
      await sqlError(
        sql`select * from omni_kube.api(array['/a', '/b'],
              methods => array[['GET', 'GET']]::omni_kube.http_method[])`,
        "2202E",
        /one method and one body/,
      );
      await sqlError(sql`select omni_kube.api('api/v1/namespaces')`, "22023");
      await sqlError(sql`select omni_kube.api(null::text)`, "22004");
      await sqlError(sql`select omni_kube.api(${"/api/v1/namespaces\r\nX: y"})`, "22023");
      await sqlError(sql`select omni_kube.api('/api/v1/../../etc')`, "22023");
    },
  );

  await t.step("stream => true turns newline-delimited JSON into a jsonb array", async () => {
    const [{ rv }] = await sql`
      select omni_kube.api(${CONFIGMAPS}) -> 'metadata' ->> 'resourceVersion' as rv`;
    const names = [uniqueName("stream"), uniqueName("stream")];
    for (const name of names) {
      await sql`select omni_kube.api(${CONFIGMAPS}, method => 'POST',
                 body => ${json({ metadata: { name } })}::text::jsonb)`;
    }
    const [{ events }] = await sql`
      select omni_kube.api(${`${CONFIGMAPS}?watch=1&timeoutSeconds=1&resourceVersion=${rv}`},
                           stream => true) as events`;
    assert.ok(Array.isArray(events));
    const added = events.filter((e: { type: string; object: { metadata: { name: string } } }) =>
      e.type === "ADDED" && names.includes(e.object.metadata.name)
    );
    assert.equal(added.length, 2);
  });

  await t.step("a body that is not JSON comes back as a jsonb string; HEAD as NULL", async () => {
    const [{ health, kind }] = await sql`
      select omni_kube.api('/healthz') as health, jsonb_typeof(omni_kube.api('/healthz')) as kind`;
    assert.equal(health, "ok");
    assert.equal(kind, "string");
    const [{ head }] = await sql`select omni_kube.api('/healthz', method => 'HEAD') as head`;
    assert.equal(head, null);
  });

  await t.step("identical GETs in one statement are sent once; POSTs never", async () => {
    const [{ n }] = await sql`
      select count(distinct omni_kube.api('/api/v1/namespaces/default') ->> 'kind') as n
        from generate_series(1, 5)`;
    assert.equal(Number(n), 1);
    const [{ sent }] = await sql`
      select count(*) as sent from omni_kube.request
       where path = '/api/v1/namespaces/default'
         and statement_started = (select max(statement_started) from omni_kube.request
                                   where path = '/api/v1/namespaces/default')`;
    assert.equal(Number(sent), 1);

    const prefix = uniqueName("gen");
    const created = await sql`
      select omni_kube.api(${CONFIGMAPS}, method => 'POST',
        body => ${
      JSON.stringify({
        metadata: { generateName: `${prefix}-` },
      })
    }::text::jsonb) -> 'metadata' ->> 'name' as name
        from generate_series(1, 3)`;
    assert.equal(new Set(created.map((r) => r.name)).size, 3);
  });

  await t.step("explicit credentials: token, client certificate, and settings", async () => {
    const [{ viaToken }] = await sql`
      select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
        cacert => ${caCert}, token => ${env.KUBE_ADMIN_TOKEN}) ->> 'kind' as "viaToken"`;
    assert.equal(viaToken, "Namespace");

    const certificate = await Deno.readTextFile(env.KUBE_CLIENT_CERT_FILE);
    const privateKey = await Deno.readTextFile(env.KUBE_CLIENT_KEY_FILE);
    const [{ viaCert }] = await sql`
      select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
        cacert => ${caCert},
        clientcert => row(${certificate}, ${privateKey})::omni_kube.client_certificate
      ) ->> 'kind' as "viaCert"`;
    assert.equal(viaCert, "Namespace");

    const [{ viaSettings }] = await sql.begin(async (tx) => {
      await tx`select set_config('omni_kube.server', ${env.KUBE_SERVER}, true),
                      set_config('omni_kube.cacert', ${caCert}, true),
                      set_config('omni_kube.clientcert', ${certificate}, true),
                      set_config('omni_kube.client_private_key', ${privateKey}, true)`;
      return await tx`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as "viaSettings"`;
    });
    assert.equal(viaSettings, "Namespace");

    // The limited token in a setting is used instead of the worker's own credentials.
    await sql.begin(async (tx) => {
      await tx`select set_config('omni_kube.server', ${env.KUBE_SERVER}, true),
                      set_config('omni_kube.cacert', ${caCert}, true),
                      set_config('omni_kube.token', ${env.KUBE_LIMITED_TOKEN}, true)`;
      const [{ status }] = await tx`select status from omni_kube.api(array['/api/v1/namespaces'])`;
      assert.equal(status, 403);
    });
  });

  await t.step("credentials are deleted at claim and never stored in logged tables", async () => {
    const token = env.KUBE_ADMIN_TOKEN;
    await sql`select omni_kube.api('/api/v1/namespaces/kube-public', server => ${env.KUBE_SERVER},
                cacert => ${caCert}, token => ${token})`;
    const [{ left }] = await sql`select count(*)::int as left from omni_kube.request_credentials`;
    assert.equal(left, 0);
    const [{ leaks }] = await sql`
      select count(*)::int as leaks from omni_kube.request r
       where r::text like ${"%" + token + "%"}`;
    assert.equal(leaks, 0);
    const [{ persistence }] = await sql`
      select relpersistence as persistence from pg_class
       where oid = 'omni_kube.request_credentials'::regclass`;
    assert.equal(persistence, "u");
  });

  await t.step("transport failures name the server: an error, or a row with status 0", async () => {
    const refused = "https://127.0.0.1:1";
    const error = await sqlError(
      sql`select omni_kube.api('/api', server => ${refused}, token => 'x')`,
      "OKT01",
    );
    assert.match(error.message, new RegExp(`request to ${refused} failed`));
    const [row] =
      await sql`select * from omni_kube.api(array['/api'], server => ${refused}, token => 'x')`;
    assert.equal(row.status, 0);
    assert.equal(row.response.reason, "TransportError");
    assert.match(row.response.message, /127\.0\.0\.1:1/);

    const unknownHost = "https://no-such-host.invalid";
    const dns = await sqlError(
      sql`select omni_kube.api('/api', server => ${unknownHost}, token => 'x')`,
      "OKT01",
    );
    assert.match(dns.message, new RegExp(`request to ${unknownHost} failed`));

    const otherCa = (await createCertificateAuthority("not the server's CA")).certificate;
    const wrongCa = await sqlError(
      sql`select omni_kube.api('/api', server => ${env.KUBE_SERVER}, token => 'x', cacert => ${otherCa})`,
      "OKT01",
    );
    assert.match(wrongCa.message, new RegExp(`request to ${env.KUBE_SERVER} failed`));

    const timedOut = await sqlError(
      sql.begin(async (tx) => {
        await tx`set local omni_kube.request_timeout = '1ms'`;
        return await tx`select omni_kube.api('/api/v1/namespaces?watch=1&timeoutSeconds=5')`;
      }),
      "OKT01",
    );
    assert.match(timedOut.message, /timed out/);
  });

  for (const isolation of ["read committed", "repeatable read", "serializable"]) {
    await t.step(`inside a ${isolation} transaction block`, async () => {
      const name = uniqueName("iso");
      await sql.begin(`isolation level ${isolation}`, async (tx) => {
        await tx`select omni_kube.api(${CONFIGMAPS}, method => 'POST',
                   body => ${json({ metadata: { name } })}::text::jsonb)`;
        const [{ got }] = await tx`select omni_kube.api(${`${CONFIGMAPS}/${name}`}) as got`;
        assert.equal(got.metadata.name, name);
        const [{ ns }] = await tx`select omni_kube.api('/api/v1/namespaces/default') as ns`;
        assert.equal(ns.kind, "Namespace");
      });
    });
  }

  await t.step("from a trigger", async () => {
    await sql`create table created_maps (name text)`;
    await sql`
      create function create_map() returns trigger language plpgsql as $$
      begin
        perform omni_kube.api('/api/v1/namespaces/default/configmaps', method => 'POST',
          body => jsonb_build_object('metadata', jsonb_build_object('name', new.name)));
        return new;
      end $$`;
    await sql`create trigger create_map before insert on created_maps
                for each row execute function create_map()`;
    const name = uniqueName("trigger");
    await sql`insert into created_maps values (${name})`;
    const [{ got }] = await sql`select omni_kube.api(${`${CONFIGMAPS}/${name}`}) as got`;
    assert.equal(got.metadata.name, name);
  });

  await t.step(
    "a non-superuser granted omni_kube calls it and sees only its own requests",
    async () => {
      const alice = uniqueName("alice").replace("-", "_");
      const bob = uniqueName("bob").replace("-", "_");
      for (const role of [alice, bob]) {
        await sql`create role ${sql(role)} login in role omni_kube`;
      }
      try {
        const asAlice = bridge.connectAs(alice);
        const asBob = bridge.connectAs(bob);
        const [{ ns }] = await asAlice`select omni_kube.api('/api/v1/namespaces/default') as ns`;
        assert.equal(ns.kind, "Namespace");
        await asBob`select omni_kube.api('/api/v1/namespaces/kube-system')`;
        const seenByAlice = await asAlice`select distinct requested_by from omni_kube.requests`;
        assert.deepEqual(seenByAlice.map((r) => r.requested_by), [alice]);
        await sqlError(asAlice`select * from omni_kube.request`, "42501");
        await sqlError(asAlice`select * from omni_kube.request_credentials`, "42501");
        // Requests are attributed to the session's role, never to a role named by the caller, and
        // only roles allowed to use the bridge may make them.
        const outsider = uniqueName("outsider").replace("-", "_");
        await sql`create role ${sql(outsider)} login`;
        await sql`grant ${sql(outsider)} to ${sql(alice)}`;
        const direct = (as: typeof asAlice) =>
          as`select * from omni_kube._call('api', array['/api'],
               array['GET']::omni_kube.http_method[], array[null]::jsonb[], false,
               null, null, null, null)`;
        await direct(asAlice);
        const [{ last }] = await sql`select requested_by as last from omni_kube.request
                                      order by id desc limit 1`;
        assert.equal(last, alice);
        // As a role that alice may become (SET ROLE) but that may not use the bridge: refused.
        const url = new URL(bridge.url);
        url.username = alice;
        const asOutsider = postgres(url.href, {
          max: 1,
          onnotice: () => {},
          connection: { role: outsider },
        });
        try {
          await sqlError(direct(asOutsider), "42501");
        } finally {
          await asOutsider.end();
        }
        await dropRoles(sql, outsider);
        // Called directly, _call checks paths too (the worker's token must not leave its server).
        await sqlError(
          asAlice`select * from omni_kube._call('api', array['.evil.example/steal'],
                  array['GET']::omni_kube.http_method[], array[null]::jsonb[], false,
                  null, null, null, null)`,
          "22023",
        );
        // A SECURITY DEFINER function owned by one member works when another role calls it.
        await sql`create schema ${sql(bob)} authorization ${sql(bob)}`;
        await sql`create function ${sql(bob)}.pods_as_bob() returns jsonb security definer
                  language sql as $$ select omni_kube.api('/api/v1/namespaces/default') $$`;
        await sql`alter function ${sql(bob)}.pods_as_bob() owner to ${sql(bob)}`;
        await sql`grant usage on schema ${sql(bob)} to ${sql(alice)}`;
        const [{ viaBob }] = await asAlice`select ${sql(bob)}.pods_as_bob() ->> 'kind' as "viaBob"`;
        assert.equal(viaBob, "Namespace");
        await asAlice.end();
        await asBob.end();
      } finally {
        await dropRoles(sql, alice, bob);
      }
    },
  );

  await t.step("two workers at once: every request runs exactly once", async () => {
    await bridge.startWorker();
    const prefix = uniqueName("two");
    const sessions = Array.from({ length: 4 }, () => bridge.connectAs("postgres"));
    // Rounds of 100 POSTs until both workers have run some (which one claims is a race).
    let rounds = 0;
    let workers = 0;
    while (workers < 2 && rounds < 5) {
      const round = rounds++;
      await Promise.all(
        sessions.map((s, i) =>
          s`select omni_kube.api(${CONFIGMAPS}, method => 'POST',
            body => jsonb_build_object('metadata', jsonb_build_object('generateName',
                      ${`${prefix}-${round}-${i}-`}::text)))
            from generate_series(1, 25)`
        ),
      );
      [{ workers }] = await sql`
        select count(distinct worker_id)::int as workers from omni_kube.request
         where path = ${CONFIGMAPS} and method = 'POST' and body::text like ${`%${prefix}-%`}`;
    }
    assert.equal(workers, 2);
    const [{ list }] = await sql`select omni_kube.api(${CONFIGMAPS}) as list`;
    const made = list.items.filter((i: { metadata: { name: string } }) =>
      i.metadata.name.startsWith(`${prefix}-`)
    );
    assert.equal(made.length, 100 * rounds);
    for (const s of sessions) await s.end();
  });

  await t.step("with no worker alive, a call fails within seconds with a hint", async () => {
    for (const worker of bridge.workers.splice(0)) await worker.stop();
    const started = Date.now();
    const error = await sqlError(sql`select omni_kube.api('/api')`, "OKW01");
    assert.match(error.hint!, /deno task start/);
    assert.ok(Date.now() - started < 15_000);
  });
});
