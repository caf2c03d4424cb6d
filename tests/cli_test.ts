import assert from "node:assert/strict";
import { DEFAULT_HTTP_PORT, parseCommand } from "../lib/cli.ts";
import { DEFAULT_WORKER_CONFIG } from "../lib/worker.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("parseCommand: defaults, with DATABASE_URL from the environment", () => {
  const { command, config } = parseCommand([], envOf({ DATABASE_URL: "postgres://db/app" }));
  assert.equal(command, "start");
  assert.equal(config.databaseUrl, "postgres://db/app");
  assert.equal(config.concurrency, DEFAULT_WORKER_CONFIG.concurrency);
  assert.equal(config.httpPort, DEFAULT_HTTP_PORT);
  assert.equal(config.migrate, true);
});

Deno.test("parseCommand: flags win over the environment", () => {
  const { command, config } = parseCommand(
    [
      "migrate",
      "--database-url=postgres://flag/db",
      "--concurrency",
      "7",
      "--retention",
      "5",
      "--http-port",
      "0",
      "--shutdown-grace",
      "3",
      "--no-migrate",
    ],
    envOf({ DATABASE_URL: "postgres://env/db", OMNI_KUBE_CONCURRENCY: "99" }),
  );
  assert.equal(command, "migrate");
  assert.equal(config.databaseUrl, "postgres://flag/db");
  assert.equal(config.concurrency, 7);
  assert.equal(config.retentionSeconds, 5);
  assert.equal(config.httpPort, 0);
  assert.equal(config.shutdownGraceMs, 3000);
  assert.equal(config.migrate, false);
});

Deno.test("parseCommand: clear errors", () => {
  const env = envOf({ DATABASE_URL: "postgres://db/app" });
  assert.throws(
    () => parseCommand(["--concurrency", "0"], env),
    /--concurrency must be an integer of at least 1, got "0"/,
  );
  assert.throws(() => parseCommand(["--retention", "soon"], env), /--retention must be an integer/);
  assert.throws(
    () => parseCommand(["serve"], env),
    /unknown command "serve"; expected start, migrate, status, help/,
  );
  assert.throws(
    () => parseCommand([], envOf({})),
    /no database: set DATABASE_URL or pass --database-url/,
  );
  assert.equal(parseCommand(["--help"], envOf({})).command, "help");
});
