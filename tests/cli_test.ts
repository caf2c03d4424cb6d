import assert from "node:assert/strict";
import { DEFAULT_HTTP_PORT, parseCommand, USAGE } from "../lib/cli.ts";
import { DEFAULT_WORKER_CONFIG, roleLimits } from "../lib/worker.ts";

const DB = "postgres://owner@db:5432/app";

/** A fake environment holding only `vars`. */
const envOf = (vars: Record<string, string>) => (name: string): string | undefined => vars[name];

Deno.test("parseCommand: defaults to start with the default config", () => {
  assert.deepEqual(parseCommand([], envOf({ DATABASE_URL: DB })), {
    command: "start",
    config: {
      ...DEFAULT_WORKER_CONFIG,
      databaseUrl: DB,
      concurrency: 128,
      watchConcurrency: 1024,
      roleWatchConcurrency: 256,
      roleQueueLimit: 100_000,
      retentionSeconds: 600,
      migrate: true,
      httpPort: DEFAULT_HTTP_PORT,
      httpHostname: "0.0.0.0",
      shutdownGraceMs: 10_000,
      maxResponseBytes: 64 * 1024 * 1024,
      maxWatchEvents: 100_000,
      maxRequestTimeoutSeconds: 600,
      explicitServers: "any",
    },
  });
  assert.equal(DEFAULT_HTTP_PORT, 8080);
});

Deno.test("parseCommand: flags set every option", () => {
  const { command, config } = parseCommand([
    "migrate",
    "--database-url",
    DB,
    "--concurrency",
    "64",
    "--watch-concurrency=256",
    "--role-concurrency",
    "16",
    "--role-watch-concurrency=32",
    "--role-queue-limit",
    "500",
    "--retention",
    "3600",
    "--http-port",
    "0",
    "--http-host",
    "127.0.0.1",
    "--shutdown-grace",
    "25",
    "--max-response-bytes",
    "1048576",
    "--max-watch-events=500",
    "--max-request-timeout",
    "120",
  ], envOf({}));
  assert.equal(command, "migrate");
  assert.equal(config.databaseUrl, DB);
  assert.equal(config.concurrency, 64);
  assert.equal(config.watchConcurrency, 256);
  assert.equal(config.roleConcurrency, 16);
  assert.equal(config.roleWatchConcurrency, 32);
  assert.equal(config.roleQueueLimit, 500);
  assert.equal(config.retentionSeconds, 3600);
  assert.equal(config.httpPort, 0);
  assert.equal(config.httpHostname, "127.0.0.1");
  assert.equal(config.shutdownGraceMs, 25_000);
  assert.equal(config.maxResponseBytes, 1048576);
  assert.equal(config.maxWatchEvents, 500);
  assert.equal(config.maxRequestTimeoutSeconds, 120);
});

Deno.test("parseCommand: environment variables set options, and flags override them", () => {
  const env = envOf({
    DATABASE_URL: "postgres://from-env/db",
    OMNI_KUBE_CONCURRENCY: "8",
    OMNI_KUBE_WATCH_CONCURRENCY: "16",
    OMNI_KUBE_ROLE_CONCURRENCY: "3",
    OMNI_KUBE_ROLE_WATCH_CONCURRENCY: "4",
    OMNI_KUBE_ROLE_QUEUE_LIMIT: "50",
    OMNI_KUBE_RETENTION: "60",
    OMNI_KUBE_HTTP_PORT: "9187",
    OMNI_KUBE_HTTP_HOST: "::1",
    OMNI_KUBE_SHUTDOWN_GRACE: "0",
    OMNI_KUBE_MAX_RESPONSE_BYTES: "2048",
    OMNI_KUBE_MAX_WATCH_EVENTS: "10",
    OMNI_KUBE_MAX_REQUEST_TIMEOUT: "30",
  });
  const { config } = parseCommand(["status"], env);
  assert.equal(config.databaseUrl, "postgres://from-env/db");
  assert.equal(config.concurrency, 8);
  assert.equal(config.watchConcurrency, 16);
  assert.equal(config.roleConcurrency, 3);
  assert.equal(config.roleWatchConcurrency, 4);
  assert.equal(config.roleQueueLimit, 50);
  assert.equal(config.retentionSeconds, 60);
  assert.equal(config.httpPort, 9187);
  assert.equal(config.httpHostname, "::1");
  assert.equal(config.shutdownGraceMs, 0);
  assert.equal(config.maxResponseBytes, 2048);
  assert.equal(config.maxWatchEvents, 10);
  assert.equal(config.maxRequestTimeoutSeconds, 30);

  const overridden = parseCommand(["--database-url", DB, "--concurrency", "2"], env).config;
  assert.equal(overridden.databaseUrl, DB);
  assert.equal(overridden.concurrency, 2);
});

Deno.test("parseCommand: a bad --concurrency is an error naming the flag", () => {
  const env = envOf({ DATABASE_URL: DB });
  for (const value of ["0", "-3", "1.5", "many"]) {
    assert.throws(
      () => parseCommand([`--concurrency=${value}`], env),
      { message: `--concurrency must be an integer of at least 1, got "${value}"` },
    );
  }
  assert.throws(
    () => parseCommand([], envOf({ DATABASE_URL: DB, OMNI_KUBE_CONCURRENCY: "x" })),
    /^Error: --concurrency must be an integer/,
  );
});

Deno.test("parseCommand: a role's call share is half of --concurrency unless set", () => {
  const env = envOf({ DATABASE_URL: DB });
  const limits = (args: string[]) => roleLimits(parseCommand(args, env).config);
  assert.equal(parseCommand([], env).config.roleConcurrency, undefined);
  assert.deepEqual(limits([]), { api: 64, watch: 256 });
  assert.deepEqual(limits(["--concurrency=10"]), { api: 5, watch: 256 });
  assert.deepEqual(limits(["--concurrency=1"]), { api: 1, watch: 256 });
  assert.deepEqual(limits(["--concurrency=10", "--role-concurrency=10"]), { api: 10, watch: 256 });
});

Deno.test("parseCommand: a bad --retention is an error naming the flag", () => {
  assert.throws(
    () => parseCommand(["--retention", "0"], envOf({ DATABASE_URL: DB })),
    { message: '--retention must be an integer of at least 1, got "0"' },
  );
  assert.throws(
    () => parseCommand([], envOf({ DATABASE_URL: DB, OMNI_KUBE_RETENTION: "10m" })),
    { message: '--retention must be an integer of at least 1, got "10m"' },
  );
});

Deno.test("parseCommand: no DATABASE_URL is an error, except for help", () => {
  for (const args of [[], ["start"], ["migrate"], ["status"]]) {
    assert.throws(() => parseCommand(args, envOf({})), {
      message: "no database: set DATABASE_URL or pass --database-url (see --help)",
    });
  }
  assert.throws(() => parseCommand([], envOf({ DATABASE_URL: "" })), /no database/);
  assert.equal(parseCommand(["help"], envOf({})).command, "help");
});

Deno.test("parseCommand: an unknown command is an error listing the commands", () => {
  assert.throws(() => parseCommand(["serve"], envOf({ DATABASE_URL: DB })), {
    message: 'unknown command "serve"; expected start, migrate, status, help (see --help)',
  });
});

Deno.test("parseCommand: --help is the help command, with or without a database", () => {
  assert.equal(parseCommand(["--help"], envOf({})).command, "help");
  assert.equal(parseCommand(["start", "--help"], envOf({ DATABASE_URL: DB })).command, "help");
});

Deno.test("parseCommand: --no-migrate turns migrations off", () => {
  const env = envOf({ DATABASE_URL: DB });
  assert.equal(parseCommand(["--no-migrate"], env).config.migrate, false);
  assert.equal(parseCommand([], env).config.migrate, true);
});

Deno.test("parseCommand: numbers are plain decimal integers", () => {
  const env = (name: string) => name === "DATABASE_URL" ? "postgres://db/app" : undefined;
  for (const value of ["0x10", "1e3", " 80 ", "1.5"]) {
    assert.throws(
      () => parseCommand([`--concurrency=${value}`], env),
      /--concurrency must be an integer/,
    );
  }
});

Deno.test("parseCommand: the limits and shares must be positive integers; --help names them", () => {
  const env = envOf({ DATABASE_URL: DB });
  for (
    const flag of [
      "--max-response-bytes",
      "--max-watch-events",
      "--max-request-timeout",
      "--role-concurrency",
      "--role-watch-concurrency",
      "--role-queue-limit",
    ]
  ) {
    assert.throws(() => parseCommand([`${flag}=0`], env), {
      message: `${flag} must be an integer of at least 1, got "0"`,
    });
    assert.match(USAGE, new RegExp(`${flag} `));
  }
  assert.throws(
    () => parseCommand([], envOf({ DATABASE_URL: DB, OMNI_KUBE_MAX_RESPONSE_BYTES: "64M" })),
    /--max-response-bytes must be an integer/,
  );
  assert.match(USAGE, /OMNI_KUBE_MAX_RESPONSE_BYTES\] \(default 67108864\)/);
  assert.match(USAGE, /OMNI_KUBE_MAX_WATCH_EVENTS\] \(default 100000\)/);
  assert.match(USAGE, /OMNI_KUBE_MAX_REQUEST_TIMEOUT\] \(default 600\)/);
  assert.match(USAGE, /OMNI_KUBE_ROLE_CONCURRENCY\] \(default half of --concurrency\)/);
  assert.match(USAGE, /OMNI_KUBE_ROLE_WATCH_CONCURRENCY\] \(default 256\)/);
  assert.match(USAGE, /OMNI_KUBE_ROLE_QUEUE_LIMIT\] \(default 100000\)/);
});

Deno.test("parseCommand: kubeconfig, contexts and explicit servers, by flag or environment", () => {
  const { config } = parseCommand([
    "--kubeconfig=/etc/a.yaml:/etc/b.yaml",
    "--contexts",
    "prod, staging",
    "--explicit-servers=https://Kube.Example:6443/,https://10.0.0.1",
  ], envOf({ DATABASE_URL: DB }));
  assert.equal(config.kubeconfig, "/etc/a.yaml:/etc/b.yaml");
  assert.deepEqual(config.contexts, ["prod", "staging"]);
  assert.deepEqual(config.explicitServers, ["https://kube.example:6443", "https://10.0.0.1"]);
  const fromEnv = parseCommand(
    [],
    envOf({
      DATABASE_URL: DB,
      KUBECONFIG: "/k",
      OMNI_KUBE_CONTEXTS: "a",
      OMNI_KUBE_EXPLICIT_SERVERS: "none",
    }),
  ).config;
  assert.equal(fromEnv.kubeconfig, "/k");
  assert.deepEqual(fromEnv.contexts, ["a"]);
  assert.equal(fromEnv.explicitServers, "none");
  assert.equal(parseCommand([], envOf({ DATABASE_URL: DB })).config.explicitServers, "any");
});

Deno.test("parseCommand: bad contexts and explicit servers say what is wrong", () => {
  const env = envOf({ DATABASE_URL: DB });
  assert.throws(
    () => parseCommand(["--contexts=a,,b"], env),
    /--contexts must be a comma-separated/,
  );
  assert.throws(
    () => parseCommand(["--explicit-servers=http://kube:80"], env),
    /--explicit-servers: server "http:\/\/kube:80" must use https/,
  );
  assert.throws(() => parseCommand(["--explicit-servers=,"], env), /any, none or a list/);
  assert.match(USAGE, /--explicit-servers any\|none\|URL/);
  assert.match(USAGE, /--contexts A,B/);
});

Deno.test("parseCommand: --default-context names the worker's own cluster, or none", () => {
  const env = envOf({ DATABASE_URL: DB });
  assert.equal(parseCommand(["--default-context=none"], env).config.defaultContext, "none");
  assert.equal(
    parseCommand([], envOf({ DATABASE_URL: DB, OMNI_KUBE_DEFAULT_CONTEXT: "prod" })).config
      .defaultContext,
    "prod",
  );
  assert.equal(parseCommand([], env).config.defaultContext, undefined);
  assert.match(USAGE, /--default-context NAME\|none/);
});
