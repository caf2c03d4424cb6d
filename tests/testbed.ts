/**
 * Access to the test bed that `deno task test` started for this run. A test that needs it calls
 * {@linkcode testbedEnv} and fails (never skips) when it is not there, with the reason.
 *
 * @module
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { TESTBED_ENV_NAMES, type TestbedEnvName } from "../testbed/mod.ts";
import { TESTBED_ERROR_ENV } from "../testbed/test_runner.ts";
import type { KubeTarget } from "../lib/kube/client.ts";

/** The test bed's variables; throws why they are missing. */
export function testbedEnv(): Record<TestbedEnvName, string> {
  const failure = Deno.env.get(TESTBED_ERROR_ENV);
  if (failure) throw new Error(`the test bed did not start: ${failure}`);
  const missing = TESTBED_ENV_NAMES.filter((name) => !Deno.env.get(name));
  if (missing.length > 0) {
    throw new Error(
      `test bed variables missing (${missing.join(", ")}): run the tests with ` +
        "'deno task test [files]', which starts PostgreSQL and Kubernetes for them",
    );
  }
  return Object.fromEntries(TESTBED_ENV_NAMES.map((name) => [name, Deno.env.get(name)!])) as Record<
    TestbedEnvName,
    string
  >;
}

/** An API server, cluster A's (the default) or B's, as the admin: token auth and its CA. */
export async function adminTarget(cluster: "a" | "b" = "a"): Promise<KubeTarget> {
  const env = testbedEnv();
  return cluster === "a"
    ? {
      server: env.KUBE_SERVER,
      caCert: await Deno.readTextFile(env.KUBE_CA_FILE),
      token: env.KUBE_ADMIN_TOKEN,
    }
    : {
      server: env.KUBE_B_SERVER,
      caCert: await Deno.readTextFile(env.KUBE_B_CA_FILE),
      token: env.KUBE_B_ADMIN_TOKEN,
    };
}

/** A superuser postgres.js connection to the test bed's database; end it when done. */
export function connectSuperuser(options: postgres.Options<Record<string, never>> = {}) {
  return postgres(testbedEnv().DATABASE_URL, { max: 4, onnotice: () => {}, ...options });
}

/** Drops `roles` and everything they own in the database `sql` is connected to. */
export async function dropRoles(sql: postgres.Sql<Record<string, never>>, ...roles: string[]) {
  for (const role of roles) {
    await sql`drop owned by ${sql(role)}`;
    await sql`drop role ${sql(role)}`;
  }
}

/** A name no other test uses: the run's tests share one cluster, and what they create stays. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Polls `check` (every 100 ms) until it returns a value other than undefined, and returns it; fails
 * naming `what` after `timeoutMs`, with the last error `check` threw.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `${what}: not within ${timeoutMs / 1000} s${last ? ` (last error: ${last})` : ""}`,
  );
}

/** What the cluster's controllers create in every namespace, moments after the namespace. */
export const NAMESPACE_DEFAULTS = {
  configMap: "kube-root-ca.crt",
  serviceAccount: "default",
} as const;

/**
 * Creates a namespace of its own for a test, through the bridge; returns its name once it holds
 * {@linkcode NAMESPACE_DEFAULTS}: they do not then appear in the middle of the test, and pods can
 * be created (admission refuses them until the ServiceAccount exists).
 */
export async function createNamespace(
  sql: postgres.Sql<Record<string, never>>,
  prefix: string,
): Promise<string> {
  const namespace = uniqueName(prefix);
  await sql`select omni_kube.api('/api/v1/namespaces', method => 'POST',
              body => jsonb_build_object('metadata', jsonb_build_object('name', ${namespace}::text)))`;
  const paths = [
    `/api/v1/namespaces/${namespace}/configmaps/${NAMESPACE_DEFAULTS.configMap}`,
    `/api/v1/namespaces/${namespace}/serviceaccounts/${NAMESPACE_DEFAULTS.serviceAccount}`,
  ];
  await eventually(`namespace ${namespace} given ${paths.join(" and ")}`, async () => {
    const rows = await sql`select status from omni_kube.api(${paths}::text[])`;
    return rows.every((row) => row.status === 200) ? true : undefined;
  });
  return namespace;
}

/** A loopback endpoint that accepts connections and never answers; dispose of it to close it. */
export function silentEndpoint(): AsyncDisposable & { port: number; url: string } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  const { port } = listener.addr as Deno.NetAddr;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of held) conn.close();
      await accepting;
    },
  };
}

/** Awaits `query`, asserting that it fails with `sqlstate` (and `message`); returns the error. */
export async function sqlError(query: Promise<unknown>, sqlstate: string, message?: RegExp) {
  try {
    await query;
  } catch (error) {
    const e = error as { code?: string; message: string; detail?: string; hint?: string };
    assert.equal(e.code, sqlstate, `expected SQLSTATE ${sqlstate}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected SQLSTATE ${sqlstate}, but the query succeeded`);
}
