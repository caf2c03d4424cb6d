/**
 * `deno task test:compat [TARGET...]`: the smoke tests on the versions we claim besides the default
 * ones the full suite runs on: PostgreSQL 14 to 17 (`tests/smoke_test.ts`), and the oldest
 * Kubernetes release (`tests/smoke_test.ts` and `tests/cluster_test.ts` against Kubernetes 1.34,
 * which `testbed/build.sh` builds on first use). Each target gets a test bed of its own
 * (`OMNI_KUBE_PG=14 deno task test ...`, `KUBE_VERSION=1.34.4 deno task test ...`), one after
 * another. The runs' output goes to stderr as it comes; then one line per target on stdout, and the
 * exit status is 1 if any run failed.
 *
 * A TARGET is a PostgreSQL major (`14`) or a Kubernetes release (`1.34.4`); default: all of them.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { KUBE_BINARY_VARIABLES } from "./kube.ts";
import { EMBEDDED_MAJORS } from "./postgres.ts";

const TEST_RUNNER = fileURLToPath(new URL("./test_runner.ts", import.meta.url));
const test = (file: string) => fileURLToPath(new URL(`../tests/${file}`, import.meta.url));

/** The PostgreSQL majors CI covers with the smoke tests; the full suite runs on the default one. */
export const COMPAT_MAJORS: readonly number[] = [14, 15, 16, 17];

/** The oldest Kubernetes release we claim; the full suite runs on `testbed/build.sh`'s default. */
export const OLDEST_KUBE_VERSION = "1.34.4";

/** One run: what it is called, the environment it changes and the test files. */
export interface CompatTarget {
  label: string;
  env: Record<string, string>;
  tests: string[];
}

function postgresTarget(major: number): CompatTarget {
  return {
    label: `PostgreSQL ${major}`,
    env: { OMNI_KUBE_PG: String(major) },
    tests: [test("smoke_test.ts")],
  };
}

function kubeTarget(version: string): CompatTarget {
  return {
    label: `Kubernetes ${version}`,
    env: { KUBE_VERSION: version },
    tests: [test("smoke_test.ts"), test("cluster_test.ts")],
  };
}

/** The targets to run, from the arguments; throws naming a bad one. */
export function parseTargets(args: string[]): CompatTarget[] {
  if (args.length === 0) {
    return [...COMPAT_MAJORS.map(postgresTarget), kubeTarget(OLDEST_KUBE_VERSION)];
  }
  return args.map((arg) => {
    if (/^1\.\d+\.\d+$/.test(arg)) return kubeTarget(arg);
    const major = Number(arg);
    if (!EMBEDDED_MAJORS.includes(major)) {
      throw new Error(
        `"${arg}" is neither a PostgreSQL major the test bed has (${EMBEDDED_MAJORS.join(", ")}) ` +
          `nor a Kubernetes release such as ${OLDEST_KUBE_VERSION}; default: ` +
          `${COMPAT_MAJORS.join(" ")} ${OLDEST_KUBE_VERSION}`,
      );
    }
    return postgresTarget(major);
  });
}

/** One target's run with a fresh test bed, its output passed through to stderr. */
async function runTarget(target: CompatTarget): Promise<{ ok: boolean; summary: string }> {
  console.error(`[compat] ${target.label}: starting a test bed and ${target.tests.length} file(s)`);
  const env: Record<string, string> = { ...Deno.env.toObject(), ...target.env };
  if (target.env.KUBE_VERSION) {
    // The release must be the one build.sh builds for KUBE_VERSION, not binaries named here.
    for (const name of [...KUBE_BINARY_VARIABLES, "ETCD_VERSION"]) {
      if (env[name]) console.error(`[compat] ${name} is not used: build.sh builds the release`);
      delete env[name];
    }
  }
  if (target.env.OMNI_KUBE_PG && env.PG_BINDIR) {
    // It holds one major; each run needs its own, from the pinned npm packages.
    console.error(`[compat] PG_BINDIR=${env.PG_BINDIR} is not used: the npm packages serve`);
    delete env.PG_BINDIR;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", TEST_RUNNER, ...target.tests],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let stdout = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stderr.write(chunk);
    stdout += decoder.decode(chunk, { stream: true });
  }
  const status = await child.status;
  const summary = stdout.match(/^tests: .*$/m)?.[0] ?? `no test summary (exit ${status.code})`;
  return { ok: status.success, summary };
}

async function main(args: string[]): Promise<number> {
  let targets: CompatTarget[];
  try {
    targets = parseTargets(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  const lines: string[] = [];
  let failed = 0;
  for (const target of targets) {
    const started = performance.now();
    const { ok, summary } = await runTarget(target);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (!ok) failed++;
    lines.push(`${target.label}: ${ok ? "ok" : "FAILED"} (${summary}; ${seconds} s)`);
  }
  console.log(lines.join("\n"));
  console.log(
    failed === 0
      ? `compat: all ${targets.length} targets passed`
      : `compat: ${failed} of ${targets.length} targets failed`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
