/**
 * The deployment pieces: the Kubernetes manifests pass a server-side dry run against the test bed's
 * kube-apiserver and agree with the worker's flags; docker-compose.yml is valid for the Compose
 * specification and wires PostgreSQL, k3s and the worker together. (No container engine runs here:
 * the Compose file is checked against the specification's schema, see tests/compose.ts.)
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { DEFAULT_HTTP_PORT } from "../lib/cli.ts";
import { type ComposeService, parseCompose } from "./compose.ts";
import { testbedEnv } from "./testbed.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DEPLOY = `${ROOT}deploy`;

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, env, cwd: ROOT, stdin: "null" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${command} is not installed (.ci/run installs it; see the README)`);
    }
    throw error;
  }
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `${command} ${args.join(" ")} failed:\n${text}`);
  return text;
}

Deno.test("deploy/: kubectl apply --dry-run=server passes against a real API server", async () => {
  const env = { KUBECONFIG: testbedEnv().KUBECONFIG };
  // Namespaced objects need their namespace to exist even in a dry run.
  await run("kubectl", ["apply", "-f", `${DEPLOY}/namespace.yaml`], env);
  const text = await run("kubectl", ["apply", "--dry-run=server", "-f", DEPLOY], env);
  for (
    const object of [
      "namespace/omni-kube",
      "serviceaccount/omni-kube-worker",
      "clusterrole.rbac.authorization.k8s.io/omni-kube-worker",
      "clusterrolebinding.rbac.authorization.k8s.io/omni-kube-worker",
      "secret/omni-kube-database",
      "deployment.apps/omni-kube-worker",
    ]
  ) {
    assert.match(
      text,
      new RegExp(`^${object.replaceAll(".", "\\.")} .*\\(server dry run\\)$`, "m"),
    );
  }
});

Deno.test("deploy/worker.yaml: probes, port and variables match the worker", async () => {
  const [deployment] = parseAllDocuments(await Deno.readTextFile(`${DEPLOY}/worker.yaml`))
    .map((d) => d.toJS());
  const container = deployment.spec.template.spec.containers[0];
  const env = Object.fromEntries(
    container.env.map((e: { name: string; value?: string }) => [e.name, e.value]),
  );
  assert.equal(container.ports[0].containerPort, DEFAULT_HTTP_PORT);
  assert.equal(container.readinessProbe.httpGet.path, "/readyz");
  assert.equal(container.livenessProbe.httpGet.path, "/healthz");
  assert.ok("DATABASE_URL" in env);
  assert.equal(
    container.env.find((e: { name: string }) => e.name === "DATABASE_URL").valueFrom.secretKeyRef
      .name,
    "omni-kube-database",
  );
  assert.ok(
    deployment.spec.template.spec.terminationGracePeriodSeconds >
      Number(env.OMNI_KUBE_SHUTDOWN_GRACE),
  );
});

/** A service's environment as a map, from either of Compose's two forms. */
function environment(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((line) => {
      const at = line.indexOf("=");
      return at < 0 ? [line, ""] : [line.slice(0, at), line.slice(at + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? "")]));
}

Deno.test("docker-compose.yml: valid, with PostgreSQL, k3s and the worker wired together", async () => {
  const compose = parseCompose(
    await Deno.readTextFile(`${ROOT}docker-compose.yml`),
    "docker-compose.yml",
  );
  assert.deepEqual(Object.keys(compose.services).sort(), ["k3s", "postgres", "worker"]);
  const { postgres, k3s, worker } = compose.services;
  assert.match(postgres.image ?? "", /^postgres:\d+$/);
  assert.match(k3s.image ?? "", /^rancher\/k3s:v\d+\.\d+\.\d+/);

  // The worker is built from this repository's Dockerfile.
  assert.equal(worker.build, ".");
  await Deno.stat(`${ROOT}Dockerfile`);

  // It starts once both are healthy, and each has a health check to be healthy by.
  assert.deepEqual(worker.depends_on, {
    postgres: { condition: "service_healthy" },
    k3s: { condition: "service_healthy" },
  });
  assert.ok(postgres.healthcheck?.test, "postgres has a healthcheck");
  assert.ok(k3s.healthcheck?.test, "k3s has a healthcheck");

  // It reaches PostgreSQL by service name, and k3s through the kubeconfig k3s writes to the
  // directory both mount; sharing k3s's network, its port is published by k3s.
  const workerEnv = environment(worker);
  assert.equal(new URL(workerEnv.DATABASE_URL).hostname, "postgres");
  assert.equal(worker.network_mode, "service:k3s");
  const kubeconfigOut = environment(k3s).K3S_KUBECONFIG_OUTPUT;
  const mountOf = (service: ComposeService, target: string) =>
    service.volumes?.flatMap((v) => typeof v === "string" ? [v.split(":")] : [])
      .find(([, path]) => target.startsWith(`${path}/`))?.[0];
  const hostDir = mountOf(k3s, kubeconfigOut);
  assert.ok(hostDir, `k3s writes its kubeconfig (${kubeconfigOut}) to a mounted directory`);
  assert.equal(mountOf(worker, workerEnv.KUBECONFIG), hostDir);
  assert.ok(
    k3s.ports?.some((p) => typeof p === "string" && p.endsWith(`:${DEFAULT_HTTP_PORT}`)),
    `k3s publishes the worker's port ${DEFAULT_HTTP_PORT}`,
  );
});

Deno.test("Compose validation rejects a broken file, saying what is wrong and where", () => {
  const valid = `services:
  db:
    image: postgres:17
    volumes: [data:/var/lib/postgresql/data]
  app:
    build: .
    depends_on: [db]
volumes:
  data:
`;
  assert.deepEqual(Object.keys(parseCompose(valid).services), ["db", "app"]);

  const rejects = (text: string, ...expected: string[]) =>
    assert.throws(() => parseCompose(text, "broken.yml"), (error: Error) => {
      assert.match(error.message, /^broken\.yml is not a valid Compose file:\n/);
      for (const line of expected) {
        assert.ok(error.message.includes(`\n  - ${line}`), error.message);
      }
      return true;
    });
  rejects(`${valid}bogus: 1\n`, '(top level): unknown key "bogus"');
  rejects(valid.replace("image: postgres:17", "image: 17"), "services.db.image: must be string");
  rejects(
    valid.replace("build: .", "build: .\n    restart_policy: always"),
    'services.app: unknown key "restart_policy"',
  );
  rejects(
    valid.replace("depends_on: [db]", "depends_on: [cache]"),
    'services.app.depends_on: no service named "cache"',
  );
  rejects(
    valid.replace("volumes:\n  data:\n", ""),
    'services.db.volumes: named volume "data" is not declared under top-level volumes',
  );
  assert.throws(
    () => parseCompose("services: [", "broken.yml"),
    (error: Error) => error.message.startsWith("broken.yml is not valid YAML: "),
  );
});
