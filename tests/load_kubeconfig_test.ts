/**
 * omni_kube.load_kubeconfig() and its YAML reader, omni_kube._yaml_to_jsonb(), against real
 * PostgreSQL and a real kube-apiserver: kubeconfigs written to files the database server reads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { startBridge } from "./bridge.ts";
import { sqlError, testbedEnv, uniqueName } from "./testbed.ts";

type Sql = postgres.Sql<Record<string, never>>;

const NAMESPACE = "/api/v1/namespaces/default";

function base64(text: string): string {
  return btoa(text); // PEM is ASCII
}

/** Asserts that none of `secrets` is in the error's message, detail or hint. */
function assertNoSecrets(
  error: { message: string; detail?: string; hint?: string },
  secrets: string[],
) {
  const text = [error.message, error.detail ?? "", error.hint ?? ""].join("\n");
  for (const secret of secrets) assert.ok(!text.includes(secret), `a secret is in: ${text}`);
}

/** A kubeconfig document with one cluster and the given users and contexts (context name = user name). */
function kubeconfig(
  cluster: Record<string, unknown>,
  users: Record<string, unknown>,
  current: string,
) {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "testbed", cluster }],
    contexts: Object.keys(users).map((name) => ({
      name,
      context: { cluster: "testbed", user: name },
    })),
    "current-context": current,
    users: Object.entries(users).map(([name, user]) => ({ name, user })),
  };
}

Deno.test("omni_kube.load_kubeconfig()", async (t) => {
  const env = testbedEnv();
  await using bridge = await startBridge("kubeconfig");
  const { sql } = bridge;
  const caCert = await Deno.readTextFile(env.KUBE_CA_FILE);
  const clientCert = await Deno.readTextFile(env.KUBE_CLIENT_CERT_FILE);
  const clientKey = await Deno.readTextFile(env.KUBE_CLIENT_KEY_FILE);
  const secrets = [env.KUBE_ADMIN_TOKEN, env.KUBE_LIMITED_TOKEN, base64(clientKey)];

  // The database server may run as another OS user (nobody, when the tests run as root): the
  // files it reads are world-readable, which is fine for a throwaway test directory.
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-kubeconfig-" });
  await Deno.chmod(dir, 0o755);
  const write = async (name: string, content: string) => {
    const path = join(dir, name);
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o755 });
    await Deno.chmod(join(path, ".."), 0o755);
    await Deno.writeTextFile(path, content);
    await Deno.chmod(path, 0o644);
    return path;
  };
  // The server's OS user owns its data directory. A file it cannot read: mode 0600, owned by the
  // tests' user (root, with the server as nobody); when the server runs as the tests' user, mode 0.
  const [{ dataDirectory }] = await sql`
    select current_setting('data_directory') as "dataDirectory"`;
  const serverUid = (await Deno.stat(dataDirectory)).uid!;
  const serverUser = (await Deno.readTextFile("/etc/passwd")).split("\n")
    .map((line) => line.split(":")).find((fields) => fields[2] === String(serverUid))?.[0];
  const serverCannotRead = async (name: string, content: string) => {
    const path = await write(name, content);
    await Deno.chmod(path, serverUid === Deno.uid() ? 0o000 : 0o600);
    return path;
  };
  /** The message for a file the server's OS user cannot read. */
  const osDenied = (path: string, what: string) =>
    "omni_kube: the database server's operating-system user" +
    (serverUser ? `, "${serverUser}" (uid ${serverUid}),` : ` (uid ${serverUid})`) +
    ` cannot read "${path}" (${what})`;
  await write("ca.crt", caCert);
  await write("certs/admin.crt", clientCert);
  await write("certs/admin.key", clientKey);
  await write("tokens/limited", `${env.KUBE_LIMITED_TOKEN}\n`);

  /** One session (settings are per session), as `role`. */
  const sessions: Sql[] = [];
  const session = (role = "postgres") => {
    const url = new URL(bridge.url);
    url.username = role;
    const one = postgres(url.href, { max: 1, onnotice: () => {} });
    sessions.push(one);
    return one;
  };
  const settings = async (db: Sql) => {
    const [row] = await db`
      select coalesce(current_setting('omni_kube.server', true), '') as server,
             coalesce(current_setting('omni_kube.cacert', true), '') as cacert,
             coalesce(current_setting('omni_kube.clientcert', true), '') as clientcert,
             coalesce(current_setting('omni_kube.client_private_key', true), '') as key,
             coalesce(current_setting('omni_kube.token', true), '') as token`;
    return row;
  };
  const namespaceKind = async (db: Sql) => {
    const [{ kind }] = await db`select omni_kube.api(${NAMESPACE}) ->> 'kind' as kind`;
    return kind;
  };

  try {
    await t.step("YAML: kubeconfigs as kubectl, kind and k3s write them", async () => {
      const kind = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${base64(caCert)}
    server: https://127.0.0.1:38233
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: ${base64(clientCert)}
    client-key-data: ${base64(clientKey)}
`;
      // Hand-written: indented sequences, comments, quotes, ---, extensions, an exec user.
      const handWritten = `# written by hand
---
apiVersion: "v1"
kind: 'Config'
clusters:
  - name: minikube   # the local one
    cluster:
      certificate-authority: /home/me/.minikube/ca.crt
      extensions:
        - extension:
            last-update: Wed, 10 Jan 2024 10:00:00 UTC
            provider: minikube.sigs.k8s.io
            version: v1.32.0
          name: cluster_info
      server: "https://192.168.49.2:8443"

contexts:
  - name: eks
    context: {cluster: minikube, user: eks, namespace: "team-a"}
users:
  - name: eks
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: aws
        args: [eks, get-token, --cluster-name, "my cluster"]
        env: null
        interactiveMode: IfAvailable
        provideClusterInfo: false
  - name: gke
    user:
      auth-provider:
        name: gcp
        config:
          cmd-args: config config-helper --format=json
          expiry-key: '{.credential.token_expiry}'
current-context: eks
preferences: {}
`;
      for (const text of [kind, handWritten]) {
        const [{ parsed }] = await sql`select omni_kube._yaml_to_jsonb(${text}) as parsed`;
        assert.deepEqual(parsed, parseYaml(text));
      }
      const [{ parsed }] = await sql`select omni_kube._yaml_to_jsonb(${kind}) as parsed`;
      assert.equal(parsed.users[0].user["client-key-data"], base64(clientKey));
    });

    await t.step("YAML: scalars, block scalars, flow collections, JSON", async () => {
      const text = `plain: hello world # a comment
url: https://a.example:6443/x#fragment
double: "tab\\there \\"quoted\\" \\u00e9\\x41 \\ud83d\\ude00"
single: 'it''s # not a comment'
folded quoted: "first
  second

  third\\
  joined"
literal: |
  line 1
    indented
  line 3
folded: >-
  a
  b

  c
keep: |+
  x

empty:
typed: [~, null, true, False, 12, -3.5, 1e3, "7", 0123, yes, 2024-01-01]
flow: {a: [1, {b: c}], 'd e': "f"}
nested:
  - - a
    - b
  -
  - k: v
    k2: v2
`;
      const [{ parsed }] = await sql`select omni_kube._yaml_to_jsonb(${text}) as parsed`;
      assert.deepEqual(parsed, {
        plain: "hello world",
        url: "https://a.example:6443/x#fragment",
        double: 'tab\there "quoted" éA 😀',
        single: "it's # not a comment",
        "folded quoted": "first second\nthirdjoined",
        literal: "line 1\n  indented\nline 3\n",
        folded: "a b\nc",
        keep: "x\n\n",
        empty: null,
        // YAML 1.2's core types; 0123 and yes stay strings (a token or a base64 text is never a number).
        typed: [null, null, true, false, 12, -3.5, 1000, "7", "0123", "yes", "2024-01-01"],
        flow: { a: [1, { b: "c" }], "d e": "f" },
        nested: [["a", "b"], null, { k: "v", k2: "v2" }],
      });
      const json = JSON.stringify(kubeconfig({ server: "https://h" }, { u: { token: "t" } }, "u"));
      const [{ fromJson }] = await sql`select omni_kube._yaml_to_jsonb(${json}) as "fromJson"`;
      assert.deepEqual(fromJson, JSON.parse(json));
      const [{ empty }] = await sql`select omni_kube._yaml_to_jsonb('# nothing') as empty`;
      assert.equal(empty, null);
    });

    await t.step(
      "YAML: what it cannot read fails with the line number, quoting nothing",
      async () => {
        const cases: [string, string, RegExp][] = [
          ["users:\n- name: a\n\ttoken: SECRET-1", "22P02", /^omni_kube: YAML line 3: a tab/],
          ["a: 1\nb: &anchor SECRET-2", "0A000", /^omni_kube: YAML line 2: anchors/],
          ["a: *alias", "0A000", /line 1: anchors, aliases and tags/],
          ["a: !!binary SECRET-3", "0A000", /line 1: anchors, aliases and tags/],
          ["a: 1\n---\nb: 2", "0A000", /line 2: several documents/],
          ["? complex\n: key", "0A000", /line 1: complex mapping keys/],
          ['token: "SECRET-4\nnext: 1', "22P02", /line 1: a quoted string is not closed/],
          ["token: SECRET-5: x", "22P02", /line 1: a ": " inside a plain value/],
          ["a:\n  b: 1\n    c: SECRET-6", "22P02", /line 3: /],
          ["a: [1, SECRET-7", "22P02", /line 1: expected "," or "]"/],
          ["a: 1\na: SECRET-8", "22P02", /line 2: a mapping key appears twice/],
          ['a: "\\q SECRET-9"', "22P02", /line 1: an unknown escape/],
        ];
        for (const [text, sqlstate, message] of cases) {
          const error = await sqlError(
            sql`select omni_kube._yaml_to_jsonb(${text})`,
            sqlstate,
            message,
          );
          assertNoSecrets(error, ["SECRET"]);
        }
      },
    );

    await t.step(
      "a YAML file: relative CA, client certificate and tokenFile paths, current-context",
      async () => {
        const file = await write(
          "config",
          `apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: ${env.KUBE_SERVER}
    certificate-authority: ca.crt
users:
- name: admin-cert
  user:
    client-certificate: certs/admin.crt
    client-key: ./certs/admin.key
- name: limited
  user:
    tokenFile: tokens/limited
contexts:
- name: cert
  context: {cluster: testbed, user: admin-cert}
- name: limited
  context:
    cluster: testbed
    user: limited
current-context: cert
`,
        );
        const db = session();
        const [{ used }] = await db`select omni_kube.load_kubeconfig(${file}::text) as used`;
        assert.equal(used, "cert");
        assert.deepEqual(await settings(db), {
          server: env.KUBE_SERVER,
          cacert: caCert,
          clientcert: clientCert,
          key: clientKey,
          token: "",
        });
        assert.equal(await namespaceKind(db), "Namespace");

        // The limited user's token, and nothing of the previous context: the API server says 403.
        await db`select omni_kube.load_kubeconfig(${file}::text, 'limited')`;
        const loaded = await settings(db);
        assert.equal(loaded.token, env.KUBE_LIMITED_TOKEN);
        assert.equal(loaded.clientcert, "");
        assert.equal(loaded.key, "");
        const forbidden = await sqlError(db`select omni_kube.api(${NAMESPACE})`, "OK403");
        assert.match(forbidden.detail!, /"limited"/);
      },
    );

    await t.step("the test bed's own kubeconfig, rewritten as YAML by a YAML library", async () => {
      // deno-lint-ignore no-explicit-any -- kubeconfig JSON
      const config: any = JSON.parse(await Deno.readTextFile(env.KUBECONFIG));
      // Its CA file named relative to the kubeconfig: the copy beside it.
      config.clusters[0].cluster["certificate-authority"] = "ca.crt";
      for (const indentSeq of [true, false]) {
        const file = await write(`testbed-${indentSeq}.yaml`, stringifyYaml(config, { indentSeq }));
        const db = session();
        const [{ used }] = await db`select omni_kube.load_kubeconfig(${file}::text) as used`;
        assert.equal(used, config["current-context"]);
        assert.equal((await settings(db)).token, env.KUBE_ADMIN_TOKEN);
        assert.equal(await namespaceKind(db), "Namespace");
      }
    });

    await t.step("embedded data: as a file, as jsonb and as json", async () => {
      const config = kubeconfig(
        { server: env.KUBE_SERVER, "certificate-authority-data": base64(caCert) },
        {
          "admin-cert": {
            "client-certificate-data": base64(clientCert),
            "client-key-data": base64(clientKey),
          },
          admin: { token: env.KUBE_ADMIN_TOKEN },
          limited: { token: env.KUBE_LIMITED_TOKEN },
        },
        "admin",
      );
      const db = session();
      // JSON is YAML: a file holding JSON is read as well.
      const file = await write("embedded.json", JSON.stringify(config, null, 2));
      const [{ fromFile }] = await db`
        select omni_kube.load_kubeconfig(${file}::text, 'admin-cert') as "fromFile"`;
      assert.equal(fromFile, "admin-cert");
      assert.equal(await namespaceKind(db), "Namespace");

      const [{ used }] = await db`
        select omni_kube.load_kubeconfig(${JSON.stringify(config)}::text::jsonb) as used`;
      assert.equal(used, "admin");
      assert.deepEqual(await settings(db), {
        server: env.KUBE_SERVER,
        cacert: caCert,
        clientcert: "",
        key: "",
        token: env.KUBE_ADMIN_TOKEN,
      });
      assert.equal(await namespaceKind(db), "Namespace");

      await db`select omni_kube.load_kubeconfig(${JSON.stringify(config)}::text::json, 'limited')`;
      await sqlError(db`select omni_kube.api(${NAMESPACE})`, "OK403");

      // Absolute paths are read for jsonb too; relative ones have no directory to resolve against.
      const absolute = kubeconfig(
        { server: env.KUBE_SERVER, "certificate-authority": join(dir, "ca.crt") },
        { limited: { tokenFile: join(dir, "tokens/limited") } },
        "limited",
      );
      await db`select omni_kube.load_kubeconfig(${JSON.stringify(absolute)}::text::jsonb)`;
      assert.equal((await settings(db)).token, env.KUBE_LIMITED_TOKEN);
      const relative = kubeconfig(
        { server: env.KUBE_SERVER, "certificate-authority": "ca.crt" },
        { admin: { token: env.KUBE_ADMIN_TOKEN } },
        "admin",
      );
      const error = await sqlError(
        db`select omni_kube.load_kubeconfig(${JSON.stringify(relative)}::text::jsonb)`,
        "22023",
        /certificate-authority of cluster "testbed" is a relative path/,
      );
      assert.match(error.hint!, /absolute path/);
    });

    await t.step("local => true lasts only for the transaction", async () => {
      const config = JSON.stringify(kubeconfig(
        { server: env.KUBE_SERVER, "certificate-authority-data": base64(caCert) },
        { admin: { token: env.KUBE_ADMIN_TOKEN } },
        "admin",
      ));
      const db = session();
      await db.begin(async (tx) => {
        await tx`select omni_kube.load_kubeconfig(${config}::text::jsonb, local => true)`;
        assert.equal((await settings(tx as unknown as Sql)).token, env.KUBE_ADMIN_TOKEN);
        const [{ kind }] = await tx`select omni_kube.api(${NAMESPACE}) ->> 'kind' as kind`;
        assert.equal(kind, "Namespace");
      });
      assert.deepEqual(await settings(db), {
        server: "",
        cacert: "",
        clientcert: "",
        key: "",
        token: "",
      });

      // Without local, the settings stay for the session, and only for it.
      await db`select omni_kube.load_kubeconfig(${config}::text::jsonb)`;
      await db`select 1`;
      assert.equal((await settings(db)).token, env.KUBE_ADMIN_TOKEN);
      assert.equal((await settings(session())).token, "");
    });

    await t.step(
      "exec, auth-provider, insecure-skip-tls-verify and bad servers are refused",
      async () => {
        const db = session();
        const refused = async (
          cluster: Record<string, unknown>,
          user: unknown,
          sqlstate: string,
          message: RegExp,
        ) => {
          const config = JSON.stringify(kubeconfig(
            { server: env.KUBE_SERVER, "certificate-authority-data": base64(caCert), ...cluster },
            { someone: user },
            "someone",
          ));
          const error = await sqlError(
            db`select omni_kube.load_kubeconfig(${config}::text::jsonb)`,
            sqlstate,
            message,
          );
          assertNoSecrets(error, secrets);
          return error;
        };
        const exec = await refused(
          {},
          {
            exec: { apiVersion: "client.authentication.k8s.io/v1", command: "aws" },
            token: env.KUBE_ADMIN_TOKEN,
          },
          "0A000",
          /user "someone" authenticates through an exec plugin, which the worker cannot run yet/,
        );
        assert.match(exec.hint!, /token, tokenFile or client certificate/);
        await refused(
          {},
          { "auth-provider": { name: "gcp", config: { "access-token": env.KUBE_ADMIN_TOKEN } } },
          "0A000",
          /the auth-provider "gcp"/,
        );
        await refused(
          { "insecure-skip-tls-verify": true },
          { token: env.KUBE_ADMIN_TOKEN },
          "0A000",
          /turns TLS verification off/,
        );
        await refused(
          { "insecure-skip-tls-verify": "yes" },
          {},
          "0A000",
          /turns TLS verification off/,
        );
        await refused(
          {},
          { username: "admin", password: env.KUBE_ADMIN_TOKEN },
          "0A000",
          /basic authentication/,
        );
        await refused(
          {},
          { token: env.KUBE_ADMIN_TOKEN, as: "system:admin" },
          "0A000",
          /impersonates/,
        );
        await refused(
          { server: "http://127.0.0.1:8080" },
          {},
          "22023",
          /must be https:\/\/host\[:port\], not "http:/,
        );
        const userinfo = await refused(
          { server: `https://admin:${env.KUBE_ADMIN_TOKEN}@h` },
          {},
          "22023",
          /must be https/,
        );
        assert.doesNotMatch(userinfo.message, /@/);
        await refused(
          {},
          { "client-certificate-data": base64(clientCert) },
          "22023",
          /a client certificate without its key/,
        );
        await refused(
          {},
          { "client-key-data": "not base64!" },
          "22023",
          /client-key-data of user "someone" is not base64-encoded PEM/,
        );

        // The same in a YAML file; nothing was set by the failed loads.
        const file = await write(
          "exec.yaml",
          `clusters:
- name: c
  cluster: {server: ${env.KUBE_SERVER}}
users:
- name: u
  user:
    exec:
      command: kubelogin
      args: [get-token, --token, ${env.KUBE_ADMIN_TOKEN}]
contexts:
- {name: x, context: {cluster: c, user: u}}
current-context: x
`,
        );
        assertNoSecrets(
          await sqlError(db`select omni_kube.load_kubeconfig(${file}::text)`, "0A000"),
          secrets,
        );
        assert.equal((await settings(db)).server, "");
      },
    );

    await t.step(
      "a missing context, cluster or user is named, with the names available",
      async () => {
        const file = await write(
          "multi.yaml",
          `current-context: gone
contexts:
- name: alpha
  context: {cluster: one, user: admin}
- name: beta
  context: {cluster: missing, user: admin}
- name: gamma
  context: {cluster: one, user: nobody}
clusters:
- name: one
  cluster: {server: ${env.KUBE_SERVER}}
users:
- name: admin
  user: {token: ${env.KUBE_ADMIN_TOKEN}}
`,
        );
        const db = session();
        const noCurrent = await sqlError(
          db`select omni_kube.load_kubeconfig(${file}::text)`,
          "42704",
          /^omni_kube: the kubeconfig has no context named "gone"$/,
        );
        assert.equal(noCurrent.detail, 'Its contexts: "alpha", "beta", "gamma".');
        assertNoSecrets(noCurrent, secrets);
        const noCluster = await sqlError(
          db`select omni_kube.load_kubeconfig(${file}::text, 'beta')`,
          "42704",
          /no cluster named "missing"/,
        );
        assert.equal(noCluster.detail, 'Its clusters: "one".');
        const noUser = await sqlError(
          db`select omni_kube.load_kubeconfig(${file}::text, context => 'gamma')`,
          "42704",
          /no user named "nobody"/,
        );
        assert.equal(noUser.detail, 'Its users: "admin".');
        assertNoSecrets(noUser, secrets);
        const [{ used }] =
          await db`select omni_kube.load_kubeconfig(${file}::text, 'alpha') as used`;
        assert.equal(used, "alpha");

        await sqlError(
          db`select omni_kube.load_kubeconfig(${join(dir, "absent")}::text)`,
          "58P01",
          /does not exist/,
        );
        // Content passed where a file name goes is refused without being quoted.
        const content = await sqlError(
          db`select omni_kube.load_kubeconfig(${
            JSON.stringify({ token: env.KUBE_ADMIN_TOKEN })
          }::text)`,
          "22023",
          /takes the name of a file/,
        );
        assertNoSecrets(content, secrets);
      },
    );

    await t.step(
      "files the server's OS user cannot read, directories and missing files: named, and what for",
      async () => {
        const db = session();
        const load = (file: string) => db`select omni_kube.load_kubeconfig(${file}::text)`;
        const config = kubeconfig(
          { server: env.KUBE_SERVER, "certificate-authority": "private/ca.crt" },
          { admin: { token: env.KUBE_ADMIN_TOKEN } },
          "admin",
        );
        const kubeconfigFile = await serverCannotRead("private/config", JSON.stringify(config));
        const readable = await write("refers-to-private.json", JSON.stringify(config));
        const caFile = await serverCannotRead("private/ca.crt", caCert);
        await serverCannotRead("private/token", env.KUBE_LIMITED_TOKEN);

        // A superuser, refused by the OS: not the message about database privileges.
        for (
          const [file, path, what] of [
            [kubeconfigFile, kubeconfigFile, "the kubeconfig"],
            [readable, caFile, 'certificate-authority of cluster "testbed"'],
          ]
        ) {
          const error = await sqlError(load(file), "42501");
          assert.equal(error.message, osDenied(path, what));
          assert.match(error.detail!, /Permission denied/);
          assert.match(error.hint!, /no database privilege \(not even superuser\)/);
          if (serverUser) assert.match(error.hint!, new RegExp(`Give "${serverUser}" read access`));
          assert.match(error.hint!, /jsonb or json .*certificate-authority-data/);
          assertNoSecrets(error, [...secrets, caCert.split("\n")[1]]);
        }
        const tokenConfig = kubeconfig(
          { server: env.KUBE_SERVER, "certificate-authority": "ca.crt" },
          { limited: { tokenFile: "private/token" } },
          "limited",
        );
        const tokenError = await sqlError(
          load(await write("token-config.json", JSON.stringify(tokenConfig))),
          "42501",
        );
        assert.equal(
          tokenError.message,
          osDenied(join(dir, "private/token"), 'tokenFile of user "limited"'),
        );
        assertNoSecrets(tokenError, secrets);

        // A directory, as the kubeconfig or as a file it names.
        const asFile = await sqlError(load(dir), "42809");
        assert.equal(
          asFile.message,
          `omni_kube: "${dir}" (the kubeconfig) is a directory, not a file`,
        );
        const directoryCa = kubeconfig(
          { server: env.KUBE_SERVER, "certificate-authority": "certs" },
          { admin: { token: env.KUBE_ADMIN_TOKEN } },
          "admin",
        );
        const directoryError = await sqlError(
          load(await write("directory-ca.json", JSON.stringify(directoryCa))),
          "42809",
        );
        assert.equal(
          directoryError.message,
          `omni_kube: "${join(dir, "certs")}" (certificate-authority of cluster "testbed") ` +
            "is a directory, not a file",
        );
        assertNoSecrets(directoryError, secrets);

        // A file named in the kubeconfig that is not there.
        const missing = kubeconfig(
          { server: env.KUBE_SERVER, "certificate-authority": "ca.crt" },
          {
            "admin-cert": {
              "client-certificate": "certs/missing.crt",
              "client-key": "certs/admin.key",
            },
          },
          "admin-cert",
        );
        const missingError = await sqlError(
          load(await write("missing-cert.json", JSON.stringify(missing))),
          "58P01",
        );
        assert.equal(
          missingError.message,
          `omni_kube: "${join(dir, "certs/missing.crt")}" (client-certificate of user ` +
            '"admin-cert") does not exist',
        );
        assert.equal((await settings(db)).server, "");
      },
    );

    await t.step(
      "non-superusers: pg_read_server_files reads files; without it, jsonb",
      async () => {
        const reader = uniqueName("reader").replaceAll("-", "_");
        const plain = uniqueName("plain").replaceAll("-", "_");
        await sql`create role ${sql(reader)} login in role omni_kube, pg_read_server_files`;
        await sql`create role ${sql(plain)} login in role omni_kube`;
        try {
          const file = join(dir, "config");
          const asReader = session(reader);
          await asReader`select omni_kube.load_kubeconfig(${file}::text)`;
          // (Read with COPY, a file's final line break is not kept.)
          assert.equal((await settings(asReader)).clientcert.trimEnd(), clientCert.trimEnd());
          assert.equal(await namespaceKind(asReader), "Namespace");
          // Members read with COPY into a temporary table, which read-only transactions refuse.
          await asReader`begin read only`;
          try {
            const readOnly = await sqlError(
              asReader`select omni_kube.load_kubeconfig(${file}::text)`,
              "25006",
              /in a read-only transaction/,
            );
            assert.match(readOnly.hint!, /pg_read_file/);
          } finally {
            await asReader`rollback`;
          }

          const asPlain = session(plain);
          const denied = await sqlError(
            asPlain`select omni_kube.load_kubeconfig(${file}::text)`,
            "42501",
            /permission denied to read ".*" \(the kubeconfig\)/,
          );
          assert.match(denied.hint!, /superuser or membership in pg_read_server_files/);
          assert.match(denied.hint!, /jsonb or json/);
          // Without the privilege, the privilege is what is missing, whatever the OS would say.
          const privateFile = join(dir, "private/config");
          const deniedPrivate = await sqlError(
            asPlain`select omni_kube.load_kubeconfig(${privateFile}::text)`,
            "42501",
          );
          assert.equal(
            deniedPrivate.message,
            `omni_kube: permission denied to read "${privateFile}" (the kubeconfig)`,
          );
          assert.match(deniedPrivate.hint!, /superuser or membership in pg_read_server_files/);
          // With it (reading with COPY), the OS refusing the server's user is said as such.
          const osRefused = await sqlError(
            asReader`select omni_kube.load_kubeconfig(${privateFile}::text)`,
            "42501",
          );
          assert.equal(osRefused.message, osDenied(privateFile, "the kubeconfig"));
          // Not allowed pg_stat_file, it cannot tell a directory from other things that are not files.
          await sqlError(
            asReader`select omni_kube.load_kubeconfig(${dir}::text)`,
            "42809",
            /\(the kubeconfig\) is not a file$/,
          );
          const config = kubeconfig(
            { server: env.KUBE_SERVER, "certificate-authority-data": base64(caCert) },
            { admin: { token: env.KUBE_ADMIN_TOKEN } },
            "admin",
          );
          await asPlain`select omni_kube.load_kubeconfig(${JSON.stringify(config)}::text::jsonb)`;
          assert.equal(await namespaceKind(asPlain), "Namespace");
          // A file named inside a jsonb kubeconfig needs the same right.
          const withFile = kubeconfig(
            { server: env.KUBE_SERVER, "certificate-authority": join(dir, "ca.crt") },
            { admin: { token: env.KUBE_ADMIN_TOKEN } },
            "admin",
          );
          await sqlError(
            asPlain`select omni_kube.load_kubeconfig(${JSON.stringify(withFile)}::text::jsonb)`,
            "42501",
            /certificate-authority of cluster "testbed"/,
          );
          // A role outside omni_kube may not call it at all.
          const outsider = uniqueName("outsider").replaceAll("-", "_");
          await sql`create role ${sql(outsider)} login`;
          try {
            await sqlError(
              session(outsider)`select omni_kube.load_kubeconfig(${
                JSON.stringify(config)
              }::text::jsonb)`,
              "42501",
            );
          } finally {
            for (const s of sessions.splice(0)) await s.end();
            await sql`drop role ${sql(outsider)}`;
          }
        } finally {
          for (const s of sessions.splice(0)) await s.end();
          await sql`drop role ${sql(reader)}`;
          await sql`drop role ${sql(plain)}`;
        }
      },
    );
  } finally {
    for (const s of sessions) await s.end();
    await Deno.remove(dir, { recursive: true });
  }
});
