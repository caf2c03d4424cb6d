/**
 * `deno task dev` as a developer runs it: real processes (dev, its own test bed and worker), no
 * fakes. A killed worker is restarted within seconds while the database and the clusters stay;
 * with `--keep` they survive a stop and a start; the kubeconfigs it writes load in its database.
 * Then its flags and restart backoff as units.
 *
 * It starts a test bed of its own beside the one `deno task test` runs, from the same binaries
 * (`testbed/build.sh`'s cache, or the `*_BIN` variables, which it inherits).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { KubeHttp, type KubeTarget } from "../lib/kube/client.ts";
import { eventually } from "./testbed.ts";
import {
  DEFAULT_ENV_FILE,
  DEFAULT_KEEP_DIR,
  describeExit,
  parseDevArgs,
  restartDelay,
  STATUS_ENV_NAME,
  UsageError,
} from "../testbed/dev.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The parts of dev's status file the test reads. */
interface DevStatus {
  pid: number;
  kept: boolean;
  worker: { pid?: number; serving: boolean; restarts: number };
  processes: { name: string; pid: number }[];
}

/** `export NAME='value'` lines (as formatEnvFile writes them) back into a map. */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = line.match(/^export ([A-Z_][A-Z0-9_]*)='(.*)'$/);
    if (match) env[match[1]] = match[2].replaceAll(`'\\''`, "'");
  }
  return env;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Cluster B of a dev environment, as its admin. */
async function clusterB(env: Record<string, string>): Promise<KubeTarget> {
  return {
    server: env.KUBE_B_SERVER,
    caCert: await Deno.readTextFile(env.KUBE_B_CA_FILE),
    token: env.KUBE_B_ADMIN_TOKEN,
  };
}

/** One `deno task dev --keep DIR --env-file FILE`, its output kept for failure messages. */
class Dev {
  readonly #child: Deno.ChildProcess;
  readonly #envFile: string;
  #output = "";
  readonly #drained: Promise<unknown>;
  #status: Deno.CommandStatus | undefined;

  constructor(keepDir: string, envFile: string) {
    this.#envFile = envFile;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["task", "dev", "--keep", keepDir, "--env-file", envFile],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.#output += text;
    };
    this.#drained = Promise.all([collect(this.#child.stdout), collect(this.#child.stderr)]);
    this.#child.status.then((status) => this.#status = status);
  }

  get output(): string {
    return this.#output;
  }

  #tail(): string {
    return `dev's output so far:\n${this.#output.split("\n").slice(-60).join("\n")}`;
  }

  /** Waits for the env file dev writes once the worker serves; fails if dev exits first. */
  async ready(timeoutMs = 240_000): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (this.#status) {
        throw new Error(
          `deno task dev exited (${describeExit(this.#status)}) before ready.\n` +
            this.#tail(),
        );
      }
      try {
        const env = parseEnvFile(await Deno.readTextFile(this.#envFile));
        if (env.DATABASE_URL && env[STATUS_ENV_NAME]) return env;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `deno task dev was not ready within ${timeoutMs / 1000} s.\n${this.#tail()}`,
        );
      }
      await sleep(250);
    }
  }

  /** Sends `signal` and waits for dev to exit; fails if it takes longer than `timeoutMs`. */
  async stop(signal: Deno.Signal = "SIGINT", timeoutMs = 90_000): Promise<Deno.CommandStatus> {
    if (!this.#status) this.#child.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`deno task dev did not stop within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
    try {
      const status = await Promise.race([this.#child.status, timeout]);
      await this.#drained;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** After a failure: stops dev, else kills it and what its status file lists. */
  async cleanUp(statusFile: string | undefined): Promise<void> {
    if (this.#status) {
      await this.#drained;
      return;
    }
    try {
      await this.stop("SIGINT", 60_000);
    } catch {
      const status: DevStatus | undefined = statusFile
        ? JSON.parse(await Deno.readTextFile(statusFile).catch(() => "null")) ?? undefined
        : undefined;
      for (const pid of [status?.worker.pid, ...(status?.processes ?? []).map((p) => p.pid)]) {
        if (pid) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      this.#child.kill("SIGKILL");
      await this.#child.status;
      await this.#drained;
    }
  }
}

async function readStatus(file: string): Promise<DevStatus> {
  return JSON.parse(await Deno.readTextFile(file));
}

Deno.test("deno task dev: a killed worker is restarted; --keep keeps the state across runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-dev-test-" });
  // As root the test bed runs PostgreSQL as an unprivileged user, who must reach the state below.
  await Deno.chmod(dir, 0o711);
  const keepDir = join(dir, "state");
  const envFile = join(dir, "env");
  let statusFile: string | undefined;
  let dev = new Dev(keepDir, envFile);
  try {
    const env = await dev.ready();
    statusFile = env[STATUS_ENV_NAME];
    assert.ok(statusFile.startsWith(keepDir), `${statusFile} is in ${keepDir}`);
    const sql = postgres(env.DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { statement_timeout: 5_000 },
    });
    try {
      await sql`create table dev_test_kept (note text)`;
      await sql`insert into dev_test_kept values ('written before the kill')`;
      await sql`select omni_kube.api('/api/v1/namespaces/default/configmaps', method => 'POST',
                  body => '{"metadata": {"name": "dev-test-kept"}}')`;
      using http = new KubeHttp();
      const createdInB = await http.fetch(await clusterB(env), {
        method: "POST",
        path: "/api/v1/namespaces/default/configmaps",
        body: JSON.stringify({ metadata: { name: "dev-test-kept-b" } }),
      });
      assert.equal(createdInB.status, 201, await createdInB.clone().text());
      await createdInB.body?.cancel();

      // As a new user would, in a session of their own: the database server (another OS user,
      // when dev runs as root) reads the kubeconfig and its CA file.
      const loader = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await loader`select omni_kube.load_kubeconfig(${env.KUBECONFIG}::text)`;
        const [{ kind }] = await loader`
          select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
        assert.equal(kind, "Namespace");
      } finally {
        await loader.end();
      }

      const before = await readStatus(statusFile);
      assert.ok(before.kept);
      assert.ok(before.worker.serving && before.worker.pid, JSON.stringify(before));
      // The worker serves both clusters: its kubeconfig has a context for each, `a` current.
      const environ = await Deno.readTextFile(`/proc/${before.worker.pid}/environ`);
      assert.ok(
        environ.split("\0").includes(`KUBECONFIG=${env.KUBE_FLEET_KUBECONFIG}`),
        "the worker's KUBECONFIG is the fleet kubeconfig",
      );
      Deno.kill(before.worker.pid!, "SIGKILL");
      const killed = Date.now();

      const version = await eventually("a worker serves /version again", async () => {
        const [row] = await sql`select omni_kube.api('/version') as version`;
        return row.version as { gitVersion: string };
      }, 10_000);
      // dev runs the release that testbed/build.sh builds by default, as the test runner's did.
      assert.equal(version.gitVersion, `v${Deno.env.get("OMNI_KUBE_TESTBED_KUBE_VERSION")}`);
      const served = (Date.now() - killed) / 1000;
      assert.ok(served < 10, `served again after ${served} s`);
      let after = await readStatus(statusFile);
      for (let i = 0; i < 20 && !(after.worker.serving && after.worker.restarts === 1); i++) {
        await sleep(100);
        after = await readStatus(statusFile);
      }
      assert.notEqual(after.worker.pid, before.worker.pid);
      assert.deepEqual([after.worker.serving, after.worker.restarts], [true, 1]);
      assert.match(
        dev.output,
        /^\[dev\] worker exited \(signal SIGKILL\); restarting in 0\.5 s$/m,
        dev.output,
      );
      // PostgreSQL and the cluster kept running: same processes, same data.
      assert.deepEqual(after.processes, before.processes);
      const [{ note }] = await sql`select note from dev_test_kept`;
      assert.equal(note, "written before the kill");
    } finally {
      await sql.end();
    }

    const first = await dev.stop("SIGINT");
    assert.equal(first.code, 0, dev.output);
    assert.match(dev.output, /\[dev\] stopped; state kept in /);
    await assert.rejects(Deno.stat(envFile), Deno.errors.NotFound, "the env file is removed");
    await Deno.stat(keepDir);

    dev = new Dev(keepDir, envFile);
    const again = await dev.ready();
    assert.equal(again.KUBE_B_ADMIN_TOKEN, env.KUBE_B_ADMIN_TOKEN, "cluster b's credentials kept");
    const sql2 = postgres(again.DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { statement_timeout: 5_000 },
    });
    try {
      const [{ note }] = await sql2`select note from dev_test_kept`;
      assert.equal(note, "written before the kill");
      const [{ name }] = await sql2`
        select omni_kube.api('/api/v1/namespaces/default/configmaps/dev-test-kept')
                 -> 'metadata' ->> 'name' as name`;
      assert.equal(name, "dev-test-kept");
      // Cluster B's objects were kept too; its context of the fleet kubeconfig reaches them.
      await sql2`select omni_kube.load_kubeconfig(${again.KUBE_FLEET_KUBECONFIG}::text, 'b')`;
      const [{ nameInB }] = await sql2`
        select omni_kube.api('/api/v1/namespaces/default/configmaps/dev-test-kept-b')
                 -> 'metadata' ->> 'name' as "nameInB"`;
      assert.equal(nameInB, "dev-test-kept-b");
    } finally {
      await sql2.end();
    }
    const second = await dev.stop("SIGINT");
    assert.equal(second.code, 0, dev.output);
  } finally {
    await dev.cleanUp(statusFile);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("deno task dev: flags", () => {
  assert.deepEqual(parseDevArgs([], "/here"), {
    keepDir: undefined,
    postgresMajor: undefined,
    envFile: DEFAULT_ENV_FILE,
  });
  assert.equal(parseDevArgs(["--keep"], "/here")?.keepDir, DEFAULT_KEEP_DIR);
  assert.deepEqual(parseDevArgs(["--keep", "--pg", "16"], "/here"), {
    keepDir: DEFAULT_KEEP_DIR,
    postgresMajor: 16,
    envFile: DEFAULT_ENV_FILE,
  });
  // Paths are the user's, relative to where they ran the command.
  assert.deepEqual(parseDevArgs(["--keep", "st", "--env-file", "/tmp/e", "--pg=14"], "/here"), {
    keepDir: "/here/st",
    postgresMajor: 14,
    envFile: "/tmp/e",
  });
  assert.equal(parseDevArgs(["--keep=../st"], "/here/sub")?.keepDir, "/here/st");
  assert.equal(parseDevArgs(["--help"], "/here"), undefined);
  assert.equal(parseDevArgs(["-h"], "/here"), undefined);

  const rejects = (args: string[], message: RegExp) =>
    assert.throws(() => parseDevArgs(args, "/here"), (error: Error) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, message);
      return true;
    });
  rejects(["--bogus"], /Unknown option '--bogus'/);
  rejects(
    ["--pg", "13"],
    /^--pg 13: not a PostgreSQL major the test bed runs \(14, 15, 16, 17, 18\)$/,
  );
  rejects(["--pg", "seventeen"], /^--pg seventeen: not a PostgreSQL major/);
  rejects(["--pg"], /'--pg <value>' argument missing/);
  rejects(["--keep="], /^--keep needs a path$/);
  rejects(["somewhere"], /Unexpected argument 'somewhere'/);
});

Deno.test("deno task dev: the worker's restart delay doubles to 5 s and starts over after 30 s", () => {
  const delays: number[] = [];
  let delay: number | undefined;
  for (let i = 0; i < 6; i++) delays.push(delay = restartDelay(delay, 1_000));
  assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 5_000, 5_000]);
  assert.equal(restartDelay(5_000, 30_000), 500);
  assert.equal(describeExit({ success: false, code: 137, signal: "SIGKILL" }), "signal SIGKILL");
  assert.equal(describeExit({ success: false, code: 1, signal: null }), "code 1");
});
