import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultCluster, kubeconfigCluster, podServiceAccount } from "../lib/credentials.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-credentials-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const b64 = (text: string) => btoa(text);

Deno.test("kubeconfigCluster: YAML with embedded data, current context", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "config");
    await Deno.writeTextFile(
      file,
      `apiVersion: v1
kind: Config
current-context: prod
contexts:
  - name: dev
    context: { cluster: dev, user: dev }
  - name: prod
    context: { cluster: prod, user: admin }
clusters:
  - name: dev
    cluster: { server: "https://dev.example:6443" }
  - name: prod
    cluster:
      server: https://prod.example:6443/
      certificate-authority-data: ${b64("CA PEM")}
users:
  - name: dev
    user: { token: dev-token }
  - name: admin
    user:
      client-certificate-data: ${b64("CERT PEM")}
      client-key-data: ${b64("KEY PEM")}
`,
    );
    const { target, source } = await kubeconfigCluster(file);
    assert.deepEqual(target, {
      server: "https://prod.example:6443",
      caCert: "CA PEM",
      token: undefined,
      clientCert: { certificate: "CERT PEM", privateKey: "KEY PEM" },
    });
    assert.match(source, /context prod$/);
    assert.equal((await kubeconfigCluster(file, "dev")).target.token, "dev-token");
  });
});

Deno.test("kubeconfigCluster: JSON with files relative to the kubeconfig, and tokenFile", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "certs"));
    await Deno.writeTextFile(join(dir, "certs", "ca.crt"), "CA FROM FILE");
    await Deno.writeTextFile(join(dir, "token"), "file-token\n");
    const file = join(dir, "config.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        "current-context": "c",
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        clusters: [{
          name: "k",
          cluster: { server: "https://k.example", "certificate-authority": "certs/ca.crt" },
        }],
        users: [{ name: "u", user: { tokenFile: "token" } }],
      }),
    );
    const { target } = await kubeconfigCluster(file);
    assert.equal(target.caCert, "CA FROM FILE");
    assert.equal(target.token, "file-token");
  });
});

Deno.test("kubeconfigCluster: clear errors for what the worker cannot use", async () => {
  await withDir(async (dir) => {
    const write = async (user: unknown, extra: Record<string, unknown> = {}) => {
      const file = join(dir, `config-${crypto.randomUUID()}`);
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          "current-context": "c",
          contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
          clusters: [{ name: "k", cluster: { server: "https://k.example" } }],
          users: [{ name: "u", user }],
          ...extra,
        }),
      );
      return file;
    };
    await assert.rejects(
      kubeconfigCluster(await write({ exec: { command: "aws" } })),
      /authenticates through exec, which the worker does not run/,
    );
    await assert.rejects(
      kubeconfigCluster(await write({ "auth-provider": { name: "gcp" } })),
      /through auth-provider/,
    );
    await assert.rejects(
      kubeconfigCluster(await write({ "client-certificate-data": b64("C") })),
      /client certificate without its key/,
    );
    await assert.rejects(
      kubeconfigCluster(await write({}, { clusters: [{ name: "k", cluster: {} }] })),
      /cluster "k" has no server/,
    );
    await assert.rejects(
      kubeconfigCluster(await write({}), "missing"),
      /no context named "missing"/,
    );
    await assert.rejects(
      kubeconfigCluster(
        await write({}, { clusters: [{ name: "k", cluster: { server: "http://k" } }] }),
      ),
      /must use https/,
    );
  });
});

Deno.test("podServiceAccount: token (trimmed) and CA from the mounted directory", async () => {
  await withDir(async (dir) => {
    assert.equal(await podServiceAccount(dir), undefined);
    await Deno.writeTextFile(join(dir, "token"), "sa-token\n");
    await Deno.writeTextFile(join(dir, "ca.crt"), "SA CA");
    const pod = await podServiceAccount(dir);
    assert.deepEqual(pod?.target, {
      server: "https://kubernetes.default.svc",
      token: "sa-token",
      caCert: "SA CA",
    });
  });
});

Deno.test("defaultCluster: the first file of KUBECONFIG, else none", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "first");
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        "current-context": "c",
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        clusters: [{ name: "k", cluster: { server: "https://first.example" } }],
        users: [{ name: "u", user: { token: "t" } }],
      }),
    );
    const noPod = join(dir, "no-service-account");
    const found = await defaultCluster({ KUBECONFIG: `${file}:${join(dir, "second")}` }, noPod);
    assert.equal(found?.target.server, "https://first.example");
    assert.equal(await defaultCluster({ HOME: dir }, noPod), undefined);
  });
});
