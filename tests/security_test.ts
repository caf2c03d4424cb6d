/**
 * Security: credentials stay out of logs, errors, logged tables and the WAL, and so do Secrets
 * read or written through api(); roles see only their own requests; SQL injection is inert;
 * non-superusers cannot reach the owner's connection.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBridge } from "./bridge.ts";
import { dropRoles, testbedEnv, uniqueName } from "./testbed.ts";
import { DEFAULT_WORKER_CONFIG, Worker } from "../lib/worker.ts";
import { createLogger } from "../lib/observe.ts";
import type { Sql } from "../lib/db.ts";

/** An error's code and text, or undefined when the query succeeded. */
async function failure(query: Promise<unknown>) {
  try {
    await query;
    return undefined;
  } catch (error) {
    const e = error as { code?: string; message: string; detail?: string; hint?: string };
    return { code: e.code, text: [e.message, e.detail, e.hint].join(" ") };
  }
}

/** Fails if a row of a WAL-logged table of the shim holds any of `needles`. */
async function assertNotInLoggedTables(sql: Sql, ...needles: string[]) {
  const tables = await sql`
    select format('%I.%I', n.nspname, c.relname) as name from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'omni_kube' and c.relkind = 'r' and c.relpersistence = 'p'`;
  assert.ok(tables.length > 0);
  for (const { name } of tables) {
    for (const needle of needles) {
      const [{ n }] = await sql.unsafe(
        `select count(*)::int as n from ${name} t where t::text like $1`,
        [`%${needle}%`],
      );
      assert.equal(n, 0, `${name} holds "${needle}"`);
    }
  }
}

/** XLogLongPageHeaderData, the header of a WAL segment's first page (access/xlog_internal.h). */
function segmentHeader(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    info: view.getUint16(2, true),
    pageAddress: view.getBigUint64(8, true),
    systemId: view.getBigUint64(24, true),
    segmentSize: view.getUint32(32, true),
    blockSize: view.getUint32(36, true),
  };
}

/**
 * A segment's records as one byte stream: each page's header taken out (40 bytes on the first
 * page, 24 on the others), so that a value split by a page boundary reads whole again.
 */
function walRecordBytes(bytes: Uint8Array, blockSize: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let length = 0;
  for (let page = 0; page < bytes.length; page += blockSize) {
    const body = bytes.subarray(page + (page === 0 ? 40 : 24), page + blockSize);
    out.set(body, length);
    length += body.length;
  }
  return out.subarray(0, length);
}

/**
 * Fails if the WAL written so far (every segment, the current one switched out) holds `needles`.
 * The segments are searched as raw bytes (with page headers taken out); a canary written to a
 * logged table just before must be found, in a segment whose header is this cluster's, which
 * proves that the search reads real WAL and would find a value in it.
 */
async function assertNotInWal(sql: Sql, ...needles: string[]) {
  const canary = `wal-canary-${crypto.randomUUID()}`;
  const table = `wal_canary_${crypto.randomUUID().slice(0, 8)}`;
  await sql`create table ${sql(table)} (value text)`;
  await sql`insert into ${sql(table)} values (${canary})`;
  await sql`drop table ${sql(table)}`;
  const [cluster] = await sql`
    select (select system_identifier::text from pg_control_system()) as system_id,
           pg_size_bytes(current_setting('wal_segment_size'))::int as segment_size,
           current_setting('wal_block_size')::int as block_size`;
  await sql`select pg_switch_wal()`;
  const walDir = join(Deno.env.get("OMNI_KUBE_TESTBED_PGDATA")!, "pg_wal");
  const segments: string[] = [];
  for await (const entry of Deno.readDir(walDir)) {
    if (/^[0-9A-F]{24}$/.test(entry.name)) segments.push(entry.name);
  }
  assert.ok(segments.length > 0);
  const canaryIn: string[] = [];
  for (const segment of segments.sort()) {
    const bytes = await Deno.readFile(join(walDir, segment));
    const text = new TextDecoder("latin1").decode(walRecordBytes(bytes, cluster.block_size));
    for (const needle of needles) {
      assert.ok(!text.includes(needle), `WAL segment ${segment} holds "${needle}"`);
    }
    if (text.includes(canary)) canaryIn.push(segment);
  }
  assert.ok(canaryIn.length > 0, `the canary written to the WAL is in none of ${segments}`);
  const segment = canaryIn[0];
  const header = segmentHeader(await Deno.readFile(join(walDir, segment)));
  // The file name is the timeline, then the segment number in two halves of 2^32 bytes each.
  const start = BigInt(`0x${segment.slice(8, 16)}`) * 2n ** 32n +
    BigInt(`0x${segment.slice(16, 24)}`) * BigInt(cluster.segment_size);
  assert.deepEqual(
    {
      longHeader: (header.info & 0x0002) !== 0,
      pageAddress: header.pageAddress,
      systemId: header.systemId.toString(),
      segmentSize: header.segmentSize,
      blockSize: header.blockSize,
    },
    {
      longHeader: true,
      pageAddress: start,
      systemId: cluster.system_id,
      segmentSize: cluster.segment_size,
      blockSize: cluster.block_size,
    },
    `${segment} is not a WAL segment of this cluster`,
  );
}

Deno.test("credentials never reach a log line, an error, a logged table or the WAL", async () => {
  const env = testbedEnv();
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  const secret = `secret-${crypto.randomUUID()}`;
  await using bridge = await startBridge("secrets");
  // A second worker logging everything at debug, into memory.
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  let worker: Worker | undefined;
  try {
    worker = new Worker(
      { ...DEFAULT_WORKER_CONFIG, databaseUrl: bridge.url, kubeconfig: env.KUBECONFIG },
      createLogger("debug"),
    );
    await worker.start();
    for (const w of bridge.workers.splice(0)) await w.stop();
    const { sql } = bridge;
    const errors = [
      // Wrong token: 401; a token that is not a valid header; a refused server; a bad client key.
      await failure(sql`select omni_kube.api('/api/v1/namespaces', server => ${env.KUBE_SERVER},
                          cacert => ${caCert}, token => ${secret})`),
      await failure(sql`select omni_kube.api('/api/v1/namespaces', server => ${env.KUBE_SERVER},
                          cacert => ${caCert}, token => ${`${secret}\r\nX-Evil: 1`})`),
      await failure(
        sql`select omni_kube.api('/api', server => 'https://127.0.0.1:9', token => ${secret})`,
      ),
      await failure(
        sql`select omni_kube.api('/api', server => ${env.KUBE_SERVER}, cacert => ${caCert},
                          clientcert => row('not a certificate', ${secret})::omni_kube.client_certificate)`,
      ),
      await failure(sql.begin(async (tx) => {
        await tx`select set_config('omni_kube.token', ${secret}, true)`;
        await tx`select * from omni_kube.watch('v1', 'pods', server => ${env.KUBE_SERVER},
                   cacert => ${caCert})`;
      })),
    ];
    for (const error of errors) {
      assert.ok(error, "each of these calls fails");
      assert.ok(!error.text.includes(secret), `an error shows the secret: ${error.text}`);
    }
    assert.ok(lines.length > 0, "the worker logged at debug level");
    assert.ok(!lines.some((line) => line.includes(secret)), "a log line shows the secret");

    await assertNotInLoggedTables(sql, secret);
    const [{ left }] = await sql`select count(*)::int as left from omni_kube.request_credentials`;
    assert.equal(left, 0, "credentials outlive their claim");

    await assertNotInWal(sql, secret);
  } finally {
    console.error = original;
    await worker?.stop();
  }
});

Deno.test("a Secret written and read through api() reaches no logged table and no WAL", async () => {
  // Requests and responses can carry secrets: they live in unlogged tables only.
  const value = `secret-${crypto.randomUUID()}`;
  await using bridge = await startBridge("secret_data");
  const { sql } = bridge;
  const secrets = "/api/v1/namespaces/default/secrets";
  const name = uniqueName("secret");
  const [{ created }] = await sql`
    select omni_kube.api(${secrets}, method => 'POST',
      body => ${
    JSON.stringify({ metadata: { name }, stringData: { value } })
  }::text::jsonb) as created`;
  assert.equal(created.metadata.name, name);
  const [{ read }] = await sql`select omni_kube.api(${`${secrets}/${name}`}) as read`;
  assert.equal(atob(read.data.value), value);
  await sql`select omni_kube.api(${`${secrets}/${name}`}, method => 'DELETE')`;
  await assertNotInLoggedTables(sql, value, btoa(value));
  await assertNotInWal(sql, value, btoa(value));
});

Deno.test("roles, injection and the owner's connection", async (t) => {
  await using bridge = await startBridge("security");
  const { sql } = bridge;
  const [alice, bob] = [uniqueName("alice"), uniqueName("bob")].map((n) => n.replace("-", "_"));
  for (const role of [alice, bob]) await sql`create role ${sql(role)} login in role omni_kube`;
  const asAlice = bridge.connectAs(alice);
  const asBob = bridge.connectAs(bob);
  try {
    await asBob`select omni_kube.api('/api/v1/namespaces/kube-system')`;
    await asAlice`select omni_kube.api('/api/v1/namespaces/default')`;

    await t.step("role A cannot read role B's requests through anything it can reach", async () => {
      const seen = await asAlice`select distinct requested_by from omni_kube.requests`;
      assert.deepEqual(seen.map((r) => r.requested_by), [alice]);
      for (
        const query of [
          asAlice`select * from omni_kube.request`,
          asAlice`select * from omni_kube.request_credentials`,
          asAlice`select * from omni_kube.worker_pod_credentials`,
          asAlice`select * from omni_kube.instance_settings`,
          asAlice`select omni_kube._unfinished(array[1::bigint])`,
          asAlice`select omni_kube._await(array[1::bigint], 1000)`,
        ]
      ) {
        assert.equal((await failure(query))?.code, "42501");
      }
    });

    await t.step("the owner's autonomous connection and dblink are out of reach", async () => {
      await asAlice`select omni_kube.api('/api/v1/namespaces/default')`; // opens the connection
      for (
        const query of [
          asAlice`select omni_kube._autonomous('select to_jsonb(1)')`,
          asAlice`select omni_kube._insert_requests(gen_random_uuid(), 'x', 'x', 1, now(), 'api',
                    array['GET']::omni_kube.http_method[], array['/'], array[null]::jsonb[], false,
                    null, null, 1000, true, null, null, null, null, null, null)`,
          asAlice`select omni_kube_dblink.dblink_exec('omni_kube', 'alter role current_user superuser')`,
        ]
      ) {
        assert.equal((await failure(query))?.code, "42501");
      }
      const [{ rolsuper }] = await sql`select rolsuper from pg_roles where rolname = ${alice}`;
      assert.equal(rolsuper, false);
    });

    await t.step(
      "functions planted on a writable search_path are never run as the owner",
      async () => {
        // Databases made before PostgreSQL 15 let everyone create in public.
        await sql`grant create on schema public to ${sql(alice)}`;
        try {
          await asAlice`
          create function public.to_jsonb(t text) returns jsonb language plpgsql as $$
          begin
            if current_user <> session_user then
              execute format('alter role %I superuser', session_user);
            end if;
            return pg_catalog.to_jsonb(t || '');
          end $$`;
          await asAlice`create function public.unnest(a bigint[]) returns setof bigint
                        language sql as 'select pg_catalog.unnest(a)'`;
          const fresh = bridge.connectAs(alice);
          await fresh`select omni_kube.api('/api/v1/namespaces/default')`;
          await fresh`select * from omni_kube.api(array['/api/v1/namespaces/default', '/api'])`;
          await fresh.end();
          const [{ rolsuper }] = await sql`select rolsuper from pg_roles where rolname = ${alice}`;
          assert.equal(rolsuper, false);
        } finally {
          await sql`drop function if exists public.to_jsonb(text), public.unnest(bigint[])`;
          await sql`revoke create on schema public from ${sql(alice)}`;
        }
      },
    );

    await t.step("SQL injection through every text parameter is inert", async () => {
      await sql`create table canary (x int)`;
      await sql`grant select on canary to ${sql(alice)}`;
      const evil = `x'); drop table canary; select ('`;
      const evilJson = JSON.stringify({ metadata: { name: evil } });
      const attempts = [
        asAlice`select omni_kube.api(${"/api/v1/namespaces/" + encodeURIComponent(evil)})`,
        asAlice`select omni_kube.api(${"/api?x=" + evil.replaceAll(" ", "%20")})`,
        asAlice`select omni_kube.api('/api', server => ${evil})`,
        asAlice`select omni_kube.api('/api/v1/namespaces/default', cacert => ${evil})`,
        asAlice`select omni_kube.api('/api/v1/namespaces/default', token => ${evil})`,
        asAlice`select omni_kube.api('/api/v1/namespaces/default',
                  clientcert => row(${evil}, ${evil})::omni_kube.client_certificate)`,
        asAlice`select omni_kube.api('/api/v1/namespaces/default/configmaps', method => 'POST',
                  body => ${evilJson}::text::jsonb)`,
        asAlice`select * from omni_kube.api(array[${"/api?y=" + encodeURIComponent(evil)}],
                  bodies => array[${evilJson}::text::jsonb])`,
        asAlice`select * from omni_kube.watch('v1', 'configmaps', ${evil})`,
        asAlice`select * from omni_kube.watch('v1', ${evil})`,
        asAlice`select * from omni_kube.watch(${evil}, 'pods')`,
        asAlice`select * from omni_kube.watch('v1', 'pods', namespace => ${evil})`,
        asAlice`select * from omni_kube.watch('v1', 'pods', label_selector => ${evil})`,
        asAlice`select * from omni_kube.watch('v1', 'pods', field_selector => ${evil})`,
        asAlice`select 1 from (select set_config('omni_kube.request_timeout', ${evil}, false)) s,
                  lateral omni_kube.api('/api') a`,
        asAlice`select 1 from (select set_config('omni_kube.patch_type', ${evil}, false)) s,
                  lateral omni_kube.api('/api') a`,
      ];
      for (const attempt of attempts) await failure(attempt);
      await asAlice`reset omni_kube.request_timeout`;
      await asAlice`reset omni_kube.patch_type`;
      const [{ present }] = await sql`select to_regclass('canary') is not null as present`;
      assert.equal(present, true, "an injection dropped the canary table");
    });
  } finally {
    await asAlice.end();
    await asBob.end();
    await dropRoles(sql, alice, bob);
  }
});
