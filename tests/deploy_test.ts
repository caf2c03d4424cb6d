/**
 * The deployment pieces: the Kubernetes manifests pass a server-side dry run against the test bed's
 * kube-apiserver and agree with the worker's flags; docker-compose.yml is valid for Compose.
 * (No container engine runs here, so Compose only validates the file.)
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { DEFAULT_HTTP_PORT } from "../lib/cli.ts";
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

Deno.test("docker-compose.yml: valid, with PostgreSQL, k3s and the worker", async () => {
  const text = await run("docker-compose", ["-f", "docker-compose.yml", "config"]);
  for (const service of ["postgres", "k3s", "worker"]) {
    assert.match(text, new RegExp(`^  ${service}:$`, "m"));
  }
});
