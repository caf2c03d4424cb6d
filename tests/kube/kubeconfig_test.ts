import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify as stringifyYaml } from "yaml";
import {
  type ClusterConfig,
  NoKubeconfigError,
  readKubeconfig,
  readTokenFile,
  resolveContext,
} from "../../lib/kube/kubeconfig.ts";
import { CA, CERT, KEY, kubeconfig, tempDir } from "./kubeconfig_fixtures.ts";

/** Stands for a secret that must never appear in an error. */
const SECRET = "s3cr3t-do-not-print";

/** Writes `value` as YAML (or as JSON when `path` ends in .json), creating directories; returns `path`. */
async function write(path: string, value: unknown): Promise<string> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(
    path,
    path.endsWith(".json") ? JSON.stringify(value) : stringifyYaml(value),
  );
  return path;
}

/** Context "main" of a kubeconfig with `cluster` and `user`, written to `dir`. */
async function resolveMain(
  dir: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
): Promise<ClusterConfig> {
  const file = await write(join(dir, "config"), kubeconfig(cluster, user));
  return await resolveContext(await readKubeconfig([file]), "main");
}

/** Asserts that resolving context "main" fails with all of `patterns` and without the secret. */
async function assertRefused(
  dir: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  ...patterns: RegExp[]
): Promise<void> {
  await assert.rejects(resolveMain(dir, cluster, user), (error: Error) => {
    assert.ok(error.message.includes(join(dir, "config")), `no file in: ${error.message}`);
    assert.match(error.message, /context "main"/);
    for (const pattern of patterns) assert.match(error.message, pattern);
    assert.ok(!error.message.includes(SECRET), `a secret is in: ${error.message}`);
    return true;
  });
}

const SERVER = { server: "https://kube.example:6443" };

// Reading and merging files.

Deno.test("readKubeconfig: the first file defining a name wins it, whole", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const first = await write(join(dir.path, "first"), {
    "current-context": "a",
    clusters: [
      { name: "shared", cluster: { server: "https://first.example" } },
      { name: "one", cluster: { server: "https://one.example" } },
    ],
    users: [{ name: "shared", user: { token: "first-token" } }],
    contexts: [
      { name: "a", context: { cluster: "one", user: "shared" } },
      { name: "both", context: { cluster: "shared", user: "shared", namespace: "first" } },
    ],
  });
  const second = await write(join(dir.path, "second.json"), {
    "current-context": "b",
    clusters: [
      // Not merged into the first file's "shared": its CA is discarded with it.
      {
        name: "shared",
        cluster: { server: "https://second.example", "certificate-authority-data": btoa(CA) },
      },
      { name: "two", cluster: { server: "https://two.example" } },
    ],
    users: [{ name: "shared", user: { token: "second-token" } }, { name: "v", user: {} }],
    contexts: [
      { name: "both", context: { cluster: "two", user: "v" } },
      { name: "b", context: { cluster: "shared", user: "v" } },
    ],
  });
  const config = await readKubeconfig([first, second]);
  assert.deepEqual(config.files, [first, second]);
  assert.equal(config.currentContext, "a");
  assert.deepEqual(config.contextNames, ["a", "both", "b"]);

  const both = await resolveContext(config, "both");
  assert.equal(both.server, "https://first.example");
  assert.deepEqual(both.auth, { kind: "token", token: "first-token" });
  assert.equal(both.namespace, "first");
  assert.equal(both.file, first);

  // Defined by the second file, but its cluster is the first file's "shared".
  const b = await resolveContext(config, "b");
  assert.equal(b.file, second);
  assert.equal(b.server, "https://first.example");
  assert.equal(b.caCert, undefined);
  assert.deepEqual(b.auth, { kind: "none" });
});

Deno.test("readKubeconfig: current-context comes from the first file that sets one", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const unset = await write(join(dir.path, "unset"), { contexts: [] });
  const empty = await write(join(dir.path, "empty-string"), { "current-context": "" });
  const set = await write(join(dir.path, "set"), { "current-context": "later" });
  const other = await write(join(dir.path, "other"), { "current-context": "last" });
  assert.equal((await readKubeconfig([unset, empty, set, other])).currentContext, "later");
  assert.equal((await readKubeconfig([unset])).currentContext, undefined);
});

Deno.test("readKubeconfig: missing files are skipped; none at all is NoKubeconfigError", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const missing = join(dir.path, "missing");
  const real = await write(join(dir.path, "real"), kubeconfig(SERVER, {}));
  const config = await readKubeconfig(["", missing, real, real]);
  assert.deepEqual(config.files, [real]);
  assert.equal(config.currentContext, "main");

  await assert.rejects(readKubeconfig([missing, join(dir.path, "also-missing")]), (error) => {
    assert.ok(error instanceof NoKubeconfigError);
    assert.match(error.message, /no kubeconfig file exists/);
    assert.ok(error.message.includes(missing));
    return true;
  });
  await assert.rejects(readKubeconfig([]), NoKubeconfigError);
});

Deno.test("readKubeconfig: an empty file is an empty kubeconfig", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const empty = join(dir.path, "empty");
  await Deno.writeTextFile(empty, "");
  const config = await readKubeconfig([empty]);
  assert.deepEqual(config.contextNames, []);
  await assert.rejects(resolveContext(config, "x"), /no context named "x"; it defines no context/);
});

Deno.test("readKubeconfig: a file that is not a kubeconfig is an error naming it, quoting nothing", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const cases: [string, RegExp][] = [
    [
      `users:\n  - name: u\n    user: {token: "${SECRET}"\n`,
      /is not valid YAML or JSON \(line \d+\)/,
    ],
    [`- token: ${SECRET}\n`, /is not a kubeconfig: it is not a mapping/],
    [`kind: Secret\ndata: {token: ${SECRET}}\n`, /is not a kubeconfig: its kind is not "Config"/],
    [`apiVersion: v2\n`, /its apiVersion is not "v1"/],
    [`users: {u: {token: ${SECRET}}}\n`, /is not a kubeconfig: users is not a list/],
    [`users: [{user: {token: ${SECRET}}}]\n`, /an entry of users has no name/],
    [
      `users: [{name: u, user: {}}, {name: u, user: {token: ${SECRET}}}]\n`,
      /two users are named "u"/,
    ],
    [`users: [{name: u, user: ${SECRET}}]\n`, /user "u" is not a mapping/],
    [`current-context: [${SECRET}]\n`, /current-context is not a string/],
  ];
  for (const [index, [text, pattern]] of cases.entries()) {
    const file = join(dir.path, `bad-${index}`);
    await Deno.writeTextFile(file, text);
    await assert.rejects(readKubeconfig([file]), (error: Error) => {
      assert.match(error.message, pattern);
      assert.ok(error.message.startsWith(`kubeconfig ${file} `), error.message);
      assert.ok(!error.message.includes(SECRET), `a secret is in: ${error.message}`);
      return true;
    });
  }
});

Deno.test("readKubeconfig: a file that cannot be read is an error naming it", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assert.rejects(readKubeconfig([dir.path]), (error: Error) => {
    assert.ok(error.message.startsWith(`kubeconfig ${dir.path} cannot be read`), error.message);
    return true;
  });
});

// Resolving a context: paths, credentials, refusals.

Deno.test("resolveContext: relative paths resolve against the file that defined each entry", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  // The cluster is defined in one directory, the user in another, the context in a third.
  await Deno.mkdir(join(dir.path, "clusters", "pki"), { recursive: true });
  await Deno.writeTextFile(join(dir.path, "clusters", "pki", "ca.crt"), CA);
  await Deno.mkdir(join(dir.path, "users", "pki"), { recursive: true });
  await Deno.writeTextFile(join(dir.path, "users", "pki", "client.crt"), CERT);
  await Deno.writeTextFile(join(dir.path, "users", "pki", "client.key"), KEY);
  await Deno.writeTextFile(join(dir.path, "users", "token"), "file-token\n");
  const contexts = await write(join(dir.path, "contexts", "config"), {
    "current-context": "cert",
    contexts: [
      { name: "cert", context: { cluster: "c", user: "cert" } },
      { name: "token", context: { cluster: "c", user: "token" } },
      { name: "exec", context: { cluster: "c", user: "exec" } },
      { name: "path", context: { cluster: "c", user: "path" } },
      { name: "absolute", context: { cluster: "c", user: "absolute" } },
    ],
  });
  const clusters = await write(join(dir.path, "clusters", "config"), {
    clusters: [{ name: "c", cluster: { ...SERVER, "certificate-authority": "pki/ca.crt" } }],
  });
  const exec = (command: string) => ({
    exec: { apiVersion: "client.authentication.k8s.io/v1", command, interactiveMode: "Never" },
  });
  const users = await write(join(dir.path, "users", "config.json"), {
    users: [
      {
        name: "cert",
        user: { "client-certificate": "pki/client.crt", "client-key": "pki/client.key" },
      },
      { name: "token", user: { tokenFile: "token" } },
      { name: "exec", user: exec("./bin/plugin") },
      { name: "path", user: exec("kubelogin") },
      { name: "absolute", user: exec("/usr/local/bin/plugin") },
    ],
  });
  const config = await readKubeconfig([contexts, clusters, users]);

  const cert = await resolveContext(config, "cert");
  assert.equal(cert.caCert, CA);
  assert.deepEqual(cert.auth, { kind: "client-certificate", certificate: CERT, privateKey: KEY });

  const token = await resolveContext(config, "token");
  assert.deepEqual(token.auth, { kind: "token-file", path: join(dir.path, "users", "token") });

  const commandOf = async (context: string) => {
    const { auth } = await resolveContext(config, context);
    assert.equal(auth.kind, "exec");
    return auth.exec.command;
  };
  assert.equal(await commandOf("exec"), join(dir.path, "users", "bin", "plugin"));
  assert.equal(await commandOf("path"), "kubelogin");
  assert.equal(await commandOf("absolute"), "/usr/local/bin/plugin");
});

Deno.test("resolveContext: a relative kubeconfig path still gives absolute paths", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await Deno.writeTextFile(join(dir.path, "token"), "t\n");
  await write(join(dir.path, "config"), kubeconfig(SERVER, { tokenFile: "token" }));
  const cwd = Deno.cwd();
  Deno.chdir(dir.path);
  try {
    const resolved = await resolveContext(await readKubeconfig(["config"]), "main");
    assert.deepEqual(resolved.auth, { kind: "token-file", path: join(dir.path, "token") });
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("resolveContext: the whole resolved context, with embedded data", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const file = await write(join(dir.path, "config"), {
    clusters: [{
      name: "c",
      cluster: {
        server: "https://kube.example:6443/",
        "certificate-authority-data": btoa(CA),
        extensions: [
          { name: "other", extension: { x: 1 } },
          { name: "client.authentication.k8s.io/exec", extension: { audience: "kube" } },
        ],
      },
    }],
    users: [{
      name: "u",
      user: { "client-certificate-data": btoa(CERT), "client-key-data": btoa(KEY) },
    }],
    contexts: [{ name: "main", context: { cluster: "c", user: "u", namespace: "apps" } }],
  });
  assert.deepEqual(await resolveContext(await readKubeconfig([file]), "main"), {
    context: "main",
    file,
    clusterName: "c",
    userName: "u",
    namespace: "apps",
    server: "https://kube.example:6443",
    caCert: CA,
    auth: { kind: "client-certificate", certificate: CERT, privateKey: KEY },
    execCluster: { server: "https://kube.example:6443/", caCert: CA, config: { audience: "kube" } },
  });
});

Deno.test("resolveContext: token, token file, data over file, no user", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  assert.deepEqual((await resolveMain(dir.path, SERVER, { token: "inline" })).auth, {
    kind: "token",
    token: "inline",
  });

  await Deno.writeTextFile(join(dir.path, "token"), "  from-file\n");
  const fromFile = await resolveMain(dir.path, SERVER, { tokenFile: "token" });
  assert.deepEqual(fromFile.auth, { kind: "token-file", path: join(dir.path, "token") });
  assert.equal(await readTokenFile(join(dir.path, "token")), "from-file");
  // client-go sends the file's token when it has both.
  const both = await resolveMain(dir.path, SERVER, { token: "inline", tokenFile: "token" });
  assert.equal(both.auth.kind, "token-file");

  // `*-data` wins over the file, as in client-go (the file is not even read).
  const data = await resolveMain(
    dir.path,
    { ...SERVER, "certificate-authority": "absent.crt", "certificate-authority-data": btoa(CA) },
    {
      "client-certificate": "absent.crt",
      "client-certificate-data": btoa(CERT),
      "client-key-data": btoa(KEY),
    },
  );
  assert.equal(data.caCert, CA);
  assert.equal(data.auth.kind, "client-certificate");

  // An empty user entry, and a context without a user, are anonymous.
  assert.deepEqual((await resolveMain(dir.path, SERVER, {})).auth, { kind: "none" });
  const file = await write(join(dir.path, "no-user"), {
    clusters: [{ name: "c", cluster: SERVER }],
    contexts: [{ name: "anonymous", context: { cluster: "c" } }],
  });
  const anonymous = await resolveContext(await readKubeconfig([file]), "anonymous");
  assert.deepEqual(anonymous.auth, { kind: "none" });
  assert.equal(anonymous.userName, undefined);
  assert.deepEqual(anonymous.execCluster, { server: SERVER.server });
});

Deno.test("readTokenFile: an unreadable or empty file is an error naming it", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const empty = join(dir.path, "empty");
  await Deno.writeTextFile(empty, " \n");
  await assert.rejects(readTokenFile(empty), new RegExp(`token file ${empty} is empty`));
  await assert.rejects(
    readTokenFile(join(dir.path, "absent")),
    /token file .*absent cannot be read/,
  );
  // Checked when the context is resolved, too.
  await assertRefused(
    dir.path,
    SERVER,
    { tokenFile: "empty" },
    /tokenFile that is unusable/,
    /is empty/,
  );
});

Deno.test("resolveContext: an unknown context lists the known ones", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const file = await write(join(dir.path, "config"), kubeconfig(SERVER, {}));
  await assert.rejects(
    resolveContext(await readKubeconfig([file]), "absent"),
    new RegExp(`kubeconfig ${file}: no context named "absent"; known contexts: "main"`),
  );
});

Deno.test("resolveContext: TLS is never turned off or bent", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assertRefused(
    dir.path,
    { ...SERVER, "insecure-skip-tls-verify": true },
    { token: SECRET },
    /cluster "c" turns TLS verification off, which the worker never does; give its CA/,
  );
  await assertRefused(
    dir.path,
    { ...SERVER, "tls-server-name": "other.example" },
    {},
    /cluster "c" sets tls-server-name, which the worker cannot honour/,
  );
  await assertRefused(
    dir.path,
    { ...SERVER, "proxy-url": "http://proxy.example:3128" },
    {},
    /cluster "c" sets proxy-url, which the worker does not use/,
  );
});

Deno.test("resolveContext: a missing or unusable server is refused", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assertRefused(dir.path, {}, { token: SECRET }, /cluster "c" has no server; give it https/);
  await assertRefused(dir.path, { server: "http://kube.example" }, {}, /must use https/);
  await assertRefused(
    dir.path,
    { server: "https://kube.example/prefix" },
    {},
    /only https:\/\/host/,
  );
});

Deno.test("resolveContext: auth-provider, basic auth and impersonation are refused", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assertRefused(
    dir.path,
    SERVER,
    { "auth-provider": { name: "oidc", config: { "id-token": SECRET } } },
    /user "u" authenticates through auth-provider, which the worker does not run; use a token/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    { username: "admin", password: SECRET },
    /user "u" uses basic auth \(username and password\), which the worker does not send/,
  );
  await assertRefused(dir.path, SERVER, { password: SECRET }, /uses basic auth/);
  await assertRefused(
    dir.path,
    SERVER,
    { token: SECRET, as: "system:admin" },
    /user "u" impersonates \(as\), which the worker does not do/,
  );
  const unset = { as: "", "as-groups": [], "as-user-extra": {}, "as-uid": null };
  assert.equal((await resolveMain(dir.path, SERVER, { token: "t", ...unset })).auth.kind, "token");
  await assertRefused(
    dir.path,
    SERVER,
    { token: SECRET, "as-groups": ["a"] },
    /impersonates \(as-groups\)/,
  );
});

Deno.test("resolveContext: a certificate without its key, or the reverse, is refused", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assertRefused(
    dir.path,
    SERVER,
    { "client-certificate-data": btoa(CERT) },
    /user "u" has a client certificate without its key; give both/,
  );
  await Deno.writeTextFile(join(dir.path, "key"), SECRET);
  await assertRefused(
    dir.path,
    SERVER,
    { "client-key": "key" },
    /user "u" has a client key without its certificate/,
  );
});

Deno.test("resolveContext: more than one way to authenticate is refused", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const exec = {
    apiVersion: "client.authentication.k8s.io/v1",
    command: "p",
    interactiveMode: "Never",
  };
  await assertRefused(
    dir.path,
    SERVER,
    { token: SECRET, "client-certificate-data": btoa(CERT), "client-key-data": btoa(KEY) },
    /user "u" authenticates with both a token and a client certificate; keep only one/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    { token: SECRET, exec },
    /authenticates with both a token and an exec plugin/,
  );
});

Deno.test("resolveContext: unreadable files and bad base64 are refused without their content", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  await assertRefused(
    dir.path,
    { ...SERVER, "certificate-authority": "absent.crt" },
    {},
    new RegExp(
      `cluster "c" has a certificate-authority ${join(dir.path, "absent.crt")} that cannot be read`,
    ),
  );
  await assertRefused(
    dir.path,
    SERVER,
    { "client-certificate-data": btoa(CERT), "client-key-data": `${SECRET}!` },
    /user "u" has a client-key-data that is not base64/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    { token: 12345 },
    /user "u" has a token that is not a string/,
  );
});

Deno.test("resolveContext: a context naming an undefined cluster or user, or none", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const file = await write(join(dir.path, "config"), {
    clusters: [{ name: "c", cluster: SERVER }],
    contexts: [
      { name: "no-cluster", context: { user: "u" } },
      { name: "lost-cluster", context: { cluster: "gone" } },
      { name: "lost-user", context: { cluster: "c", user: "gone" } },
    ],
  });
  const config = await readKubeconfig([file]);
  await assert.rejects(
    resolveContext(config, "no-cluster"),
    new RegExp(`kubeconfig ${file}, context "no-cluster": the context names no cluster`),
  );
  await assert.rejects(
    resolveContext(config, "lost-cluster"),
    /names cluster "gone", which no kubeconfig file defines/,
  );
  await assert.rejects(
    resolveContext(config, "lost-user"),
    /names user "gone", which no kubeconfig file defines/,
  );
});

// Exec plugins.

Deno.test("resolveContext: an exec plugin's settings, as client-go reads them", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const resolved = await resolveMain(dir.path, SERVER, {
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command: "aws",
      args: ["eks", "get-token", "--cluster-name", "prod"],
      env: [{ name: "AWS_PROFILE", value: "prod" }, { name: "EMPTY" }],
      interactiveMode: "Never",
      provideClusterInfo: true,
      installHint: "install the AWS CLI",
    },
  });
  assert.deepEqual(resolved.auth, {
    kind: "exec",
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command: "aws",
      args: ["eks", "get-token", "--cluster-name", "prod"],
      env: [{ name: "AWS_PROFILE", value: "prod" }, { name: "EMPTY", value: "" }],
      interactiveMode: "Never",
      provideClusterInfo: true,
      installHint: "install the AWS CLI",
    },
  });

  // The least a plugin needs; v1beta1 defaults interactiveMode to IfAvailable, as client-go does.
  const minimal = await resolveMain(dir.path, SERVER, {
    exec: { apiVersion: "client.authentication.k8s.io/v1beta1", command: "gke-gcloud-auth-plugin" },
  });
  assert.deepEqual(minimal.auth, {
    kind: "exec",
    exec: {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      command: "gke-gcloud-auth-plugin",
      args: [],
      env: [],
      interactiveMode: "IfAvailable",
      provideClusterInfo: false,
    },
  });
  const v1 = await resolveMain(dir.path, SERVER, {
    exec: { apiVersion: "client.authentication.k8s.io/v1", command: "p", args: null, env: null },
  });
  assert.ok(v1.auth.kind === "exec" && v1.auth.exec.interactiveMode === undefined);
});

Deno.test("resolveContext: exec plugins the worker cannot run are refused", async () => {
  await using dir = await tempDir("omni_kube_kubeconfig_test_");
  const exec = (fields: Record<string, unknown>) => ({
    exec: { apiVersion: "client.authentication.k8s.io/v1", command: "p", ...fields },
  });
  await assertRefused(
    dir.path,
    SERVER,
    exec({ interactiveMode: "Always" }),
    /user "u"'s exec plugin sets interactiveMode: Always, but the worker has no terminal/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    exec({ interactiveMode: "Sometimes" }),
    /interactiveMode "Sometimes"/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    exec({ apiVersion: "client.authentication.k8s.io/v1alpha1" }),
    /has apiVersion "client.authentication.k8s.io\/v1alpha1"; give one of client.authentication.k8s.io\/v1, /,
  );
  await assertRefused(dir.path, SERVER, exec({ apiVersion: undefined }), /has no apiVersion/);
  await assertRefused(dir.path, SERVER, exec({ command: "" }), /exec plugin has no command/);
  await assertRefused(
    dir.path,
    SERVER,
    exec({ args: "--all" }),
    /args that are not a list of strings/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    exec({ env: [{ value: SECRET }] }),
    /env variable without a valid name/,
  );
  await assertRefused(
    dir.path,
    SERVER,
    exec({ env: [{ name: "X", value: 1 }] }),
    /env variable X whose value is not a string/,
  );
  await assertRefused(dir.path, SERVER, exec({ provideClusterInfo: "yes" }), /provideClusterInfo/);
  await assertRefused(dir.path, SERVER, { exec: "p" }, /exec plugin is not a mapping/);
});
