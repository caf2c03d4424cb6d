/**
 * Child processes of the test bed: started with their output in a log file, waited on until ready
 * (failing early, with the log's tail, if the process dies first), and stopped with a grace period.
 *
 * @module
 */

/** A running child process whose output goes to `logFile`. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit status once the process has exited. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs. Safe to call more than once. */
  stop(signal?: Deno.Signal, graceMs?: number): Promise<void>;
}

/** Options for {@linkcode spawnProcess}. */
export interface SpawnOptions {
  args: string[];
  logFile: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Also copy the output to our stderr (for the worker in `deno task dev`). */
  echo?: boolean;
  /** Run as this OS user and group (used to run PostgreSQL unprivileged when we are root). */
  uid?: number;
  gid?: number;
}

/** Starts `command` with stdout and stderr appended to `options.logFile`. */
export async function spawnProcess(
  name: string,
  command: string,
  options: SpawnOptions,
): Promise<ManagedProcess> {
  const log = await Deno.open(options.logFile, { create: true, append: true });
  const child = new Deno.Command(command, {
    args: options.args,
    env: options.env,
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams end when the process exits; the log file is closed after both are drained.
  // (Chunks are written one by one: a WritableStream takes only one pipe at a time.)
  const copy = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      await log.write(chunk);
      if (options.echo) await Deno.stderr.write(chunk);
    }
  };
  const drained = Promise.all([copy(child.stdout), copy(child.stderr)])
    .catch(() => {}).finally(() => log.close());
  const exited = child.status.then(async (status) => {
    await drained;
    return status;
  });
  let done = false;
  exited.finally(() => done = true);

  return {
    name,
    pid: child.pid,
    logFile: options.logFile,
    exited,
    async stop(signal: Deno.Signal = "SIGTERM", graceMs = 10_000) {
      if (done) return;
      try {
        child.kill(signal);
      } catch {
        return; // already gone
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The last `lines` lines of a log file, for error messages. */
export async function logTail(path: string, lines = 30): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Polls `ready` every `intervalMs` until it returns true. Throws if `process` exits first or
 * `timeoutMs` passes, quoting the end of the process's log so the cause is visible.
 */
export async function waitUntilReady(
  process: ManagedProcess,
  what: string,
  ready: () => Promise<boolean>,
  { timeoutMs = 120_000, intervalMs = 100 } = {},
): Promise<void> {
  let exitStatus: Deno.CommandStatus | undefined;
  process.exited.then((status) => exitStatus = status);
  const deadline = Date.now() + timeoutMs;
  while (true) {
    if (exitStatus) {
      throw new Error(
        `${process.name} exited with code ${exitStatus.code} before ${what}. ` +
          `End of ${process.logFile}:\n${await logTail(process.logFile)}`,
      );
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${process.name} did not reach "${what}" within ${timeoutMs / 1000} s. ` +
          `End of ${process.logFile}:\n${await logTail(process.logFile)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. There is a window between closing the probe
 * and the server binding it; servers started here fail loudly if it is lost, and ports are drawn
 * from the kernel's ephemeral range, so collisions are rare.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
