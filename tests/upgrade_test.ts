/**
 * Upgrade in place from release 0.1.0 (issue #15, item 5). 0.1.0, taken from git history, installs
 * a database and serves it; a member creates a resource view, a resource table and a
 * transactional resource table and writes through them; with the old worker frozen (alive, so its
 * callers keep waiting, but claiming nothing), calls wait in the queue while the current worker
 * starts, upgrades the database and serves them: a rolling upgrade. Afterwards the shim's catalog
 * equals a fresh install's, the member's objects work, and no request was lost. A database that a
 * newer release upgraded is refused, with both versions named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { connect } from "../lib/db.ts";
import { migrate } from "../lib/migrate.ts";
import { createLogger } from "../lib/observe.ts";
import { RELEASE } from "../lib/version.ts";
import { DEFAULT_WORKER_CONFIG, Worker } from "../lib/worker.ts";
import { catalogSnapshot, diffCatalogs } from "./catalog.ts";
import { createNamespace, testbedEnv, uniqueName } from "./testbed.ts";

/** Release 0.1.0. */
const OLD_RELEASE = "0.1.0";
const OLD_COMMIT = "8e30168";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MOD = join(ROOT, "mod.ts");

type Sql = postgres.Sql<Record<string, never>>;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a command to its end; its exit code and output. */
async function run(command: string, args: string[], options: Deno.CommandOptions = {}) {
  const out = await new Deno.Command(command, { ...options, args, stdin: "null" }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    output: decoder.decode(out.stdout) + decoder.decode(out.stderr),
  };
}

/** Release 0.4.0, the one before the current: its workers serve beside the current ones. */
const PREVIOUS_RELEASE = "0.4.0";
const PREVIOUS_COMMIT = "f201dea";

/** Extracts a release's files (0.1.0's by default) from this clone's history into `dir`. */
async function extractOldRelease(
  dir: string,
  release = OLD_RELEASE,
  commit = OLD_COMMIT,
): Promise<string> {
  const present = await run("git", ["-C", ROOT, "cat-file", "-e", `${commit}^{commit}`]);
  if (present.code !== 0) {
    throw new Error(
      `release ${release} (commit ${commit}) is not in the history of ${ROOT}, and the ` +
        `upgrade test installs it from there: fetch the full history (git fetch --unshallow, or ` +
        `actions/checkout with fetch-depth: 0). git said: ${present.output.trim()}`,
    );
  }
  const tree = join(dir, "tree");
  await Deno.mkdir(tree);
  const archive = join(dir, "release.tar");
  for (
    const [command, args] of [
      ["git", ["-C", ROOT, "archive", "--format=tar", "-o", archive, commit]],
      ["tar", ["-xf", archive, "-C", tree]],
    ] as const
  ) {
    const result = await run(command, [...args]);
    if (result.code !== 0) {
      throw new Error(`${command} ${args.join(" ")} failed: ${result.output.trim()}`);
    }
  }
  return tree;
}

/** A database of its own in the test bed, with a superuser pool on it. */
async function createDatabase(prefix: string) {
  const env = testbedEnv();
  const name = `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin`create database ${admin(name)}`;
  } finally {
    await admin.end();
  }
  const url = new URL(env.DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    sql: postgres(url.href, { max: 4, onnotice: () => {} }) as Sql,
    /** A pool connecting as `role`. */
    connectAs(role: string): Sql {
      const as = new URL(url.href);
      as.username = role;
      return postgres(as.href, { max: 4, onnotice: () => {} });
    },
    async drop() {
      const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await admin`drop database if exists ${admin(name)} with (force)`;
      } finally {
        await admin.end();
      }
    },
  };
}

/** An old release's worker (`mod.ts start` of its tree), its output kept for error messages. */
function spawnOldWorker(tree: string, databaseUrl: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(tree, "mod.ts"), "start"],
    // Its own deno.json and deno.lock apply.
    cwd: tree,
    env: {
      DATABASE_URL: databaseUrl,
      KUBECONFIG: testbedEnv().KUBECONFIG,
      OMNI_KUBE_HTTP_PORT: "0",
      OMNI_KUBE_HTTP_HOST: "127.0.0.1",
      OMNI_KUBE_LOG_LEVEL: "warn",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output = (output + decoder.decode(chunk)).slice(-20_000);
  };
  const reading = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);
  return {
    child,
    output: () => output,
    exited: () => exited,
    async kill() {
      if (!exited) child.kill("SIGKILL");
      await status;
      await reading;
    },
  };
}

/** Waits until a worker serves the database (its liveness lock is held). */
async function waitForWorker(sql: Sql, worker: ReturnType<typeof spawnOldWorker>) {
  for (let i = 0; i < 600; i++) {
    const exited = worker.exited();
    if (exited) {
      throw new Error(`the old release's worker exited (${exited.code}): ${worker.output()}`);
    }
    const [{ installed }] = await sql`
      select to_regprocedure('omni_kube._worker_alive(uuid)') is not null as installed`;
    if (installed && (await sql`select omni_kube._worker_alive() as alive`)[0].alive) return;
    await delay(100);
  }
  throw new Error(`the old release's worker did not start within 60 s: ${worker.output()}`);
}

/**
 * Stops the worker (SIGSTOP) at a moment when none of its sessions (named omni_kube_worker...) is
 * in a statement or a transaction: frozen there, it holds its session locks (callers see it alive)
 * and no other.
 */
async function freeze(sql: Sql, child: Deno.ChildProcess) {
  let busy: postgres.Row[] = [];
  for (let attempt = 0; attempt < 100; attempt++) {
    child.kill("SIGSTOP");
    busy = await sql`
      select application_name, state, query from pg_stat_activity
       where datname = current_database() and application_name like 'omni\_kube\_worker%'
         and state is distinct from 'idle'`;
    if (busy.length === 0) return;
    child.kill("SIGCONT");
    await delay(50);
  }
  throw new Error(
    `0.1.0's worker never stood idle to be frozen: ${JSON.stringify(busy.map((r) => ({ ...r })))}`,
  );
}

/** Runs `mod.ts` of the current code; killed after `timeoutMs`. */
async function runCli(args: string[], databaseUrl: string, timeoutMs = 60_000) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    cwd: ROOT,
    env: {
      DATABASE_URL: databaseUrl,
      KUBECONFIG: testbedEnv().KUBECONFIG,
      OMNI_KUBE_HTTP_PORT: "0",
      OMNI_KUBE_HTTP_HOST: "127.0.0.1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      signal: out.signal,
      output: decoder.decode(out.stdout) + decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A request row's outcome, as compared before and after the upgrade. */
interface Outcome {
  state: string;
  status: number | null;
  finished_at: Date | null;
}

async function outcomes(sql: Sql): Promise<Map<number, Outcome>> {
  const rows = await sql`select id, state::text, status, finished_at from omni_kube.request`;
  return new Map(rows.map((r) => [Number(r.id), {
    state: r.state,
    status: r.status,
    finished_at: r.finished_at,
  }]));
}

Deno.test(`upgrade from release ${OLD_RELEASE} to the current code`, async (t) => {
  const env = testbedEnv();
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-upgrade-" });
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  const tree = await extractOldRelease(dir);

  const member = uniqueName("upgrade_member").replaceAll("-", "_");
  cleanup.defer(async () => {
    const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await admin`drop role if exists ${admin(member)}`;
    } finally {
      await admin.end();
    }
  });
  const upgraded = await createDatabase("upgraded");
  cleanup.defer(() => upgraded.drop());
  const fresh = await createDatabase("fresh");
  cleanup.defer(() => fresh.drop());
  const { sql } = upgraded;
  cleanup.defer(() => sql.end({ timeout: 5 }));
  cleanup.defer(() => fresh.sql.end({ timeout: 5 }));

  const [{ server }] = await sql`select current_setting('server_version_num')::int as server`;
  if (server < 150000) {
    // Releases before 0.3.0 use UNIQUE NULLS NOT DISTINCT (PostgreSQL 15+): no database on an older
    // server has one of them to upgrade.
    await t.step(
      `on PostgreSQL ${Math.floor(server / 10000)}, ${OLD_RELEASE} cannot install; it leaves ` +
        "nothing, and the current release installs there",
      async () => {
        const oldWorker = spawnOldWorker(tree, upgraded.url);
        cleanup.defer(() => oldWorker.kill());
        const status = await oldWorker.child.status;
        await oldWorker.kill();
        assert.notEqual(status.code, 0, oldWorker.output());
        assert.match(oldWorker.output(), /syntax error at or near "nulls"/);
        const db = connect(upgraded.url, { max: 1 });
        try {
          const report = await migrate(db);
          assert.deepEqual({ from: report.from, adopted: report.adopted }, {
            from: null,
            adopted: false,
          });
        } finally {
          await db.end();
        }
      },
    );
    return;
  }

  // Release 0.1.0 installs the database and serves it.
  const oldWorker = spawnOldWorker(tree, upgraded.url);
  cleanup.defer(() => oldWorker.kill());
  await waitForWorker(sql, oldWorker);
  const [installed] = await sql`
    select (select count(*)::int from omni_kube.migrations) as files,
           to_regclass('omni_kube.release') is null as unversioned`;
  assert.deepEqual({ ...installed }, { files: 22, unversioned: true }, "a 0.1.0 install");

  // A member's objects over configmaps of a namespace of the test's own, each written through.
  await sql`create role ${sql(member)} login in role omni_kube`;
  const asMember = upgraded.connectAs(member);
  cleanup.defer(() => asMember.end({ timeout: 5 }));
  const namespace = await createNamespace(sql, "upgrade");
  const inNamespace = `metadata.namespace=${namespace}`;
  const collection = `/api/v1/namespaces/${namespace}/configmaps`;
  await asMember`select omni_kube.resource_view('cm_view', 'v1', 'configmaps',
                   field_selector => ${inNamespace}, schema => 'member_app')`;
  await asMember`select omni_kube.resource_table('cm_table', 'v1', 'configmaps',
                   field_selector => ${inNamespace}, schema => 'member_app')`;
  await asMember`select omni_kube.resource_table('cm_tx', 'v1', 'configmaps',
                   field_selector => ${inNamespace}, transactional => true, schema => 'member_app')`;
  await asMember`insert into member_app.cm_view (name, resource) values ('via-view', '{"data": {"v": "1"}}')`;
  await asMember`insert into member_app.cm_table (name, resource) values ('via-table', '{"data": {"v": "1"}}')`;
  await asMember.begin((tx) =>
    tx`insert into member_app.cm_tx (name, resource) values ('via-tx', '{"data": {"v": "1"}}')`
  );
  /** Names of the namespace's configmaps, read live from the cluster through the member's view. */
  const inCluster = async () =>
    (await sql`select name from member_app.cm_view order by name`).map((r) => r.name as string);
  // (The cluster's controllers give every namespace kube-root-ca.crt before createNamespace returns.)
  assert.deepEqual(await inCluster(), ["kube-root-ca.crt", "via-table", "via-tx", "via-view"]);
  const finished = await outcomes(sql);
  assert.ok(
    [...finished.values()].every((o) => o.finished_at !== null),
    "every request so far has finished",
  );

  // The rolling upgrade: the old worker frozen, calls wait for an answer.
  await freeze(sql, oldWorker.child);
  /** A member's call that waits, in a transaction of its own; settles to its rows or its error. */
  const waiting = (
    query: (tx: postgres.TransactionSql<Record<string, never>>) => Promise<postgres.Row[]>,
  ) =>
    asMember.begin("isolation level repeatable read", async (tx) => {
      // Room for the new worker's start and migration.
      await tx`set local omni_kube.request_timeout = '120s'`;
      return await query(tx);
    }).then((rows) => ({ rows, error: undefined }), (error: Error) => ({ rows: [], error }));
  // (A REPEATABLE READ call reads the queue through its autonomous connection, so its transaction
  // holds no lock on the queue table that a migration could have to wait for, while the frozen
  // worker cannot finish it. In a real rolling upgrade the old worker would answer such a call.)
  const queuedGet = waiting((tx) => tx`select omni_kube.api(${`${collection}/via-view`}) as got`);
  const postBody = {
    metadata: { generateName: "queued-post-", labels: { "omni-kube-upgrade": "queued-post" } },
    data: { v: "1" },
  };
  const queuedPost = waiting((tx) =>
    tx`select omni_kube.api(${collection}, method => 'POST',
                            body => ${JSON.stringify(postBody)}::text::jsonb) as created`
  );
  const queuedWatch = waiting((tx) =>
    tx`select status from omni_kube.watch('v1', 'configmaps', timeout => 1,
                                          namespace => ${namespace})`
  );
  // Requests nobody waits for, enqueued by 0.1.0's own function: two GETs and a watch. (With no
  // caller, the worker may end one as orphaned: it must still end.)
  const [{ gets }] = await sql`
    select omni_kube._insert_requests(gen_random_uuid(), current_user, current_user,
             pg_backend_pid(), now(), 'api', array['GET', 'GET']::omni_kube.http_method[],
             array[${`${collection}/via-table`}, ${`/api/v1/namespaces/${namespace}`}],
             array[null, null]::jsonb[], false, null, null, 30000, true, null, null, null, null,
             null) as gets`;
  const [{ watches }] = await sql`
    select omni_kube._insert_requests(gen_random_uuid(), current_user, current_user,
             pg_backend_pid(), now(), 'watch', array['GET']::omni_kube.http_method[],
             array[${collection}], array['{"timeoutSeconds": 1}']::jsonb[], false, null, null,
             31000, true, null, null, null, null, null) as watches`;
  const unattended = [...gets, ...watches].map(Number);
  let memberQueued: number[] = [];
  for (let i = 0; i < 300 && memberQueued.length < 3; i++) {
    await delay(100);
    memberQueued = (await sql`select id from omni_kube.request
                               where requested_by = ${member} and state = 'queued'`).map((r) =>
      Number(r.id)
    );
  }
  assert.equal(memberQueued.length, 3, "the member's GET, POST and watch wait in the queue");
  const [{ queued }] = await sql`
    select count(*)::int as queued from omni_kube.request where state = 'queued'`;
  assert.equal(queued, 6, "the frozen worker claims nothing");

  // The current worker starts: it upgrades the database, then serves.
  const log = createLogger((Deno.env.get("OMNI_KUBE_LOG_LEVEL") as "debug") ?? "error");
  const worker = new Worker({
    ...DEFAULT_WORKER_CONFIG,
    databaseUrl: upgraded.url,
    kubeconfig: env.KUBECONFIG,
  }, log);
  cleanup.defer(() => worker.stop());
  await worker.start();

  await t.step("the calls that waited across the upgrade get their answers", async () => {
    const get = await queuedGet;
    assert.ifError(get.error);
    assert.equal(get.rows[0].got.metadata.name, "via-view");
    const post = await queuedPost;
    assert.ifError(post.error);
    const created = post.rows[0].created;
    assert.match(created.metadata.name, /^queued-post-/);
    const watch = await queuedWatch;
    assert.ifError(watch.error);
    assert.equal(watch.rows[0].status, 200);
    // Created exactly once: a second run of the POST would have made a second object.
    const [{ list }] = await sql`
      select omni_kube.api(omni_kube.path_with(${collection},
                                               label_selector => 'omni-kube-upgrade=queued-post')) as list`;
    assert.deepEqual(
      list.items.map((item: { metadata: { name: string } }) => item.metadata.name),
      [created.metadata.name],
    );
  });
  await oldWorker.kill();

  await t.step("no request is lost; every one has ended", async () => {
    let unfinished = -1;
    for (let i = 0; i < 300 && unfinished !== 0; i++) {
      if (i > 0) await delay(100);
      [{ unfinished }] = await sql`select count(*)::int as unfinished from omni_kube.request
                                    where state in ('queued', 'running') or finished_at is null`;
    }
    assert.equal(unfinished, 0, "requests still unfinished");
    const after = await outcomes(sql);
    for (const [id, before] of finished) {
      assert.deepEqual(after.get(id), before, `request ${id}, finished before the upgrade`);
    }
    for (const id of memberQueued) {
      assert.equal(after.get(id)?.state, "done", `the member's request ${id}`);
    }
    const [{ byNewWorker }] = await sql`
      select count(*)::int as "byNewWorker" from omni_kube.request
       where id = any(${memberQueued}) and worker_id = ${worker.id}`;
    assert.equal(byNewWorker, memberQueued.length, "the current worker ran the waiting calls");
    for (const id of unattended) {
      const outcome = after.get(id);
      assert.ok(outcome, `request ${id}, queued before the upgrade, is gone`);
      assert.match(outcome.state, /^(done|failed|cancelled)$/, `request ${id}`);
      assert.ok(outcome.finished_at, `request ${id} has no finished_at`);
    }
  });

  await t.step(
    "the database records the current release; a second migration has nothing to do",
    async () => {
      const [{ version }] = await sql`select omni_kube.version() as version`;
      assert.equal(version, RELEASE);
      const db = connect(upgraded.url, { max: 1 });
      try {
        const report = await migrate(db);
        assert.deepEqual(
          {
            from: report.from,
            to: report.to,
            applied: report.applied,
            functions: report.functionsReplaced,
          },
          { from: RELEASE, to: RELEASE, applied: [], functions: false },
        );
      } finally {
        await db.end();
      }
    },
  );

  await t.step("the shim's catalog equals a fresh install's", async () => {
    const db = connect(fresh.url, { max: 1 });
    try {
      const report = await migrate(db);
      assert.deepEqual(
        { from: report.from, to: report.to, functions: report.functionsReplaced },
        { from: null, to: RELEASE, functions: true },
      );
    } finally {
      await db.end();
    }
    const difference = diffCatalogs(
      await catalogSnapshot(fresh.sql),
      await catalogSnapshot(sql),
      ["fresh", "upgraded"],
    );
    if (difference) assert.fail(difference);
  });

  await t.step("the member's view and tables still read, write and refresh", async () => {
    const direct = async (name: string) =>
      (await sql`select status, response from omni_kube.api(array[${`${collection}/${name}`}])`)[0];
    assert.deepEqual(
      (await asMember`select name from member_app.cm_table order by name`).map((r) => r.name),
      ["kube-root-ca.crt", "via-table"],
    );
    assert.deepEqual(
      (await asMember`select name from member_app.cm_tx order by name`).map((r) => r.name),
      ["kube-root-ca.crt", "via-tx"],
    );

    // The view: insert, update, delete.
    const [made] = await asMember`
      insert into member_app.cm_view (name, resource) values ('after-view', '{"data": {"v": "1"}}')
      returning uid`;
    assert.ok(made.uid);
    await asMember`update member_app.cm_view set resource = jsonb_set(resource, '{data,v}', '"2"')
                    where name = 'after-view'`;
    assert.equal((await direct("after-view")).response.data.v, "2");
    await asMember`delete from member_app.cm_view where name = 'after-view'`;
    assert.equal((await direct("after-view")).status, 404);

    // The plain table: insert, update, delete, each at once in the cluster.
    await asMember`insert into member_app.cm_table (name, resource) values ('after-table', '{"data": {"v": "1"}}')`;
    await asMember`update member_app.cm_table set resource = jsonb_set(resource, '{data,v}', '"2"')
                    where name = 'after-table'`;
    assert.equal((await direct("after-table")).response.data.v, "2");
    await asMember`delete from member_app.cm_table where name = 'after-table'`;
    assert.equal((await direct("after-table")).status, 404);

    // Refresh finds what was created around the table: through the view, the transactional
    // table and the POST that waited across the upgrade.
    const local = (await asMember`select name from member_app.cm_table`).map((r) => r.name);
    const cluster = await inCluster();
    const refreshed = await asMember`
      select type, object -> 'metadata' ->> 'name' as name from member_app.refresh_cm_table()`;
    assert.deepEqual(
      refreshed.map((r) => `${r.type} ${r.name}`).sort(),
      cluster.filter((name) => !local.includes(name)).map((name) => `ADDED ${name}`).sort(),
    );
    assert.ok(refreshed.length >= 2);
    assert.deepEqual(
      (await asMember`select name from member_app.cm_table order by name`).map((r) => r.name),
      cluster,
    );
    assert.deepEqual([...await asMember`select * from member_app.refresh_cm_table()`], []);

    // The transactional table: changes reach the cluster at commit.
    await asMember.begin(async (tx) => {
      await tx`insert into member_app.cm_tx (name, resource) values ('after-tx', '{"data": {"v": "1"}}')`;
      await tx`update member_app.cm_tx set resource = jsonb_set(resource, '{data,v}', '"2"')
                where name = 'via-tx'`;
      assert.equal((await direct("after-tx")).status, 404, "not before the commit");
    });
    assert.equal((await direct("after-tx")).response.data.v, "1");
    assert.equal((await direct("via-tx")).response.data.v, "2");
    const rows = await asMember`select name, committed, uid is not null as has_uid
                                  from member_app.cm_tx order by name`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      { name: "after-tx", committed: true, has_uid: true },
      { name: "kube-root-ca.crt", committed: true, has_uid: true },
      { name: "via-tx", committed: true, has_uid: true },
    ]);
  });

  await t.step("the comparison reports a function whose body was altered", async () => {
    const before = await catalogSnapshot(fresh.sql);
    const [{ definition }] = await fresh.sql`
      select pg_get_functiondef('omni_kube.version()'::regprocedure) as definition`;
    const altered = (definition as string).replace(
      /(\$[A-Za-z0-9_]*\$)\s*$/,
      (_, tag: string) => `\n-- altered by the upgrade test\n${tag}\n`,
    );
    assert.notEqual(altered, definition, `no dollar-quoted body in: ${definition}`);
    await fresh.sql.unsafe(altered);
    const difference = diffCatalogs(before, await catalogSnapshot(fresh.sql), ["before", "after"]);
    assert.match(difference, /^1 object\(s\) differ/);
    assert.match(difference, /^ {2}differs: function omni_kube\.version\(\)$/m);
    assert.match(difference, /^ +\+ -- altered by the upgrade test$/m);
  });

  await t.step(
    "a database that a newer release upgraded is refused, naming both releases",
    async () => {
      await worker.stop();
      await sql`update omni_kube.release set version = '99.0.0'`;
      const before = await catalogSnapshot(sql);
      const names = (output: string) => output.includes("99.0.0") && output.includes(RELEASE);

      for (const command of ["migrate", "start"]) {
        const result = await runCli([command], upgraded.url);
        assert.notEqual(result.code, 0, `mod.ts ${command} should fail: ${result.output}`);
        assert.ok(
          result.signal === null,
          `mod.ts ${command} did not end by itself: ${result.output}`,
        );
        assert.ok(
          names(result.output),
          `mod.ts ${command} should name 99.0.0 and ${RELEASE}: ${result.output}`,
        );
      }

      const refused = new Worker({
        ...DEFAULT_WORKER_CONFIG,
        databaseUrl: upgraded.url,
        kubeconfig: env.KUBECONFIG,
      }, log);
      try {
        await assert.rejects(refused.start(), (error: Error) => {
          assert.ok(
            names(error.message),
            `the message should name 99.0.0 and ${RELEASE}: ${error.message}`,
          );
          return true;
        });
      } finally {
        await refused.stop();
      }

      assert.equal((await sql`select omni_kube.version() as version`)[0].version, "99.0.0");
      const difference = diffCatalogs(before, await catalogSnapshot(sql), [
        "before",
        "after the refusals",
      ]);
      if (difference) assert.fail(`a refused database was changed: ${difference}`);
    },
  );
});

Deno.test(`workers of release ${PREVIOUS_RELEASE} keep serving beside the current release's`, async (t) => {
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-upgrade-" });
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  const tree = await extractOldRelease(dir, PREVIOUS_RELEASE, PREVIOUS_COMMIT);
  const db = await createDatabase("mixed");
  cleanup.defer(() => db.drop());
  const { sql } = db;
  cleanup.defer(() => sql.end({ timeout: 5 }));

  const oldWorker = spawnOldWorker(tree, db.url);
  cleanup.defer(() => oldWorker.kill());
  await waitForWorker(sql, oldWorker);
  const [{ installed }] = await sql`select omni_kube.version() as installed`;
  assert.equal(installed, PREVIOUS_RELEASE);
  const [{ old }] = await sql`select id as old from omni_kube.workers`;

  // The current worker upgrades the shim while the old one serves, and serves beside it: by name
  // too, the test bed's context.
  const worker = new Worker({
    ...DEFAULT_WORKER_CONFIG,
    databaseUrl: db.url,
    kubeconfig: testbedEnv().KUBECONFIG,
  }, createLogger("error"));
  await worker.start();
  cleanup.defer(() => worker.stop());
  const [{ upgraded }] = await sql`select omni_kube.version() as upgraded`;
  assert.equal(upgraded, RELEASE);

  const paths = Array.from({ length: 200 }, (_, i) => `/api/v1/namespaces/default?n=${i}`);
  await t.step("calls that name no cluster are served, by either release's worker", async () => {
    const rows = await sql`select status from omni_kube.api(${paths}::text[])`;
    assert.ok(rows.every((r) => r.status === 200));
    for (let i = 0; i < 20; i++) {
      const [{ ns }] =
        await sql`select omni_kube.api(${`/api/v1/namespaces/default?s=${i}`}) as ns`;
      assert.equal(ns.metadata.name, "default");
    }
  });

  await t.step("a call to a named cluster is claimed only by the current release's", async () => {
    const rows = await sql`
      select status from omni_kube.api(${paths}::text[], cluster => 'admin@testbed')`;
    assert.ok(rows.every((r) => r.status === 200));
    const [{ workers }] = await sql`
      select array_agg(distinct worker_id) as workers from omni_kube.request
       where cluster = 'admin@testbed'`;
    assert.deepEqual(workers, [worker.id]);
  });

  await t.step("with the current worker gone, the old one serves the upgraded shim", async () => {
    await worker.stop();
    const [{ before }] = await sql`select coalesce(max(id), 0) as before from omni_kube.request`;
    const created = uniqueName("mixed");
    const configmaps = "/api/v1/namespaces/default/configmaps";
    await sql`select omni_kube.api(${configmaps}, method => 'POST',
                body => jsonb_build_object('metadata', jsonb_build_object('name', ${created}::text)))`;
    const rows = await sql`select status from omni_kube.api(${paths}::text[])`;
    assert.ok(rows.every((r) => r.status === 200));
    await sql`select omni_kube.api(${`${configmaps}/${created}`}, method => 'DELETE')`;
    const [{ workers }] = await sql`
      select array_agg(distinct worker_id) as workers from omni_kube.request
       where id > ${before}`;
    assert.deepEqual(workers, [old]);
    // Nobody left serves the named cluster: the call fails at once, it is not left queued.
    await assert.rejects(
      sql`select omni_kube.api('/api/v1/namespaces/default', cluster => 'admin@testbed')`,
      (error: { code?: string }) => error.code === "OKW04",
    );
    assert.equal(oldWorker.exited(), undefined, oldWorker.output());
  });
});
