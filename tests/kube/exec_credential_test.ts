/**
 * Exec credential plugins, run for real: small `#!/bin/sh` scripts in a temporary directory.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ExecConfig,
  type ExecCredential,
  ExecCredentialSource,
  ExecPluginError,
  pluginEnvironment,
} from "../../lib/kube/exec_credential.ts";
import { promptly } from "./fakes.ts";
import { CA, CERT, KEY, tempDir } from "./kubeconfig_fixtures.ts";

const V1 = "client.authentication.k8s.io/v1";
const V1BETA1 = "client.authentication.k8s.io/v1beta1";
/** Stands for a secret that must never appear in an error. */
const SECRET = "s3cr3t-do-not-print";
const SERVER = { server: "https://kube.example:6443" };

/** Writes an executable `#!/bin/sh` script with `body` to `dir/name`; returns its path. */
async function script(dir: string, body: string, name = "plugin"): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

/** Shell lines that count the plugin's runs in `dir/count` and set `$n` to this run's number. */
function countRuns(dir: string): string {
  const count = join(dir, "count");
  return `n=$(cat '${count}' 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > '${count}'`;
}

/** Shell that prints an ExecCredential whose token is `token` (shell words, expanded). */
function printToken(token: string, apiVersion = V1, extra = ""): string {
  return `printf '{"apiVersion":"${apiVersion}","kind":"ExecCredential","status":{"token":"%s"${extra}}}' "${token}"`;
}

function execConfig(command: string, fields: Partial<ExecConfig> = {}): ExecConfig {
  return { apiVersion: V1, command, args: [], env: [], provideClusterInfo: false, ...fields };
}

/** Asserts that `promise` fails with an ExecPluginError for cluster "prod" matching `pattern`. */
async function assertPluginError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ExecPluginError, `not an ExecPluginError: ${error}`);
    assert.equal(error.cluster, "prod");
    assert.match(error.message, /cluster "prod"/);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(SECRET), `a secret is in: ${error.message}`);
    assert.ok(!String(error.cause ?? "").includes(SECRET), "a secret is in the cause");
    return true;
  });
}

Deno.test("ExecCredentialSource: runs the plugin once and keeps a credential without expiry", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(dir.path, `${countRuns(dir.path)}\n${printToken("token-$n")}`);
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  assert.equal(source.invocations, 0);
  const first = await source.get();
  assert.deepEqual(first, { token: "token-1" });
  assert.equal(await source.get(), first);
  assert.equal(source.invocations, 1);
});

Deno.test("ExecCredentialSource: 100 concurrent get() share one run", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(
    dir.path,
    `${countRuns(dir.path)}\nsleep 0.2\n${printToken("token-$n")}`,
  );
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  const credentials = await Promise.all(Array.from({ length: 100 }, () => source.get()));
  assert.equal(source.invocations, 1);
  assert.equal((await Deno.readTextFile(join(dir.path, "count"))).trim(), "1");
  for (const credential of credentials) assert.equal(credential, credentials[0]);
  assert.deepEqual(credentials[0], { token: "token-1" });
});

Deno.test("ExecCredentialSource: renews ahead of expirationTimestamp", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const expiry = "2030-01-01T00:00:00Z";
  const expiresAt = Date.parse(expiry);
  const plugin = await script(
    dir.path,
    `${countRuns(dir.path)}\n${printToken("token-$n", V1, `,"expirationTimestamp":"${expiry}"`)}`,
  );
  let now = expiresAt - 10 * 60_000;
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER, {
    renewBeforeMs: 60_000,
    now: () => now,
  });
  assert.deepEqual(await source.get(), { token: "token-1", expiresAt });
  now = expiresAt - 61_000;
  assert.equal((await source.get()).token, "token-1");
  assert.equal(source.invocations, 1);
  // Within a minute of the expiry: renewed before it is used again.
  now = expiresAt - 59_000;
  assert.equal((await source.get()).token, "token-2");
  assert.equal(source.invocations, 2);
  // The new one has the same expiry (the script's is fixed) and lives 59 s: renewed at half of
  // that, not at once.
  now = expiresAt - 30_000;
  assert.equal((await source.get()).token, "token-2");
  now = expiresAt - 29_000;
  assert.equal((await source.get()).token, "token-3");
  // Expired already: every get() runs it, as client-go does.
  now = expiresAt + 1;
  assert.equal((await source.get()).token, "token-4");
  assert.equal((await source.get()).token, "token-5");
});

Deno.test("ExecCredentialSource: invalidate after a 401 runs the plugin again, once", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(dir.path, `${countRuns(dir.path)}\n${printToken("token-$n")}`);
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  const stale = await source.get();
  source.invalidate(stale);
  const renewed = await source.get();
  assert.equal(renewed.token, "token-2");
  // A second caller that was refused with the stale credential does not renew it again.
  source.invalidate(stale);
  assert.equal(await source.get(), renewed);
  assert.equal(source.invocations, 2);
});

Deno.test("ExecCredentialSource: v1beta1", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(dir.path, printToken("beta", V1BETA1));
  const source = new ExecCredentialSource(
    "prod",
    execConfig(plugin, { apiVersion: V1BETA1 }),
    SERVER,
  );
  assert.deepEqual(await source.get(), { token: "beta" });
});

Deno.test("ExecCredentialSource: a client certificate and key, with a fractional-second expiry", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const output = JSON.stringify({
    apiVersion: V1,
    kind: "ExecCredential",
    status: {
      clientCertificateData: CERT,
      clientKeyData: KEY,
      expirationTimestamp: "2030-01-01T01:00:00.5+01:00",
    },
  });
  await Deno.writeTextFile(join(dir.path, "output.json"), output);
  const plugin = await script(dir.path, `cat '${join(dir.path, "output.json")}'`);
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  assert.deepEqual(await source.get(), {
    clientCert: { certificate: CERT, privateKey: KEY },
    expiresAt: Date.parse("2030-01-01T00:00:00.500Z"),
  });
});

Deno.test("ExecCredentialSource: KUBERNETES_EXEC_INFO, with and without provideClusterInfo", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const info = join(dir.path, "info.json");
  // Also: stdin is not a terminal, nor anything to read.
  const plugin = await script(
    dir.path,
    `printf '%s' "$KUBERNETES_EXEC_INFO" > '${info}'\n` +
      `if [ -t 0 ] || [ -n "$(cat)" ]; then exit 9; fi\n${printToken("t")}`,
  );
  const cluster = { ...SERVER, caCert: CA, config: { audience: "kube", nested: [1] } };
  // The kubeconfig's env cannot replace it.
  const env = [{ name: "KUBERNETES_EXEC_INFO", value: "forged" }];

  await new ExecCredentialSource("prod", execConfig(plugin, { env }), cluster).get();
  assert.deepEqual(JSON.parse(await Deno.readTextFile(info)), {
    apiVersion: V1,
    kind: "ExecCredential",
    spec: { interactive: false },
  });

  const provide = execConfig(plugin, { env, provideClusterInfo: true, apiVersion: V1 });
  await new ExecCredentialSource("prod", provide, cluster).get();
  assert.deepEqual(JSON.parse(await Deno.readTextFile(info)), {
    apiVersion: V1,
    kind: "ExecCredential",
    spec: {
      interactive: false,
      cluster: {
        server: SERVER.server,
        "certificate-authority-data": btoa(CA),
        config: { audience: "kube", nested: [1] },
      },
    },
  });

  await new ExecCredentialSource("prod", provide, SERVER).get();
  assert.deepEqual(JSON.parse(await Deno.readTextFile(info)).spec, {
    interactive: false,
    cluster: { server: SERVER.server },
  });
});

Deno.test("ExecCredentialSource: the plugin gets the worker's environment but its database's, plus exec.env", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(
    dir.path,
    printToken(
      "$AWS_TEST_INHERITED/$AWS_TEST_SET/${DATABASE_URL:-none}/${PGPASSWORD:-none}/" +
        "${OMNI_KUBE_TEST:-none}/$1/$2",
    ),
  );
  const variables = {
    AWS_TEST_INHERITED: "inherited",
    AWS_TEST_SET: "replaced",
    DATABASE_URL: "postgres://owner:secret@db/app",
    PGPASSWORD: "secret",
    OMNI_KUBE_TEST: "setting",
  };
  // The environment is the process's, shared by every test file: put back what was there.
  const before = Object.keys(variables).map((name) => [name, Deno.env.get(name)] as const);
  for (const [name, value] of Object.entries(variables)) Deno.env.set(name, value);
  try {
    const config = execConfig(plugin, {
      args: ["first arg", "second"],
      env: [{ name: "AWS_TEST_SET", value: "from-kubeconfig" }],
    });
    const credential = await new ExecCredentialSource("prod", config, SERVER).get();
    assert.equal(credential.token, "inherited/from-kubeconfig/none/none/none/first arg/second");
  } finally {
    for (const [name, value] of before) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});

Deno.test("pluginEnvironment: drops the database connection and the worker's settings", () => {
  assert.deepEqual(
    pluginEnvironment({
      PATH: "/usr/bin",
      HOME: "/home/w",
      AWS_PROFILE: "inventory",
      DATABASE_URL: "postgres://owner:secret@db/app",
      PGHOST: "db",
      PGPASSWORD: "secret",
      OMNI_KUBE_CONCURRENCY: "8",
    }),
    { PATH: "/usr/bin", HOME: "/home/w", AWS_PROFILE: "inventory" },
  );
});

Deno.test("ExecCredentialSource: a failing plugin's status is reported, never its output", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(
    dir.path,
    `${countRuns(dir.path)}\necho '${SECRET}'\necho '${SECRET}' >&2\nexit 3`,
  );
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  await assertPluginError(source.get(), /failed with exit status 3$/);
  assert.ok((await source.get().catch((e) => e)).message.includes(plugin));
  // A failure is not kept: each get() tries again.
  assert.equal(source.invocations, 2);
});

Deno.test("ExecCredentialSource: after a failure, the next get() can succeed", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(
    dir.path,
    `${countRuns(dir.path)}\nif [ "$n" = 1 ]; then exit 1; fi\n${printToken("token-$n")}`,
  );
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  await assertPluginError(source.get(), /exit status 1/);
  assert.deepEqual(await source.get(), { token: "token-2" });
});

Deno.test("ExecCredentialSource: a plugin that takes too long is killed", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  // The shell's `sleep` keeps stdout open after the shell is killed: the wait must end anyway.
  const plugin = await script(dir.path, `echo '${SECRET}'\nsleep 5\n${printToken("late")}`);
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER, { timeoutMs: 300 });
  const started = performance.now();
  await promptly(assertPluginError(source.get(), /timed out after 0.3 s/), 3000);
  assert.ok(performance.now() - started >= 250);

  const direct = await script(dir.path, "exec sleep 5", "direct");
  await promptly(
    assertPluginError(
      new ExecCredentialSource("prod", execConfig(direct), SERVER, { timeoutMs: 200 }).get(),
      /timed out after 0.2 s/,
    ),
    3000,
  );
});

Deno.test("ExecCredentialSource: a missing command is reported with its installHint", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const hint = "Install it with: brew install omni-kube-login";
  await assertPluginError(
    new ExecCredentialSource(
      "prod",
      execConfig("omni-kube-no-such-plugin", { installHint: hint }),
      SERVER,
    ).get(),
    new RegExp(`"omni-kube-no-such-plugin" of cluster "prod" was not found: ${hint}$`),
  );
  await assertPluginError(
    new ExecCredentialSource("prod", execConfig(join(dir.path, "absent")), SERVER).get(),
    /was not found$/,
  );
});

Deno.test("ExecCredentialSource: output of another apiVersion is refused", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const beta = await script(dir.path, printToken(SECRET, V1BETA1), "beta");
  await assertPluginError(
    new ExecCredentialSource("prod", execConfig(beta), SERVER).get(),
    new RegExp(
      `printed no valid ExecCredential: it answered ${V1BETA1}, but the kubeconfig asks for ${V1}`,
    ),
  );
  // An unknown version is not quoted: the plugin may have printed anything there.
  const odd = await script(dir.path, printToken("t", SECRET), "odd");
  await assertPluginError(
    new ExecCredentialSource("prod", execConfig(odd), SERVER).get(),
    /it answered another apiVersion/,
  );
});

Deno.test("ExecCredentialSource: invalid output is described without quoting it", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const cases: [unknown, RegExp][] = [
    [`{"token": "${SECRET}"`, /its output is not JSON/],
    ["", /it printed nothing/],
    [[SECRET], /its output is not a JSON object/],
    [{ apiVersion: V1, kind: "Secret", status: { token: SECRET } }, /kind is not "ExecCredential"/],
    [{ apiVersion: V1, kind: "ExecCredential" }, /it has no status/],
    [{ apiVersion: V1, kind: "ExecCredential", status: {} }, /neither a token nor a client/],
    [
      { apiVersion: V1, kind: "ExecCredential", status: { token: 42 } },
      /status.token is not a string/,
    ],
    [
      { apiVersion: V1, kind: "ExecCredential", status: { clientCertificateData: CERT } },
      /clientCertificateData without clientKeyData/,
    ],
    [
      { apiVersion: V1, kind: "ExecCredential", status: { clientKeyData: SECRET } },
      /clientKeyData without clientCertificateData/,
    ],
    [
      {
        apiVersion: V1,
        kind: "ExecCredential",
        status: { token: SECRET, expirationTimestamp: "tomorrow" },
      },
      /expirationTimestamp is not an RFC 3339 time/,
    ],
  ];
  for (const [index, [output, pattern]] of cases.entries()) {
    const file = join(dir.path, `output-${index}`);
    await Deno.writeTextFile(file, typeof output === "string" ? output : JSON.stringify(output));
    const plugin = await script(dir.path, `cat '${file}'`, `plugin-${index}`);
    await assertPluginError(
      new ExecCredentialSource("prod", execConfig(plugin), SERVER).get(),
      new RegExp(`printed no valid ExecCredential: .*${pattern.source}`),
    );
  }
});

Deno.test("ExecCredentialSource: a plugin that prints without end is stopped", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(dir.path, `yes '${SECRET}'`);
  await promptly(
    assertPluginError(
      new ExecCredentialSource("prod", execConfig(plugin), SERVER).get(),
      /printed no valid ExecCredential: more than 1048576 bytes/,
    ),
    5000,
  );
});

Deno.test("ExecCredentialSource: an aborted get() stops waiting; the run goes on for the others", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(
    dir.path,
    `${countRuns(dir.path)}\nsleep 0.3\n${printToken("token-$n")}`,
  );
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  const abort = new AbortController();
  const leaving = source.get(abort.signal);
  const staying = source.get();
  abort.abort(new Error("caller gone"));
  await assert.rejects(leaving, { message: "caller gone" });
  assert.deepEqual(await staying, { token: "token-1" });
  assert.equal(source.invocations, 1);
  await assert.rejects(source.get(abort.signal), { message: "caller gone" });
});

Deno.test("ExecCredentialSource: an unsupported apiVersion is refused at once", () => {
  assert.throws(
    () =>
      new ExecCredentialSource(
        "prod",
        execConfig("p", { apiVersion: "client.authentication.k8s.io/v1alpha1" }),
        SERVER,
      ),
    /cluster "prod": exec apiVersion "client.authentication.k8s.io\/v1alpha1" is not supported/,
  );
});

Deno.test("ExecCredentialSource: credentials handed out cannot be changed by a caller", async () => {
  await using dir = await tempDir("omni_kube_exec_test_");
  const plugin = await script(dir.path, printToken("t"));
  const source = new ExecCredentialSource("prod", execConfig(plugin), SERVER);
  const credential: ExecCredential = await source.get();
  assert.throws(() => {
    (credential as { token?: string }).token = "changed";
  }, TypeError);
});
