/**
 * Kubeconfig files, read and merged as kubectl reads `$KUBECONFIG`, and one context of them
 * resolved to what the worker needs to call its cluster: the server, its CA and how to
 * authenticate (a token, a token file, a client certificate or an exec plugin).
 *
 * What the worker cannot honour safely is refused with an error that names the file, the context
 * and what to do, rather than ignored: TLS verification turned off, auth-provider plugins, basic
 * auth, impersonation, proxies, a TLS server name. Errors never quote a token, a key or the content
 * of a file. Knows nothing about PostgreSQL.
 *
 * @module
 */
import { parse as parseYaml, YAMLError } from "yaml";
import { dirname, isAbsolute, resolve } from "node:path";
import { normalizeServer } from "./client.ts";
import { EXEC_API_VERSIONS, type ExecClusterInfo, type ExecConfig } from "./exec_credential.ts";

/** A named entry of a kubeconfig (a context, cluster or user) and the file that defined it. */
export interface KubeconfigEntry {
  /** The file, as it was given to {@linkcode readKubeconfig}; relative paths in it resolve against its directory. */
  file: string;
  /** The entry's `context`, `cluster` or `user` object (`{}` when empty). */
  value: Record<string, unknown>;
}

/** A kubeconfig merged from one or more files as kubectl merges them. */
export interface Kubeconfig {
  /** The files that were read, in order of precedence; those that did not exist are left out. */
  files: string[];
  /** From the first file that sets one. */
  currentContext?: string;
  /** Every context's name, in the order the files define them. */
  contextNames: string[];
  /** Contexts by name, each from the first file that defines it. */
  contexts: Map<string, KubeconfigEntry>;
  /** Clusters by name, each from the first file that defines it. */
  clusters: Map<string, KubeconfigEntry>;
  /** Users by name, each from the first file that defines it. */
  users: Map<string, KubeconfigEntry>;
}

/** None of the files given to {@linkcode readKubeconfig} exists. */
export class NoKubeconfigError extends Error {
  /** `files` are the paths that were looked for. */
  constructor(readonly files: string[]) {
    super(
      files.length
        ? `no kubeconfig file exists (looked for ${files.join(", ")})`
        : "no kubeconfig file was given",
    );
    this.name = "NoKubeconfigError";
  }
}

/** How a context's user proves who it is. */
export type ClusterAuth =
  | { kind: "none" }
  | { kind: "token"; token: string }
  /** A token read from `path` (absolute) with {@linkcode readTokenFile}, again whenever it may have been rotated. */
  | { kind: "token-file"; path: string }
  /** PEM client certificate and private key, for mutual TLS. */
  | { kind: "client-certificate"; certificate: string; privateKey: string }
  | { kind: "exec"; exec: ExecConfig };

/** One context of a kubeconfig, resolved: where its server is and how to authenticate to it. */
export interface ClusterConfig {
  /** The context's name. */
  context: string;
  /** The file that defined the context. */
  file: string;
  /** The name of the context's cluster entry. */
  clusterName: string;
  /** The name of the context's user entry, if it has one. */
  userName?: string;
  /** The context's default namespace, if it sets one. */
  namespace?: string;
  /** `https://host[:port]`, normalised with {@linkcode normalizeServer}. */
  server: string;
  /** PEM CA bundle that signed the server's certificate. */
  caCert?: string;
  auth: ClusterAuth;
  /**
   * The cluster as an exec plugin's ExecCredential `spec.cluster` describes it (given to the
   * plugin when it sets `provideClusterInfo`); `server` is as the kubeconfig writes it, as
   * client-go passes it.
   */
  execCluster: ExecClusterInfo;
}

/** The reserved extension name under which a cluster carries per-cluster exec plugin settings. */
export const EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec";

type Section = "contexts" | "clusters" | "users";
const SECTIONS: Record<Section, string> = {
  contexts: "context",
  clusters: "cluster",
  users: "user",
};

/** One file's content, checked for shape. */
interface ParsedFile {
  currentContext?: string;
  entries: Record<Section, [string, Record<string, unknown>][]>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A file that kubectl would not read as a kubeconfig. */
function notKubeconfig(file: string, why: string): Error {
  return new Error(`kubeconfig ${file} is not a kubeconfig: ${why}`);
}

/** Checks the shape of one file's content (an empty file is an empty kubeconfig, as for kubectl). */
function parseFile(file: string, text: string): ParsedFile {
  let document: unknown;
  try {
    // logLevel "error": problems throw, and none is printed (a warning could quote the file).
    document = parseYaml(text, { logLevel: "error" });
  } catch (error) {
    // The parser's message quotes the offending line, which may hold a secret: only its number.
    const line = error instanceof YAMLError && error.linePos
      ? ` (line ${error.linePos[0].line})`
      : "";
    throw new Error(`kubeconfig ${file} is not valid YAML or JSON${line}`);
  }
  const parsed: ParsedFile = { entries: { contexts: [], clusters: [], users: [] } };
  if (document === null || document === undefined) return parsed;
  if (!isObject(document)) throw notKubeconfig(file, "it is not a mapping");
  if (document.kind !== undefined && document.kind !== null && document.kind !== "Config") {
    throw notKubeconfig(file, 'its kind is not "Config"');
  }
  if (
    document.apiVersion !== undefined && document.apiVersion !== null &&
    document.apiVersion !== "v1"
  ) {
    throw notKubeconfig(file, 'its apiVersion is not "v1"');
  }
  const current = document["current-context"];
  if (current !== undefined && current !== null && typeof current !== "string") {
    throw notKubeconfig(file, "current-context is not a string");
  }
  if (current) parsed.currentContext = current;
  for (const section of Object.keys(SECTIONS) as Section[]) {
    const field = SECTIONS[section];
    const list = document[section];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw notKubeconfig(file, `${section} is not a list`);
    const seen = new Set<string>();
    for (const item of list) {
      const name = isObject(item) ? item.name : undefined;
      if (typeof name !== "string" || name === "") {
        throw notKubeconfig(file, `an entry of ${section} has no name`);
      }
      if (seen.has(name)) throw notKubeconfig(file, `two ${section} are named "${name}"`);
      seen.add(name);
      const value = (item as Record<string, unknown>)[field] ?? {};
      if (!isObject(value)) throw notKubeconfig(file, `${field} "${name}" is not a mapping`);
      parsed.entries[section].push([name, value]);
    }
  }
  return parsed;
}

/**
 * Reads and merges `files` (YAML or JSON) the way kubectl merges `$KUBECONFIG`: for each context,
 * cluster and user (by name) the first file that defines it wins, whole; current-context comes
 * from the first file that sets one. Files that do not exist are skipped, as kubectl skips
 * `$KUBECONFIG` entries; if none exists, {@linkcode NoKubeconfigError}. A file that cannot be read
 * or is not a kubeconfig is an error naming it. Empty paths and repeats are ignored.
 */
export async function readKubeconfig(files: string[]): Promise<Kubeconfig> {
  const paths = [...new Set(files.filter((file) => file !== ""))];
  const config: Kubeconfig = {
    files: [],
    contextNames: [],
    contexts: new Map(),
    clusters: new Map(),
    users: new Map(),
  };
  for (const file of paths) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw new Error(`kubeconfig ${file} cannot be read: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const parsed = parseFile(file, text);
    config.files.push(file);
    config.currentContext ??= parsed.currentContext;
    for (const section of Object.keys(SECTIONS) as Section[]) {
      for (const [name, value] of parsed.entries[section]) {
        if (!config[section].has(name)) config[section].set(name, { file, value });
      }
    }
  }
  if (config.files.length === 0) throw new NoKubeconfigError(paths);
  config.contextNames = [...config.contexts.keys()];
  return config;
}

/**
 * A token file's token, trimmed, read afresh (a mounted service-account token is rotated in
 * place). An empty file is an error; the error never quotes the file's content.
 */
export async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`token file ${path} cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const token = text.trim();
  if (token === "") throw new Error(`token file ${path} is empty`);
  return token;
}

/** Where an entry is, for error messages: its file, the context, and the entry. */
interface Place {
  file: string;
  context: string;
  entry: string;
}

function fail(place: Place, problem: string): Error {
  return new Error(
    `kubeconfig ${place.file}, context "${place.context}": ${place.entry} ${problem}`,
  );
}

/** A string field; empty counts as absent, as in client-go. Never quotes the value. */
function text(value: Record<string, unknown>, key: string, place: Place): string | undefined {
  const field = value[key];
  if (field === undefined || field === null || field === "") return undefined;
  if (typeof field !== "string") throw fail(place, `has a ${key} that is not a string`);
  return field;
}

/** `path` against the directory of the file that names it, as client-go resolves it. */
function resolvePath(place: Place, path: string): string {
  return isAbsolute(path) ? path : resolve(dirname(resolve(place.file)), path);
}

/** The PEM in `<key>-data` (base64; it wins, as in client-go) or in the file `<key>`. */
async function pem(
  value: Record<string, unknown>,
  key: string,
  place: Place,
): Promise<string | undefined> {
  const data = text(value, `${key}-data`, place);
  if (data !== undefined) {
    try {
      return new TextDecoder().decode(Uint8Array.fromBase64(data.replace(/\s+/g, "")));
    } catch {
      throw fail(place, `has a ${key}-data that is not base64`);
    }
  }
  const path = text(value, key, place);
  if (path === undefined) return undefined;
  const absolute = resolvePath(place, path);
  try {
    return await Deno.readTextFile(absolute);
  } catch (error) {
    throw fail(place, `has a ${key} ${absolute} that cannot be read: ${(error as Error).message}`);
  }
}

/**
 * The server, CA and authentication of context `name`. Relative paths (certificate-authority,
 * client-certificate, client-key, tokenFile, and an exec command containing a "/") are resolved
 * against the directory of the file that defined their entry, as client-go does. Referenced files
 * are read now (a token file too, to check it, though the caller re-reads it).
 *
 * Refused, with an error naming the file, the context and what to do: an unknown context (the
 * error lists the known ones), a missing server or one that is not `https://host[:port]`,
 * `insecure-skip-tls-verify: true`, `tls-server-name`, `proxy-url`, `auth-provider` users,
 * basic auth, impersonation, a certificate without its key or the reverse, more than one way to
 * authenticate (token, client certificate, exec), and exec plugins with `interactiveMode: Always`.
 */
export async function resolveContext(config: Kubeconfig, name: string): Promise<ClusterConfig> {
  const contextEntry = config.contexts.get(name);
  if (!contextEntry) {
    const known = config.contextNames.length
      ? `known contexts: ${config.contextNames.map((n) => `"${n}"`).join(", ")}`
      : "it defines no context";
    throw new Error(`kubeconfig ${config.files.join(", ")}: no context named "${name}"; ${known}`);
  }
  const contextPlace = { file: contextEntry.file, context: name, entry: "the context" };
  const clusterName = text(contextEntry.value, "cluster", contextPlace);
  if (clusterName === undefined) throw fail(contextPlace, "names no cluster; give it one");
  const userName = text(contextEntry.value, "user", contextPlace);
  const namespace = text(contextEntry.value, "namespace", contextPlace);

  const clusterEntry = config.clusters.get(clusterName);
  if (!clusterEntry) {
    throw fail(contextPlace, `names cluster "${clusterName}", which no kubeconfig file defines`);
  }
  const userEntry = userName === undefined ? undefined : config.users.get(userName);
  if (userName !== undefined && !userEntry) {
    throw fail(contextPlace, `names user "${userName}", which no kubeconfig file defines`);
  }

  const { server, caCert, execCluster } = await resolveCluster(clusterEntry, {
    file: clusterEntry.file,
    context: name,
    entry: `cluster "${clusterName}"`,
  });
  const auth: ClusterAuth = userEntry
    ? await resolveUser(userEntry, {
      file: userEntry.file,
      context: name,
      entry: `user "${userName}"`,
    })
    : { kind: "none" };
  const resolved: ClusterConfig = {
    context: name,
    file: contextEntry.file,
    clusterName,
    server,
    auth,
    execCluster,
  };
  if (userName !== undefined) resolved.userName = userName;
  if (namespace !== undefined) resolved.namespace = namespace;
  if (caCert !== undefined) resolved.caCert = caCert;
  return resolved;
}

async function resolveCluster(
  { value }: KubeconfigEntry,
  place: Place,
): Promise<{ server: string; caCert?: string; execCluster: ExecClusterInfo }> {
  if (value["insecure-skip-tls-verify"] === true) {
    throw fail(
      place,
      "turns TLS verification off, which the worker never does; give its CA as " +
        "certificate-authority or certificate-authority-data",
    );
  }
  if (text(value, "tls-server-name", place) !== undefined) {
    throw fail(
      place,
      "sets tls-server-name, which the worker cannot honour; give a server whose certificate " +
        "names the host it is reached at",
    );
  }
  if (text(value, "proxy-url", place) !== undefined) {
    throw fail(
      place,
      "sets proxy-url, which the worker does not use; give a server it can reach directly",
    );
  }
  const written = text(value, "server", place);
  if (written === undefined) throw fail(place, "has no server; give it https://host[:port]");
  let server: string;
  try {
    server = normalizeServer(written);
  } catch (error) {
    throw fail(place, `has an unusable server: ${(error as Error).message}`);
  }
  const caCert = await pem(value, "certificate-authority", place);
  const execCluster: ExecClusterInfo = { server: written };
  if (caCert !== undefined) execCluster.caCert = caCert;
  const extensions = value.extensions;
  if (Array.isArray(extensions)) {
    const exec = extensions.find((e) => isObject(e) && e.name === EXEC_CLUSTER_EXTENSION);
    if (exec?.extension !== undefined && exec.extension !== null) {
      execCluster.config = exec.extension;
    }
  }
  return caCert === undefined ? { server, execCluster } : { server, caCert, execCluster };
}

async function resolveUser({ value }: KubeconfigEntry, place: Place): Promise<ClusterAuth> {
  const use = "; use a token, tokenFile, client certificate or exec plugin";
  if (value["auth-provider"] !== undefined && value["auth-provider"] !== null) {
    throw fail(place, `authenticates through auth-provider, which the worker does not run${use}`);
  }
  if (
    text(value, "username", place) !== undefined || text(value, "password", place) !== undefined
  ) {
    throw fail(
      place,
      `uses basic auth (username and password), which the worker does not send${use}`,
    );
  }
  for (const key of ["as", "as-uid", "as-groups", "as-user-extra"]) {
    const field = value[key];
    // Empty ("", [] or {}) is unset, as client-go reads it.
    const empty = field === undefined || field === null || field === "" ||
      (typeof field === "object" && Object.keys(field).length === 0);
    if (!empty) {
      throw fail(
        place,
        `impersonates (${key}), which the worker does not do: calls would run as the user ` +
          "itself; give the credentials of the identity to act as",
      );
    }
  }
  const token = text(value, "token", place);
  const tokenFile = text(value, "tokenFile", place);
  const certificate = await pem(value, "client-certificate", place);
  const privateKey = await pem(value, "client-key", place);
  const exec = value.exec === undefined || value.exec === null ? undefined : value.exec;

  if ((certificate === undefined) !== (privateKey === undefined)) {
    throw fail(
      place,
      `has a client ${
        certificate === undefined ? "key without its certificate" : "certificate without its key"
      }; give both (client-certificate[-data] and client-key[-data])`,
    );
  }
  const ways = [
    token !== undefined || tokenFile !== undefined ? "a token" : undefined,
    certificate !== undefined ? "a client certificate" : undefined,
    exec !== undefined ? "an exec plugin" : undefined,
  ].filter((way) => way !== undefined);
  if (ways.length > 1) {
    throw fail(place, `authenticates with both ${ways.join(" and ")}; keep only one`);
  }

  if (exec !== undefined) return { kind: "exec", exec: parseExec(exec, place) };
  if (certificate !== undefined && privateKey !== undefined) {
    return { kind: "client-certificate", certificate, privateKey };
  }
  // With both, client-go sends the file's token whenever it can read it: the file wins.
  if (tokenFile !== undefined) {
    const path = resolvePath(place, tokenFile);
    try {
      await readTokenFile(path);
    } catch (error) {
      throw fail(place, `has a tokenFile that is unusable: ${(error as Error).message}`);
    }
    return { kind: "token-file", path };
  }
  if (token !== undefined) return { kind: "token", token };
  return { kind: "none" };
}

/** A user's `exec` section, checked as client-go checks it. */
function parseExec(exec: unknown, user: Place): ExecConfig {
  const place = { ...user, entry: `${user.entry}'s exec plugin` };
  if (!isObject(exec)) throw fail(place, "is not a mapping");
  const apiVersion = text(exec, "apiVersion", place);
  if (apiVersion === undefined || !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw fail(
      place,
      `${
        apiVersion === undefined ? "has no apiVersion" : `has apiVersion "${apiVersion}"`
      }; give one of ${EXEC_API_VERSIONS.join(", ")}`,
    );
  }
  const command = text(exec, "command", place);
  if (command === undefined) throw fail(place, "has no command");
  const args = exec.args ?? [];
  if (!Array.isArray(args) || !args.every((arg) => typeof arg === "string")) {
    throw fail(place, "has args that are not a list of strings");
  }
  const envList = exec.env ?? [];
  if (!Array.isArray(envList)) throw fail(place, "has an env that is not a list");
  const env = envList.map((variable) => {
    const name = isObject(variable) ? variable.name : undefined;
    const value = isObject(variable) ? variable.value ?? "" : undefined;
    if (typeof name !== "string" || !/^[^=\0]+$/.test(name)) {
      throw fail(place, "has an env variable without a valid name");
    }
    if (typeof value !== "string") {
      throw fail(place, `has env variable ${name} whose value is not a string`);
    }
    return { name, value };
  });
  const mode = text(exec, "interactiveMode", place) ??
    (apiVersion === "client.authentication.k8s.io/v1beta1" ? "IfAvailable" : undefined);
  if (mode === "Always") {
    throw fail(
      place,
      "sets interactiveMode: Always, but the worker has no terminal; use a plugin that can run " +
        "unattended (interactiveMode: Never)",
    );
  }
  if (mode !== undefined && mode !== "Never" && mode !== "IfAvailable") {
    throw fail(place, `has interactiveMode "${mode}"; give Never or IfAvailable`);
  }
  const provideClusterInfo = exec.provideClusterInfo ?? false;
  if (typeof provideClusterInfo !== "boolean") {
    throw fail(place, "has a provideClusterInfo that is not true or false");
  }
  const config: ExecConfig = {
    apiVersion,
    // Only a path is resolved against the file's directory: a bare name is looked up in PATH.
    command: command.includes("/") ? resolvePath(place, command) : command,
    args,
    env,
    provideClusterInfo,
  };
  if (mode !== undefined) config.interactiveMode = mode;
  const installHint = text(exec, "installHint", place);
  if (installHint !== undefined) config.installHint = installHint;
  return config;
}
