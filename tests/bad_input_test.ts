/**
 * Bad input: each gets a clear SQL error or a documented result, and the worker keeps serving.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { sqlError, testbedEnv, uniqueName } from "./testbed.ts";

/** Runs `query` until it returns a row (every 50 ms, for up to 20 s); returns its rows. */
async function waitFor<T extends readonly unknown[]>(query: () => Promise<T>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const rows = await query();
    if (rows.length > 0) return rows;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("timed out waiting for a row");
}

Deno.test("bad input", async (t) => {
  const env = testbedEnv();
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  await using bridge = await startBridge("badinput");
  const { sql } = bridge;
  const piecesLeft = async () =>
    (await sql`select count(*)::int as n from omni_kube.response_piece`)[0].n;
  const stillServing = async () => {
    const [{ kind }] =
      await sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
    assert.equal(kind, "Namespace");
  };

  await t.step("paths", async () => {
    await sqlError(sql`select omni_kube.api('api/v1/pods')`, "22023", /must start with \//);
    const spaced = await sqlError(
      sql`select omni_kube.api('/api/v1/name spaces')`,
      "22023",
      /whitespace/,
    );
    assert.equal(spaced.hint, "URL-encode them, e.g. %20 for a space.");
    // A bad path in a batch that is not its first, and an empty one.
    await sqlError(
      sql`select * from omni_kube.api(array['/api', 'api/v1'])`,
      "22023",
      /start with/,
    );
    await sqlError(sql`select omni_kube.api('')`, "22023", /must start with \//);
    await sqlError(
      sql`select omni_kube.api(${"/api\r\nHost: evil"})`,
      "22023",
      /control characters/,
    );
    await sqlError(sql`select omni_kube.api('/api/../../etc/passwd')`, "22023", /\.\. segments/);
    // A path never changes the host: this is a path on the same server.
    const [{ status: sameServer }] =
      await sql`select status from omni_kube.api(array['//evil.example/x'])`;
    assert.equal(sameServer, 404);
    await sqlError(sql`select omni_kube.api(null::text)`, "22004");
    await sqlError(sql`select * from omni_kube.api(array['/api', null])`, "22004");
    await sqlError(sql`select * from omni_kube.api(null::text[])`, "22004");
    // Documented: a query string is passed on; non-ASCII is percent-encoded and sent.
    const [{ limited }] = await sql`
      select jsonb_array_length(omni_kube.api('/api/v1/namespaces?limit=1') -> 'items') as limited`;
    assert.equal(limited, 1);
    const [{ status }] =
      await sql`select status from omni_kube.api(array['/api/v1/namespaces/ünï'])`;
    assert.equal(status, 404);
    await stillServing();
  });

  await t.step("methods and arrays", async () => {
    await sqlError(sql`select omni_kube.api('/api', method => 'TRACE')`, "22P02", /http_method/);
    await sqlError(
      sql`select * from omni_kube.api(array['/a', '/b'], methods => array['GET']::omni_kube.http_method[])`,
      "2202E",
    );
    await sqlError(
      sql`select * from omni_kube.api(array['/a'], bodies => array['{}', '{}']::jsonb[])`,
      "2202E",
    );
    await sqlError(
      sql`select * from omni_kube.api(array['/a', '/b'], methods => array['GET', null]::omni_kube.http_method[])`,
      "2202E",
    );
    const none = await sql`select * from omni_kube.api(array[]::text[])`;
    assert.equal(none.length, 0);
  });

  await t.step("a 10 MB body gets the server's answer, and nothing breaks", async () => {
    const name = uniqueName("big");
    const body = JSON.stringify({
      metadata: { name },
      data: { blob: "x".repeat(10 * 1024 * 1024) },
    });
    const [{ status, response }] = await sql`
      select status, response from omni_kube.api(array['/api/v1/namespaces/default/configmaps'],
        methods => array['POST']::omni_kube.http_method[], bodies => array[${body}::text::jsonb])`;
    assert.ok(status >= 400, `expected a refusal, got ${status}`);
    assert.equal(response.kind, "Status");
    await stillServing();
  });

  await t.step("TLS material and tokens", async () => {
    const call = (
      params: { cacert?: string; cert?: string; key?: string | null; token?: string },
    ) =>
      sql`select omni_kube.api('/api/v1/namespaces/default', server => ${env.KUBE_SERVER},
            cacert => ${params.cacert ?? caCert}, token => ${params.token ?? null},
            clientcert => case when ${params.cert ?? null}::text is null then null
                          else row(${params.cert ?? null}, ${
        params.key ?? null
      })::omni_kube.client_certificate end)`;
    await sqlError(call({ cacert: "not a PEM" }), "OKT01", /failed/);
    await sqlError(call({ cert: "not a PEM", key: "not a PEM" }), "OKT01", /failed/);
    const certificate = await Deno.readTextFile(env.KUBE_CLIENT_CERT_FILE);
    await sqlError(call({ cert: certificate, key: "not a PEM" }), "OKT01", /failed/);
    await sqlError(
      call({ cert: certificate, key: null }),
      "22023",
      /certificate and its private key/,
    );
    await sqlError(call({ token: "expired.or.malformed" }), "OK401", /Unauthorized/);
    await sqlError(call({ token: "two words" }), "22023", /token contains spaces/);
    await stillServing();
  });

  await t.step("server URLs", async () => {
    for (
      const server of [
        "http://127.0.0.1:6443",
        "127.0.0.1:6443",
        "https://host/prefix",
        "https://u@host",
      ]
    ) {
      await sqlError(
        sql`select omni_kube.api('/api', server => ${server}, token => 'x')`,
        "22023",
        /must be https:\/\/host\[:port\]/,
      );
    }
    await stillServing();
  });

  await t.step("a response of tens of MB comes back whole", async () => {
    const namespace = uniqueName("large");
    await sql`select omni_kube.api('/api/v1/namespaces', method => 'POST',
                body => ${JSON.stringify({ metadata: { name: namespace } })}::text::jsonb)`;
    const blob = "y".repeat(1000 * 1000);
    const paths = Array.from({ length: 24 }, () => `/api/v1/namespaces/${namespace}/configmaps`);
    // The cluster adds kube-root-ca.crt to every namespace: lists select the test's own ConfigMaps.
    const labels = { "omni-kube-test": "large" };
    const ours = `/api/v1/namespaces/${namespace}/configmaps?labelSelector=omni-kube-test%3Dlarge`;
    const bodies = paths.map((_, i) =>
      JSON.stringify({ metadata: { name: `m${i}`, labels }, data: { blob } })
    );
    const created = await sql`
      select status from omni_kube.api(${paths}::text[],
        methods => array_fill('POST'::omni_kube.http_method, array[${paths.length}::int]),
        bodies => ${bodies}::text[]::jsonb[])`;
    assert.deepEqual(new Set(created.map((r) => r.status)), new Set([201]));
    // The worker writes a body this large to PostgreSQL in pieces as it arrives: each blob must
    // come back whole, and no piece may stay behind.
    const [{ items, whole }] = await sql`
      select jsonb_array_length(r -> 'items') as items,
             (select count(*) from jsonb_array_elements(r -> 'items') i
               where i #>> '{data,blob}' = repeat('y', 1000 * 1000))::int as whole
        from omni_kube.api(${ours}) r`;
    assert.equal(items, 24);
    assert.equal(whole, 24);
    assert.equal(await piecesLeft(), 0);
    await stillServing();

    // A large body cut off midway: a watch sends the 24 MB of objects, then stays open; the
    // caller gives up. The copy into PostgreSQL is abandoned, and the next large body is whole.
    const watching = sql`
      select omni_kube.api(${`${ours}&watch=1&timeoutSeconds=60`})`
      .then(() => undefined, (error) => error);
    const copying = () =>
      sql`select from pg_stat_progress_copy
           where relid = 'omni_kube.response_piece'::regclass and bytes_processed > 0`;
    await waitFor(copying);
    const [{ id }] = await sql`
      select id from omni_kube.request where path like '%watch=1%' and state = 'running'`;
    await sql`select pg_cancel_backend(backend_pid) from omni_kube.request where id = ${id}`;
    assert.equal((await watching)?.code, "57014");
    await waitFor(() => sql`select where not exists (${copying()})`);
    assert.equal(await piecesLeft(), 0);
    const [{ again }] = await sql`
      select jsonb_array_length(omni_kube.api(${ours}) -> 'items') as again`;
    assert.equal(again, 24);
  });

  await t.step("a large response that is not JSON comes back whole, as a JSON string", async () => {
    // kube-apiserver's metrics: megabytes of text/plain, written to PostgreSQL in pieces.
    const [{ type, text }] = await sql`
      select jsonb_typeof(r) as type, r #>> '{}' as text from omni_kube.api('/metrics') r`;
    assert.equal(type, "string");
    assert.ok(text.length > 1024 * 1024, `${text.length} characters`);
    assert.match(text, /^# HELP /);
    assert.match(text, /\napiserver_request_total\{[^\n]*\} \d+\n/);
    assert.equal(await piecesLeft(), 0);
  });

  await t.step("watch timeouts out of range", async () => {
    await sqlError(
      sql`select * from omni_kube.watch('v1', 'pods', timeout => -5)`,
      "22023",
      /between 1 and 3600/,
    );
    await sqlError(sql`select * from omni_kube.watch('v1', 'pods', timeout => 0)`, "22023");
    await sqlError(
      sql`select * from omni_kube.watch('v1', 'pods', timeout => 2147483647)`,
      "22023",
    );
  });
});
