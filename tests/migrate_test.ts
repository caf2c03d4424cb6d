/**
 * The migrator (lib/migrate.ts) and the layout of sql/: the rules on their own, then installs and
 * refusals against real PostgreSQL. The upgrade from release 0.1.0 is tests/upgrade_test.ts.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  bundledShim,
  IncompatibleDatabase,
  type Installed,
  LEGACY_FILES,
  migrate,
  parseManifest,
  pendingMigrations,
  planMigration,
  schemaForServer,
  serverVersionName,
  type Shim,
} from "../lib/migrate.ts";
import { compareReleases, RELEASE } from "../lib/version.ts";
import { testbedEnv } from "./testbed.ts";

const FUNCTIONS_DIR = new URL("../sql/functions/", import.meta.url);

async function sqlFilesUnder(dir: URL, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      found.push(...await sqlFilesUnder(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`));
    } else if (entry.name.endsWith(".sql")) {
      found.push(prefix + entry.name);
    }
  }
  return found.sort();
}

Deno.test("function layer: the manifest lists every file under sql/functions exactly once", async () => {
  const listed = parseManifest(await Deno.readTextFile(new URL("manifest.txt", FUNCTIONS_DIR)));
  assert.deepEqual([...listed].sort(), await sqlFilesUnder(FUNCTIONS_DIR));
  assert.equal(new Set(listed).size, listed.length, "a file is listed twice");
});

Deno.test("function layer: no file refers to an object of a file after it", async () => {
  const shim = await bundledShim();
  const code = (sql: string) => sql.replace(/--[^\n]*/g, "");
  const definedIn = new Map<string, number>();
  shim.functions.forEach((file, index) => {
    for (
      const [, name] of code(file.sql).matchAll(
        /create or replace (?:function|view) omni_kube\.(\w+)/g,
      )
    ) {
      assert.ok(!definedIn.has(name) || definedIn.get(name) === index, `${name} is defined twice`);
      definedIn.set(name, index);
    }
  });
  const forward: string[] = [];
  shim.functions.forEach((file, index) => {
    // (retired.sql names what it drops: objects of earlier releases, or their earlier forms.)
    if (file.path === "retired.sql") return;
    for (const [, name] of code(file.sql).matchAll(/omni_kube\.(\w+)/g)) {
      const at = definedIn.get(name);
      if (at !== undefined && at > index) {
        forward.push(`${file.path} refers to ${name} of ${shim.functions[at].path}`);
      }
    }
  });
  assert.deepEqual(forward, []);
});

Deno.test("function layer: every file re-creates its objects (create or replace, no bare create)", async () => {
  const shim = await bundledShim();
  for (const file of shim.functions) {
    assert.doesNotMatch(
      file.sql.replace(/--[^\n]*/g, ""),
      /^create\s+(function|view|trigger|table|type|index)\b/im,
      file.path,
    );
  }
});

Deno.test("schema layer: only tables, types, indexes and data; numbered files", async () => {
  const shim = await bundledShim();
  assert.ok(shim.schema.length > 0);
  shim.schema.forEach((file, index) => {
    assert.match(file.name, /^\d{4}_[a-z0-9_]+\.sql$/);
    assert.equal(Number(file.name.slice(0, 4)), index + 1, `${file.name} is out of sequence`);
    assert.doesNotMatch(file.sql, /create (or replace )?(function|view)/i, file.name);
  });
});

Deno.test("compareReleases: numeric, part by part", () => {
  assert.ok(compareReleases("0.10.0", "0.9.9") > 0);
  assert.ok(compareReleases("0.1.0", "0.2.0") < 0);
  assert.equal(compareReleases("1.2.3", "1.2.3"), 0);
  assert.throws(() => compareReleases("latest", "0.1.0"), /not a release number/);
});

/** A shim with two schema files, for the planning rules. */
const SHIM: Shim = {
  release: "0.3.0",
  schema: [
    { name: "0001_baseline.sql", sql: "", checksum: "aaa" },
    { name: "0002_more.sql", sql: "", checksum: "bbb" },
  ],
  functions: [],
  functionsHash: "fff",
};
const EMPTY: Installed = {
  release: null,
  schema: new Map(),
  functionsHash: null,
  legacyFiles: null,
  legacyQueueUnlogged: false,
  unrecordedTables: false,
  serverVersion: 180004,
};

Deno.test("planMigration: an empty database gets everything", () => {
  const plan = planMigration(EMPTY, SHIM);
  assert.equal(plan.from, null);
  assert.deepEqual(plan.schema.map((f) => f.name), ["0001_baseline.sql", "0002_more.sql"]);
  assert.equal(plan.functions, true);
  assert.equal(plan.adoptLegacy, false);
});

Deno.test("planMigration: an install of 0.1.0 is adopted as the baseline", () => {
  const plan = planMigration(
    { ...EMPTY, legacyFiles: [...LEGACY_FILES], legacyQueueUnlogged: true },
    SHIM,
  );
  assert.equal(plan.from, "0.1.0");
  assert.equal(plan.adoptLegacy, true);
  assert.deepEqual(plan.schema.map((f) => f.name), ["0002_more.sql"]);
  assert.equal(plan.functions, true);
});

Deno.test("planMigration: an install older than 0.1.0 is refused, with what to do", () => {
  for (
    const installed of [
      { ...EMPTY, legacyFiles: LEGACY_FILES.slice(0, 21), legacyQueueUnlogged: false },
      { ...EMPTY, legacyFiles: [...LEGACY_FILES], legacyQueueUnlogged: false },
    ]
  ) {
    assert.throws(
      () => planMigration(installed, SHIM),
      (error: Error) =>
        error instanceof IncompatibleDatabase && /older than release 0\.1\.0/.test(error.message) &&
        /new database/.test(error.message),
    );
  }
});

Deno.test("planMigration: up to date, a new function layer, a new schema file", () => {
  const current: Installed = {
    ...EMPTY,
    release: "0.3.0",
    schema: new Map([["0001_baseline.sql", "aaa"], ["0002_more.sql", "bbb"]]),
    functionsHash: "fff",
  };
  const same = planMigration(current, SHIM);
  assert.deepEqual([same.schema.length, same.functions], [0, false]);
  assert.equal(planMigration({ ...current, functionsHash: "old" }, SHIM).functions, true);
  const older = planMigration({
    ...current,
    release: "0.2.0",
    schema: new Map([["0001_baseline.sql", "aaa"]]),
  }, SHIM);
  assert.deepEqual(older.schema.map((f) => f.name), ["0002_more.sql"]);
  assert.equal(older.functions, true);
  assert.equal(older.from, "0.2.0");
});

Deno.test("planMigration: refuses a newer release, unknown or edited schema files, foreign tables", () => {
  const refused = (installed: Installed, pattern: RegExp) =>
    assert.throws(
      () => planMigration(installed, SHIM),
      (error: Error) => error instanceof IncompatibleDatabase && pattern.test(error.message),
    );
  refused(
    { ...EMPTY, release: "0.4.0", schema: new Map([["0001_baseline.sql", "aaa"]]) },
    /upgraded by omni_kube 0\.4\.0, which is newer than this worker's release 0\.3\.0/,
  );
  refused(
    { ...EMPTY, release: "0.3.0", schema: new Map([["0003_later.sql", "ccc"]]) },
    /does not know \(0003_later\.sql\)/,
  );
  refused(
    { ...EMPTY, release: "0.3.0", schema: new Map([["0001_baseline.sql", "changed"]]) },
    /0001_baseline\.sql of this release differs from what was applied/,
  );
  refused({ ...EMPTY, unrecordedTables: true }, /not installed by this tool/);
});

/** {@linkcode SHIM} with variants of its baseline for PostgreSQL 14 and 12. */
const VARIANT_SHIM: Shim = {
  ...SHIM,
  schema: [
    {
      ...SHIM.schema[0],
      variants: [
        { maxMajor: 14, sql: "-- 14", checksum: "a14" },
        { maxMajor: 12, sql: "-- 12", checksum: "a12" },
      ],
    },
    SHIM.schema[1],
  ],
};

Deno.test("schemaForServer: the variant of the oldest folder that still covers the server", () => {
  const chosen = (version: number) =>
    schemaForServer(VARIANT_SHIM, version).map((f) => [f.name, f.checksum, f.variant ?? "-"]);
  for (const version of [150000, 150013, 180004]) {
    assert.deepEqual(chosen(version), [
      ["0001_baseline.sql", "aaa", "-"],
      ["0002_more.sql", "bbb", "-"],
    ], `${version}`);
  }
  assert.deepEqual(chosen(140023), [
    ["0001_baseline.sql", "a14", "pg14"],
    ["0002_more.sql", "bbb", "-"],
  ]);
  assert.deepEqual(chosen(130000)[0], ["0001_baseline.sql", "a14", "pg14"]);
  assert.deepEqual(chosen(120005)[0], ["0001_baseline.sql", "a12", "pg12"]);
  assert.equal(schemaForServer(VARIANT_SHIM, 140000)[0].sql, "-- 14");
});

Deno.test("planMigration: PostgreSQL 14 gets the variant, recorded under the file's name", () => {
  const plan = planMigration({ ...EMPTY, serverVersion: 140023 }, VARIANT_SHIM);
  assert.deepEqual(plan.schema.map((f) => [f.name, f.checksum]), [
    ["0001_baseline.sql", "a14"],
    ["0002_more.sql", "bbb"],
  ]);
  assert.deepEqual(
    planMigration(EMPTY, VARIANT_SHIM).schema.map((f) => [f.name, f.checksum]),
    [["0001_baseline.sql", "aaa"], ["0002_more.sql", "bbb"]],
  );
});

Deno.test("planMigration: either checksum of a file with variants is accepted, on any server", () => {
  for (const checksum of ["aaa", "a14", "a12"]) {
    for (const serverVersion of [140023, 150013, 180004]) {
      const installed: Installed = {
        ...EMPTY,
        release: "0.3.0",
        schema: new Map([["0001_baseline.sql", checksum], ["0002_more.sql", "bbb"]]),
        functionsHash: "fff",
        serverVersion,
      };
      const plan = planMigration(installed, VARIANT_SHIM);
      assert.deepEqual(
        [plan.schema.length, plan.functions],
        [0, false],
        `${checksum} on ${serverVersion}`,
      );
    }
  }
  assert.throws(
    () =>
      planMigration({
        ...EMPTY,
        release: "0.3.0",
        schema: new Map([["0001_baseline.sql", "a13"]]),
        serverVersion: 140023,
      }, VARIANT_SHIM),
    /0001_baseline\.sql of this release differs from what was applied/,
  );
});

Deno.test("planMigration: a server older than PostgreSQL 14 is refused, naming its version", () => {
  assert.throws(
    () => planMigration({ ...EMPTY, serverVersion: 130022 }, SHIM),
    (error: Error) =>
      error instanceof IncompatibleDatabase &&
      /PostgreSQL 13\.22; omni_kube 0\.3\.0 needs PostgreSQL 14 or newer/.test(error.message),
  );
  assert.equal(serverVersionName(90624), "9.6.24");
  assert.equal(serverVersionName(140023), "14.23");
});

Deno.test("schema variants: pg14/0001_baseline.sql is the baseline but for pending_change's key", async () => {
  const shim = await bundledShim();
  const baseline = shim.schema.find((f) => f.name === "0001_baseline.sql")!;
  assert.deepEqual(baseline.variants?.map((v) => v.maxMajor), [14]);
  const code = (text: string) => text.split("\n").filter((l) => !l.startsWith("--")).join("\n");
  const key = "  unique nulls not distinct (xact, resource_table, name, namespace)\n);\n";
  assert.ok(baseline.sql.includes(`  body jsonb,\n${key}`));
  assert.equal(
    code(baseline.variants![0].sql),
    code(baseline.sql.replace(
      `  body jsonb,\n${key}`,
      "  body jsonb\n);\ncreate unique index pending_change_key\n" +
        "  on omni_kube.pending_change (xact, resource_table, name, coalesce(namespace, ''));\n",
    )),
  );
  // The file after it makes every install's key this same index.
  const portable = shim.schema.find((f) => f.name === "0003_portable_keys.sql")!;
  assert.ok(
    portable.sql.includes(
      "create unique index if not exists pending_change_key\n" +
        "  on omni_kube.pending_change (xact, resource_table, name, coalesce(namespace, ''));",
    ),
  );
});

/** A new, empty database in the test bed; dropped on dispose. */
async function scratchDatabase(prefix: string) {
  const env = testbedEnv();
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const name = `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
  await admin`create database ${admin(name)}`;
  const url = new URL(env.DATABASE_URL);
  url.pathname = `/${name}`;
  const connections: postgres.Sql<Record<string, never>>[] = [];
  return {
    url: url.href,
    connect() {
      const sql = postgres(url.href, { max: 2, onnotice: () => {} });
      connections.push(sql);
      return sql;
    },
    async [Symbol.asyncDispose]() {
      for (const sql of connections) await sql.end();
      await admin`drop database ${admin(name)} with (force)`;
      await admin.end();
    },
  };
}

Deno.test("migrate: installs, then has nothing to do; version() names the release", async () => {
  await using db = await scratchDatabase("migrate_fresh");
  const sql = db.connect();
  const shim = await bundledShim();
  assert.deepEqual(await pendingMigrations(sql), [...shim.schema.map((f) => f.name), "functions"]);
  const [{ server }] = await sql`select current_setting('server_version_num')::int as server`;
  const first = await migrate(sql);
  assert.deepEqual(first, {
    from: null,
    to: RELEASE,
    adopted: false,
    // Each file as this server got it: on PostgreSQL 14, "0001_baseline.sql (pg14 variant)".
    applied: schemaForServer(shim, server).map((f) =>
      f.variant ? `${f.name} (${f.variant} variant)` : f.name
    ),
    functionsReplaced: true,
  });
  assert.deepEqual(await pendingMigrations(sql), []);
  const second = await migrate(sql);
  assert.deepEqual(second, {
    from: RELEASE,
    to: RELEASE,
    adopted: false,
    applied: [],
    functionsReplaced: false,
  });
  const [{ version }] = await sql`select omni_kube.version() as version`;
  assert.equal(version, RELEASE);
  const recorded =
    await sql`select name, checksum, release from omni_kube.schema_migrations order by name`;
  // The checksum of what this server got: on PostgreSQL 14, the baseline's variant.
  assert.deepEqual(
    recorded.map((r) => [r.name, r.checksum, r.release]),
    schemaForServer(shim, server).map((f) => [f.name, f.checksum, RELEASE]),
  );
});

Deno.test("migrate: migrators started together install once", async () => {
  await using db = await scratchDatabase("migrate_concurrent");
  const reports = await Promise.all(
    [db.connect(), db.connect(), db.connect()].map((sql) => migrate(sql)),
  );
  // Each step ran once, whichever migrator got to it first.
  const baselines = reports.flatMap((r) => r.applied).filter((name) =>
    name.startsWith("0001_baseline.sql")
  );
  assert.equal(baselines.length, 1, JSON.stringify(reports));
  assert.equal(reports.filter((r) => r.functionsReplaced).length, 1, JSON.stringify(reports));
  const sql = db.connect();
  assert.deepEqual(await pendingMigrations(sql), []);
});

Deno.test("migrate: a changed function layer is re-created; an edited schema file is refused", async () => {
  await using db = await scratchDatabase("migrate_changes");
  const sql = db.connect();
  const shim = await bundledShim();
  await migrate(sql, shim);
  const version = shim.functions.findIndex((f) => f.path === "roles/version.sql");
  const changed: Shim = {
    ...shim,
    functions: shim.functions.map((f, i) =>
      i === version
        ? { ...f, sql: f.sql.replace("select version from", "select 'x' || version from") }
        : f
    ),
    functionsHash: "changed",
  };
  const report = await migrate(sql, changed);
  assert.equal(report.functionsReplaced, true);
  const [{ v }] = await sql`select omni_kube.version() as v`;
  assert.equal(v, `x${RELEASE}`);

  const edited: Shim = {
    ...shim,
    // (Its variants too: whichever this server was given.)
    schema: shim.schema.map((f, i) =>
      i === 0
        ? {
          ...f,
          checksum: "0".repeat(64),
          variants: f.variants?.map((v) => ({ ...v, checksum: "0".repeat(64) })),
        }
        : f
    ),
  };
  await assert.rejects(
    migrate(sql, edited),
    (error: Error) =>
      error instanceof IncompatibleDatabase &&
      error.message.includes(`${shim.schema[0].name} of this release differs`),
  );
  // Refused before anything changed: the function layer is still the one installed above.
  const [{ hash }] = await sql`select functions_hash as hash from omni_kube.release`;
  assert.equal(hash, "changed");
});

Deno.test("migrate: a database upgraded by a newer release is refused, naming both", async () => {
  await using db = await scratchDatabase("migrate_newer");
  const sql = db.connect();
  await migrate(sql);
  await sql`update omni_kube.release set version = '99.0.0'`;
  const message = new RegExp(
    `upgraded by omni_kube 99\\.0\\.0, which is newer than this worker's release ${
      RELEASE.replaceAll(".", "\\.")
    }`,
  );
  await assert.rejects(migrate(sql), message);
  await assert.rejects(pendingMigrations(sql), message);
  const migrateCommand = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../mod.ts", import.meta.url).pathname, "migrate"],
    env: { DATABASE_URL: db.url },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(migrateCommand.stderr);
  assert.notEqual(migrateCommand.code, 0, stderr);
  assert.match(stderr, message);
});
