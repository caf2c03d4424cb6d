/**
 * `deno task test [deno test args]`: starts the test bed once, runs `deno test` with its
 * environment (so every test file shares one PostgreSQL and one kube-apiserver), stops the test bed
 * and exits with the tests' status. If the test bed cannot start, the tests still run and every one
 * that needs it fails with the reason (they never skip).
 *
 * @module
 */
import { join } from "node:path";
import { startTestbed, type Testbed } from "./mod.ts";

/** Environment variable carrying the reason the test bed failed, for tests/testbed.ts to report. */
export const TESTBED_ERROR_ENV = "OMNI_KUBE_TESTBED_ERROR";

function log(message: string) {
  console.error(`[testbed] ${message}`);
}

async function summarise(junitFile: string): Promise<string | undefined> {
  try {
    const xml = await Deno.readTextFile(junitFile);
    const root = xml.match(/<testsuites\b[^>]*>/)?.[0] ?? "";
    const attribute = (name: string) =>
      Number(root.match(new RegExp(`${name}="(\\d+)"`))?.[1] ?? 0);
    const skipped = (xml.match(/<skipped\b/g) ?? []).length;
    const failed = attribute("failures") + attribute("errors");
    const passed = attribute("tests") - failed - skipped;
    return `tests: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : "");
  } catch {
    return undefined;
  }
}

async function main(args: string[]): Promise<number> {
  const started = performance.now();
  let testbed: Testbed | undefined;
  const env: Record<string, string> = {};
  try {
    log(
      "starting PostgreSQL and Kubernetes (etcd, kube-apiserver, controllers, scheduler, KWOK; " +
        "cluster b's kube-apiserver)",
    );
    testbed = await startTestbed();
    Object.assign(env, testbed.env, {
      // For tests that read PostgreSQL's files (the WAL, for credentials that must not be there).
      OMNI_KUBE_TESTBED_PGDATA: testbed.postgres.dataDir,
      // For tests that compact etcd's history, as the API server does every five minutes.
      OMNI_KUBE_TESTBED_ETCD_URL: testbed.kube.etcdUrl,
      ...(testbed.kube.version ? { OMNI_KUBE_TESTBED_KUBE_VERSION: testbed.kube.version } : {}),
    });
    log(
      `ready in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
        `PostgreSQL ${testbed.postgres.major} ${testbed.env.DATABASE_URL}, ` +
        `Kubernetes ${testbed.kube.version ?? "(own binaries)"} ${testbed.env.KUBE_SERVER}, ` +
        `cluster b ${testbed.env.KUBE_B_SERVER}`,
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    log(`could not start; tests that need it will fail:\n${reason}`);
    env[TESTBED_ERROR_ENV] = reason;
  }

  const reportDir = await Deno.makeTempDir({ prefix: "omni_kube-test-report-" });
  const junitFile = join(reportDir, "junit.xml");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", `--junit-path=${junitFile}`, ...args],
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();

  const forward = (signal: Deno.Signal) => () => {
    log(`${signal}: stopping tests and test bed`);
    try {
      child.kill(signal);
    } catch { /* already exited */ }
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const status = await child.status;
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);

  await testbed?.stop();
  const summary = await summarise(junitFile);
  await Deno.remove(reportDir, { recursive: true }).catch(() => {});
  if (summary) console.log(summary);
  return status.code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
