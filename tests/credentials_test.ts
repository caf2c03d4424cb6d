import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultCluster, kubeconfigCluster, podServiceAccount } from "../lib/credentials.ts";
import { CA, CERT, KEY, kubeconfig } from "./kube/kubeconfig_fixtures.ts";

/** Runs `body` with a fresh temporary directory, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube_credentials_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeJson(path: string, value: unknown): Promise<string> {
  await Deno.writeTextFile(path, JSON.stringify(value));
  return path;
}

/** A service-account directory that does not exist, so that defaultCluster looks further. */
const noPod = (dir: string) => join(dir, "no-service-account");

Deno.test("kubeconfigCluster: YAML with embedded base64 *-data fields", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "config");
    await Deno.writeTextFile(
      file,
      `apiVersion: v1
kind: Config
current-context: main
clusters:
  - name: c
    cluster:
      server: https://127.0.0.1:6443/
      certificate-authority-data: ${btoa(CA)}
users:
  - name: u
    user:
      client-certificate-data: ${btoa(CERT)}
      client-key-data: ${btoa(KEY)}
contexts:
  - name: main
    context: { cluster: c, user: u }
`,
    );
    assert.deepEqual(await kubeconfigCluster(file), {
      target: {
        server: "https://127.0.0.1:6443",
        caCert: CA,
        token: undefined,
        clientCert: { certificate: CERT, privateKey: KEY },
      },
      source: `kubeconfig ${file}, context main`,
    });
  });
});

Deno.test("kubeconfigCluster: JSON with file paths relative to the kubeconfig's directory", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "kube", "pki"), { recursive: true });
    await Deno.writeTextFile(join(dir, "kube", "pki", "ca.crt"), CA);
    await Deno.writeTextFile(join(dir, "kube", "pki", "client.crt"), CERT);
    await Deno.writeTextFile(join(dir, "kube", "pki", "client.key"), KEY);
    const file = await writeJson(
      join(dir, "kube", "config.json"),
      kubeconfig(
        { server: "https://kube.example:6443", "certificate-authority": "pki/ca.crt" },
        { "client-certificate": "pki/client.crt", "client-key": "pki/client.key" },
      ),
    );
    const { target } = await kubeconfigCluster(file);
    assert.equal(target.server, "https://kube.example:6443");
    assert.equal(target.caCert, CA);
    assert.deepEqual(target.clientCert, { certificate: CERT, privateKey: KEY });
  });
});

Deno.test("kubeconfigCluster: absolute file paths are read as they are", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "ca.crt"), CA);
    await Deno.mkdir(join(dir, "elsewhere"));
    const file = await writeJson(
      join(dir, "elsewhere", "config"),
      kubeconfig(
        { server: "https://kube.example", "certificate-authority": join(dir, "ca.crt") },
        { token: "t" },
      ),
    );
    assert.equal((await kubeconfigCluster(file)).target.caCert, CA);
  });
});

Deno.test("kubeconfigCluster: tokenFile is read relative to the kubeconfig and trimmed", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "token"), "  secret-token\n");
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://kube.example" }, { tokenFile: "token" }),
    );
    const { target } = await kubeconfigCluster(file);
    assert.equal(target.token, "secret-token");
    assert.equal(target.clientCert, undefined);
    assert.equal(target.caCert, undefined);
  });
});

Deno.test("kubeconfigCluster: an explicit context overrides current-context", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(join(dir, "config"), {
      "current-context": "first",
      clusters: [
        { name: "one", cluster: { server: "https://one.example" } },
        { name: "two", cluster: { server: "https://two.example" } },
      ],
      users: [{ name: "a", user: { token: "token-a" } }, { name: "b", user: { token: "token-b" } }],
      contexts: [
        { name: "first", context: { cluster: "one", user: "a" } },
        { name: "second", context: { cluster: "two", user: "b" } },
      ],
    });
    const current = await kubeconfigCluster(file);
    assert.equal(current.target.server, "https://one.example");
    assert.equal(current.target.token, "token-a");
    assert.equal(current.source, `kubeconfig ${file}, context first`);

    const chosen = await kubeconfigCluster(file, "second");
    assert.equal(chosen.target.server, "https://two.example");
    assert.equal(chosen.target.token, "token-b");
    assert.equal(chosen.source, `kubeconfig ${file}, context second`);
  });
});

Deno.test("kubeconfigCluster: a client certificate without its key is a clear error", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://kube.example" }, { "client-certificate-data": btoa(CERT) }),
    );
    await assert.rejects(
      kubeconfigCluster(file),
      /user "u" has a client certificate without its key/,
    );
  });
});

Deno.test("kubeconfigCluster: exec and auth-provider users are refused by name", async () => {
  await withTempDir(async (dir) => {
    const exec = await writeJson(
      join(dir, "exec"),
      kubeconfig({ server: "https://kube.example" }, {
        exec: { apiVersion: "client.authentication.k8s.io/v1", command: "aws" },
      }),
    );
    await assert.rejects(
      kubeconfigCluster(exec),
      /user "u" authenticates through exec, which the worker does not run/,
    );

    const provider = await writeJson(
      join(dir, "auth-provider"),
      kubeconfig({ server: "https://kube.example" }, { "auth-provider": { name: "oidc" } }),
    );
    await assert.rejects(
      kubeconfigCluster(provider),
      /user "u" authenticates through auth-provider, which the worker does not run/,
    );
  });
});

Deno.test("kubeconfigCluster: a cluster without server is an error naming it", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(join(dir, "config"), kubeconfig({}, { token: "t" }));
    await assert.rejects(kubeconfigCluster(file), /cluster "c" has no server/);
  });
});

Deno.test("kubeconfigCluster: a server without https is refused", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "http://kube.example" }, { token: "t" }),
    );
    await assert.rejects(kubeconfigCluster(file), /must use https/);
  });
});

Deno.test("kubeconfigCluster: a missing context is an error naming it", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://kube.example" }, { token: "t" }),
    );
    await assert.rejects(kubeconfigCluster(file, "absent"), /no context named "absent"/);

    const { "current-context": _, ...noCurrent } = kubeconfig({ server: "https://x.example" }, {});
    const bare = await writeJson(join(dir, "no-current"), noCurrent);
    await assert.rejects(kubeconfigCluster(bare), /no current-context/);
  });
});

Deno.test("podServiceAccount: reads the trimmed token and the CA from the directory", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "token"), "pod-token\n");
    await Deno.writeTextFile(join(dir, "ca.crt"), CA);
    assert.deepEqual(await podServiceAccount(dir), {
      target: { server: "https://kubernetes.default.svc", token: "pod-token", caCert: CA },
      source: `service account (${dir})`,
    });
  });
});

Deno.test("podServiceAccount: undefined when the directory has no token", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "ca.crt"), CA);
    assert.equal(await podServiceAccount(dir), undefined);
    assert.equal(await podServiceAccount(join(dir, "absent")), undefined);
  });
});

Deno.test("defaultCluster: uses the first file of a colon-separated KUBECONFIG", async () => {
  await withTempDir(async (dir) => {
    const first = await writeJson(
      join(dir, "first"),
      kubeconfig({ server: "https://first.example" }, { token: "t1" }),
    );
    const second = await writeJson(
      join(dir, "second"),
      kubeconfig({ server: "https://second.example" }, { token: "t2" }),
    );
    const found = await defaultCluster({ KUBECONFIG: `${first}:${second}`, HOME: dir }, noPod(dir));
    assert.equal(found?.target.server, "https://first.example");
    assert.equal(found?.source, `kubeconfig ${first}, context main`);
  });
});

Deno.test("defaultCluster: falls back to $HOME/.kube/config", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, ".kube"));
    await writeJson(
      join(dir, ".kube", "config"),
      kubeconfig({ server: "https://home.example" }, { token: "t" }),
    );
    const found = await defaultCluster({ HOME: dir }, noPod(dir));
    assert.equal(found?.target.server, "https://home.example");
  });
});

Deno.test("defaultCluster: undefined when no kubeconfig file exists", async () => {
  await withTempDir(async (dir) => {
    const absent = join(dir, "absent");
    assert.equal(await defaultCluster({ KUBECONFIG: absent, HOME: dir }, noPod(dir)), undefined);
    assert.equal(await defaultCluster({ HOME: dir }, noPod(dir)), undefined);
    assert.equal(await defaultCluster({}, noPod(dir)), undefined);
  });
});

Deno.test("defaultCluster: the pod service account comes before KUBECONFIG", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "token"), "pod-token");
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://kube.example" }, { token: "t" }),
    );
    const found = await defaultCluster({ KUBECONFIG: file }, dir);
    assert.equal(found?.target.server, "https://kubernetes.default.svc");
    assert.equal(found?.target.token, "pod-token");
  });
});

Deno.test("defaultCluster: with the default service-account dir (absent here) reads KUBECONFIG", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://kube.example" }, { token: "t" }),
    );
    assert.equal(
      (await defaultCluster({ KUBECONFIG: file }))?.target.server,
      "https://kube.example",
    );
  });
});

Deno.test("kubeconfigCluster: an empty user entry is anonymous, an empty file a clear error", async () => {
  await withTempDir(async (dir) => {
    const config = kubeconfig({ server: "https://k.example" }, {});
    (config.users as { user: unknown }[])[0].user = null;
    const { target } = await kubeconfigCluster(await writeJson(join(dir, "null-user"), config));
    assert.equal(target.token, undefined);
    assert.equal(target.clientCert, undefined);
    const empty = join(dir, "empty");
    await Deno.writeTextFile(empty, "");
    await assert.rejects(kubeconfigCluster(empty, "x"), /no context named "x"/);
  });
});

Deno.test("kubeconfigCluster: a key without its certificate says so", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://k.example" }, { "client-key-data": btoa(KEY) }),
    );
    await assert.rejects(kubeconfigCluster(file), /client key without its certificate/);
  });
});

Deno.test("defaultCluster: skips KUBECONFIG files that do not exist", async () => {
  await withTempDir(async (dir) => {
    const real = await writeJson(
      join(dir, "real"),
      kubeconfig({ server: "https://real.example" }, { token: "t" }),
    );
    const found = await defaultCluster(
      { KUBECONFIG: `${join(dir, "missing")}:${real}` },
      noPod(dir),
    );
    assert.equal(found?.target.server, "https://real.example");
  });
});

Deno.test("kubeconfigCluster: insecure-skip-tls-verify is refused, not obeyed", async () => {
  await withTempDir(async (dir) => {
    const file = await writeJson(
      join(dir, "config"),
      kubeconfig({ server: "https://k.example", "insecure-skip-tls-verify": true }, { token: "t" }),
    );
    await assert.rejects(
      kubeconfigCluster(file),
      /turns TLS verification off, which the worker never does/,
    );
  });
});

Deno.test("defaultCluster: merges the files of KUBECONFIG as kubectl does", async () => {
  await withTempDir(async (dir) => {
    // The first file only chooses the context; the second defines it, and its token file is
    // read relative to the second file.
    const first = await writeJson(join(dir, "first"), { "current-context": "main" });
    await Deno.mkdir(join(dir, "second"));
    await Deno.writeTextFile(join(dir, "second", "token"), "second-token\n");
    const second = await writeJson(
      join(dir, "second", "config"),
      {
        ...kubeconfig({ server: "https://second.example" }, { tokenFile: "token" }),
        "current-context": "other",
      },
    );
    const found = await defaultCluster({ KUBECONFIG: `${first}::${second}` }, noPod(dir));
    assert.equal(found?.target.server, "https://second.example");
    assert.equal(found?.target.token, "second-token");
    assert.equal(found?.source, `kubeconfig ${second}, context main`);
  });
});
