/**
 * `deno task test:compat [MAJOR...]`: runs the smoke tests (tests/smoke_test.ts) once per
 * PostgreSQL major, 14 to 17 unless others are named, each with a test bed of its own
 * (`OMNI_KUBE_PG=<major> deno task test tests/smoke_test.ts`), one after another. The runs' output
 * goes to stderr as it comes; then one line per major on stdout, and the exit status is 1 if any
 * run failed.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { EMBEDDED_MAJORS } from "./postgres.ts";

const TEST_RUNNER = fileURLToPath(new URL("./test_runner.ts", import.meta.url));
const SMOKE_TESTS = fileURLToPath(new URL("../tests/smoke_test.ts", import.meta.url));
/** The majors CI covers with the smoke tests; the full suite runs on the default one. */
export const COMPAT_MAJORS: readonly number[] = [14, 15, 16, 17];

/** The majors to run, from the arguments; throws naming a bad one. */
export function parseMajors(args: string[]): number[] {
  if (args.length === 0) return [...COMPAT_MAJORS];
  return args.map((arg) => {
    const major = Number(arg);
    if (!EMBEDDED_MAJORS.includes(major)) {
      throw new Error(
        `"${arg}" is not a PostgreSQL major the test bed has: use some of ${
          EMBEDDED_MAJORS.join(", ")
        } (default ${COMPAT_MAJORS.join(" ")})`,
      );
    }
    return major;
  });
}

/** One major's run: the smoke tests with a fresh test bed, output passed through to stderr. */
async function runMajor(major: number): Promise<{ ok: boolean; summary: string }> {
  console.error(`[compat] PostgreSQL ${major}: starting a test bed and the smoke tests`);
  const env: Record<string, string> = { ...Deno.env.toObject(), OMNI_KUBE_PG: String(major) };
  if (env.PG_BINDIR) {
    // It holds one major; each run needs its own, from the pinned npm packages.
    console.error(`[compat] PG_BINDIR=${env.PG_BINDIR} is not used: the npm packages serve`);
    delete env.PG_BINDIR;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", TEST_RUNNER, SMOKE_TESTS],
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
  let majors: number[];
  try {
    majors = parseMajors(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  const lines: string[] = [];
  let failed = 0;
  for (const major of majors) {
    const started = performance.now();
    const { ok, summary } = await runMajor(major);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (!ok) failed++;
    lines.push(`PostgreSQL ${major}: ${ok ? "ok" : "FAILED"} (${summary}; ${seconds} s)`);
  }
  console.log(lines.join("\n"));
  console.log(
    failed === 0
      ? `compat: all ${majors.length} majors passed`
      : `compat: ${failed} of ${majors.length} majors failed`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
