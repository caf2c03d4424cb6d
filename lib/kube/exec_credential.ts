/**
 * Exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1` ExecCredential), as
 * client-go runs them: a command from the kubeconfig prints a token or a client certificate on
 * stdout, with an expiry; the credential is kept until shortly before then, or until the server
 * answers 401 to it.
 *
 * A plugin's stdout and stderr may hold secrets, so neither ever reaches an error or a log: stderr
 * is discarded, and what is wrong with stdout is described without quoting it. Knows nothing about
 * PostgreSQL.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { untilAborted } from "./limits.ts";

/** The ExecCredential versions client-go accepts (v1alpha1 is gone from it). */
export const EXEC_API_VERSIONS = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
] as const;

/** The `exec` section of a kubeconfig user, checked, with a relative command already resolved. */
export interface ExecConfig {
  /** One of {@linkcode EXEC_API_VERSIONS}: the version sent to the plugin and expected back. */
  apiVersion: string;
  /** Looked up in `PATH` unless it contains a "/". */
  command: string;
  args: string[];
  /** Set for the plugin on top of the worker's own environment. */
  env: { name: string; value: string }[];
  /**
   * As written (v1beta1 defaults to `IfAvailable`, as in client-go). `Always` is refused when the
   * kubeconfig is read. The worker has no terminal, so either way the plugin gets no stdin and
   * `spec.interactive` is false.
   */
  interactiveMode?: "Never" | "IfAvailable";
  /** Whether `KUBERNETES_EXEC_INFO` carries `spec.cluster`. */
  provideClusterInfo: boolean;
  /** Shown when the command is not found. */
  installHint?: string;
}

/**
 * The cluster as an ExecCredential's `spec.cluster` describes it to a plugin that asks for it
 * (`provideClusterInfo`).
 */
export interface ExecClusterInfo {
  /** The API server's URL. */
  server: string;
  /** PEM CA bundle; sent base64-encoded as `certificate-authority-data`. */
  caCert?: string;
  /**
   * The cluster's `client.authentication.k8s.io/exec` extension, sent as `config`: per-cluster
   * plugin settings such as an audience.
   */
  config?: unknown;
}

/** A credential a plugin printed. */
export interface ExecCredential {
  /** Bearer token. */
  token?: string;
  /** PEM client certificate and its private key, for mutual TLS. */
  clientCert?: { certificate: string; privateKey: string };
  /** When it expires (ms since the epoch); absent: until the server refuses it. */
  expiresAt?: number;
}

/** How an {@linkcode ExecCredentialSource} runs its plugin. */
export interface ExecCredentialOptions {
  /** A run that takes longer is killed and fails; default {@linkcode EXEC_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** A credential is renewed this long before it expires; default {@linkcode EXEC_RENEW_BEFORE_MS}. */
  renewBeforeMs?: number;
  /** The clock, in ms since the epoch (tests move it). */
  now?: () => number;
}

/** Default timeout of one plugin run. */
export const EXEC_TIMEOUT_MS = 30_000;
/** Default margin before expiry at which a credential is renewed. */
export const EXEC_RENEW_BEFORE_MS = 60_000;
/** The most stdout kept from a plugin; an ExecCredential, even with a certificate chain, is far smaller. */
export const EXEC_MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * A plugin could not give a credential. The message names the cluster and what went wrong (exit
 * status, timeout, invalid output, missing command), never what the plugin printed.
 */
export class ExecPluginError extends Error {
  /** `cluster` is the name the worker serves the cluster under. */
  constructor(readonly cluster: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ExecPluginError";
  }
}

/** The cached credential and when to stop handing it out. */
interface Cached {
  credential: ExecCredential;
  renewAt: number;
}

/**
 * What of the worker's environment a plugin gets: all of it (cloud CLIs read their profiles,
 * regions and credentials from it, as under kubectl), less what only the worker's own database
 * connection needs (`DATABASE_URL`, libpq's `PG*`) and the worker's settings (`OMNI_KUBE_*`).
 */
export function pluginEnvironment(environment: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(environment).filter(([name]) =>
      name !== "DATABASE_URL" && !name.startsWith("PG") && !name.startsWith("OMNI_KUBE_")
    ),
  );
}

/**
 * One cluster's exec plugin and the credential it last printed. The credential is kept until
 * `renewBeforeMs` before its `expirationTimestamp` (at most half its lifetime before, so that a
 * short-lived one is not renewed on every call), or until {@linkcode invalidate}; then the next
 * {@linkcode get} runs the plugin again. Runs never overlap: concurrent callers share one.
 */
export class ExecCredentialSource {
  readonly #exec: ExecConfig;
  readonly #execInfo: string;
  readonly #timeoutMs: number;
  readonly #renewBeforeMs: number;
  readonly #now: () => number;
  #cached: Cached | undefined;
  #running: Promise<ExecCredential> | undefined;
  #invocations = 0;

  /**
   * `cluster` names the cluster in errors; `clusterInfo` is sent to the plugin if `exec` asks for
   * it. Nothing runs until the first {@linkcode get}.
   */
  constructor(
    readonly cluster: string,
    exec: ExecConfig,
    clusterInfo: ExecClusterInfo,
    options: ExecCredentialOptions = {},
  ) {
    if (!(EXEC_API_VERSIONS as readonly string[]).includes(exec.apiVersion)) {
      throw new TypeError(
        `cluster "${cluster}": exec apiVersion "${exec.apiVersion}" is not supported; use ` +
          EXEC_API_VERSIONS.join(" or "),
      );
    }
    this.#exec = exec;
    this.#execInfo = JSON.stringify(execInfo(exec, clusterInfo));
    this.#timeoutMs = options.timeoutMs ?? EXEC_TIMEOUT_MS;
    this.#renewBeforeMs = options.renewBeforeMs ?? EXEC_RENEW_BEFORE_MS;
    this.#now = options.now ?? Date.now;
  }

  /** How many times the plugin was started (or attempted), successful or not. */
  get invocations(): number {
    return this.#invocations;
  }

  /**
   * The cached credential, or a new one from the plugin (from the run under way if there is one).
   * `signal` only stops this caller's wait: the run goes on for the others, bounded by its timeout.
   * Throws {@linkcode ExecPluginError}.
   */
  get(signal?: AbortSignal): Promise<ExecCredential> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const cached = this.#cached;
    if (cached && this.#now() < cached.renewAt) return Promise.resolve(cached.credential);
    if (!this.#running) {
      const running = this.#run().finally(() => {
        this.#running = undefined;
      });
      // Callers that gave up (their signal aborted) no longer observe it.
      running.catch(() => {});
      this.#running = running;
    }
    return untilAborted(this.#running, signal);
  }

  /**
   * The server refused `stale` (401): the next {@linkcode get} runs the plugin again, unless the
   * cached credential is already another one (a caller renewed it meanwhile).
   */
  invalidate(stale: ExecCredential): void {
    if (this.#cached?.credential === stale) this.#cached = undefined;
  }

  async #run(): Promise<ExecCredential> {
    this.#invocations++;
    const stdout = await this.#execute();
    let credential: ExecCredential;
    try {
      credential = parseExecCredential(stdout, this.#exec.apiVersion);
    } catch (error) {
      if (!(error instanceof InvalidOutput)) throw error;
      throw new ExecPluginError(
        this.cluster,
        `${this.#describe()} printed no valid ExecCredential: ${error.message}`,
      );
    }
    const now = this.#now();
    let renewAt = Infinity;
    if (credential.expiresAt !== undefined) {
      const lifetime = credential.expiresAt - now;
      renewAt = credential.expiresAt - Math.min(this.#renewBeforeMs, Math.max(0, lifetime / 2));
    }
    this.#cached = { credential, renewAt };
    return credential;
  }

  /** Runs the plugin once and returns its stdout; throws unless it exits 0 in time. */
  async #execute(): Promise<Uint8Array> {
    const exec = this.#exec;
    const env = pluginEnvironment(Deno.env.toObject());
    for (const { name, value } of exec.env) env[name] = value;
    // Last, as client-go appends it last: the plugin's own env cannot replace it.
    env.KUBERNETES_EXEC_INFO = this.#execInfo;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(exec.command, {
        args: exec.args,
        env,
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        // It may print secrets, and it is no part of the worker's log.
        stderr: "null",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ExecPluginError(
          this.cluster,
          `${this.#describe()} was not found${exec.installHint ? `: ${exec.installHint}` : ""}`,
          { cause: error },
        );
      }
      throw new ExecPluginError(
        this.cluster,
        `${this.#describe()} could not be started: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }

    const reader = child.stdout.getReader();
    let ended: "timeout" | "too-large" | undefined;
    // Killing the plugin may not close its stdout (a child of a shell script can hold it open),
    // so the read is cancelled as well.
    const stop = (why: "timeout" | "too-large") => {
      ended ??= why;
      try {
        child.kill("SIGKILL");
      } catch {
        // It had exited already.
      }
      reader.cancel().catch(() => {});
    };
    const timer = setTimeout(() => stop("timeout"), this.#timeoutMs);
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || ended) break;
        size += value.length;
        if (size > EXEC_MAX_OUTPUT_BYTES) {
          stop("too-large");
          break;
        }
        chunks.push(value);
      }
    } catch {
      // The read was cancelled: `ended` says why.
    }
    const status = await child.status;
    clearTimeout(timer);

    if (ended === "timeout") {
      throw new ExecPluginError(
        this.cluster,
        `${this.#describe()} timed out after ${this.#timeoutMs / 1000} s and was killed`,
      );
    }
    if (ended === "too-large") {
      throw new ExecPluginError(
        this.cluster,
        `${this.#describe()} printed no valid ExecCredential: more than ${EXEC_MAX_OUTPUT_BYTES} bytes`,
      );
    }
    if (!status.success) {
      throw new ExecPluginError(
        this.cluster,
        status.signal
          ? `${this.#describe()} was killed by ${status.signal}`
          : `${this.#describe()} failed with exit status ${status.code}`,
      );
    }
    const output = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      output.set(chunk, offset);
      offset += chunk.length;
    }
    return output;
  }

  /** The subject of error messages: the command (not its arguments) and the cluster. */
  #describe(): string {
    return `exec credential plugin "${this.#exec.command}" of cluster "${this.cluster}"`;
  }
}

/** The ExecCredential passed in `KUBERNETES_EXEC_INFO`. */
function execInfo(exec: ExecConfig, clusterInfo: ExecClusterInfo): unknown {
  const spec: Record<string, unknown> = { interactive: false };
  if (exec.provideClusterInfo) {
    const cluster: Record<string, unknown> = { server: clusterInfo.server };
    if (clusterInfo.caCert !== undefined) {
      cluster["certificate-authority-data"] = new TextEncoder().encode(clusterInfo.caCert)
        .toBase64();
    }
    if (clusterInfo.config !== undefined) cluster.config = clusterInfo.config;
    spec.cluster = cluster;
  }
  return { apiVersion: exec.apiVersion, kind: "ExecCredential", spec };
}

/** What is wrong with a plugin's output, said without quoting it. */
class InvalidOutput extends Error {}

/** RFC 3339 date-time, as Go's time.RFC3339 parses it (fractional seconds allowed). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The credential in a plugin's stdout (JSON, or YAML as client-go also decodes), which must be
 * an ExecCredential of `apiVersion` with a token or a certificate and key. Throws
 * {@linkcode InvalidOutput} whose message quotes nothing of `stdout`.
 */
function parseExecCredential(stdout: Uint8Array, apiVersion: string): ExecCredential {
  let document: unknown;
  try {
    // logLevel "error": a problem throws (and is described below without its text), none is logged.
    document = parseYaml(new TextDecoder().decode(stdout), { logLevel: "error" });
  } catch {
    throw new InvalidOutput("its output is not JSON");
  }
  if (document === null || document === undefined) throw new InvalidOutput("it printed nothing");
  if (typeof document !== "object" || Array.isArray(document)) {
    throw new InvalidOutput("its output is not a JSON object");
  }
  const object = document as Record<string, unknown>;
  if (object.kind !== "ExecCredential") throw new InvalidOutput('its kind is not "ExecCredential"');
  if (object.apiVersion !== apiVersion) {
    // Only a known version is quoted: anything else might be a secret printed in its place.
    const got = (EXEC_API_VERSIONS as readonly unknown[]).includes(object.apiVersion)
      ? `${object.apiVersion}`
      : "another apiVersion";
    throw new InvalidOutput(`it answered ${got}, but the kubeconfig asks for ${apiVersion}`);
  }
  const status = object.status;
  if (typeof status !== "object" || status === null || Array.isArray(status)) {
    throw new InvalidOutput("it has no status");
  }
  const { token, clientCertificateData, clientKeyData, expirationTimestamp } = status as Record<
    string,
    unknown
  >;
  for (const [name, value] of Object.entries({ token, clientCertificateData, clientKeyData })) {
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw new InvalidOutput(`status.${name} is not a string`);
    }
  }
  const credential: ExecCredential = {};
  if (typeof token === "string" && token !== "") credential.token = token;
  const certificate = typeof clientCertificateData === "string" ? clientCertificateData : "";
  const privateKey = typeof clientKeyData === "string" ? clientKeyData : "";
  if ((certificate === "") !== (privateKey === "")) {
    throw new InvalidOutput(
      `status has ${
        certificate
          ? "clientCertificateData without clientKeyData"
          : "clientKeyData without clientCertificateData"
      }`,
    );
  }
  if (certificate) credential.clientCert = Object.freeze({ certificate, privateKey });
  if (!credential.token && !credential.clientCert) {
    throw new InvalidOutput("status has neither a token nor a client certificate and key");
  }
  if (expirationTimestamp !== undefined && expirationTimestamp !== null) {
    const time = typeof expirationTimestamp === "string" && RFC3339.test(expirationTimestamp)
      ? Date.parse(expirationTimestamp)
      : NaN;
    if (Number.isNaN(time)) {
      throw new InvalidOutput("status.expirationTimestamp is not an RFC 3339 time");
    }
    credential.expiresAt = time;
  }
  return Object.freeze(credential);
}
