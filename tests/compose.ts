/**
 * Compose files checked without Docker: against the Compose specification's JSON schema (the copy
 * in `tests/fixtures/`, whose README names its source), then for the references between services
 * and volumes that Compose itself resolves (`depends_on`, `network_mode: service:NAME`, named
 * volumes), which a schema cannot express.
 *
 * @module
 */
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import { parse } from "yaml";
import schema from "./fixtures/compose-spec.json" with { type: "json" };

/** The parts of a service that the checks here and the deployment tests read. */
export interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target: number | string; published?: number | string })[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  network_mode?: string;
  healthcheck?: { test?: string | string[] };
  [key: string]: unknown;
}

/** A Compose file that passed {@linkcode composeProblems}. */
export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  [key: string]: unknown;
}

// strictTypes is off because the specification's schema puts `additionalProperties` beside `oneOf`
// without `type: object`; the other strict checks (unknown keywords, formats) stay on, so a schema
// this validator misreads fails loudly instead of passing everything.
const ajv = new Ajv2020({
  allErrors: true,
  strict: true,
  strictTypes: false,
  allowUnionTypes: true,
});
const matchesSchema = ajv.compile<ComposeFile>(schema);

/** `/services/worker/ports/0` as `services.worker.ports[0]`; the document itself as `(top level)`. */
function location(pointer: string): string {
  if (pointer === "") return "(top level)";
  return pointer.slice(1).split("/").map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((part, i) => /^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`).join("");
}

function describe(error: ErrorObject): string {
  const where = location(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return `${where}: unknown key "${params.additionalProperty}"`;
    case "enum":
      return `${where}: ${error.message} (${JSON.stringify(params.allowedValues)})`;
    default:
      return `${where}: ${error.message}`;
  }
}

/** Names a service's short or long volume entries use as named volumes (not bind mounts). */
function namedVolumes(service: ComposeService): string[] {
  const names: string[] = [];
  for (const volume of service.volumes ?? []) {
    if (typeof volume === "string") {
      const parts = volume.split(":");
      // A bare container path is an anonymous volume; a source starting with . / or ~ is a host path.
      if (parts.length > 1 && !/^[./~]/.test(parts[0]) && !/^\$\{/.test(parts[0])) {
        names.push(parts[0]);
      }
    } else if ((volume.type ?? "volume") === "volume" && volume.source) {
      names.push(volume.source);
    }
  }
  return names;
}

/** Services a service depends on, in either form of `depends_on`. */
function dependencies(service: ComposeService): string[] {
  const dependsOn = service.depends_on ?? [];
  return Array.isArray(dependsOn) ? dependsOn : Object.keys(dependsOn);
}

/**
 * Everything wrong with `document` as a Compose file, one readable line each (empty when valid):
 * schema violations first; the references are checked only once the shape is right.
 */
export function composeProblems(document: unknown): string[] {
  if (!matchesSchema(document)) {
    return [...new Set((matchesSchema.errors ?? []).map(describe))];
  }
  const problems: string[] = [];
  const services = document.services ?? {};
  const declaredVolumes = new Set(Object.keys(document.volumes ?? {}));
  for (const [name, service] of Object.entries(services)) {
    for (const dependency of dependencies(service)) {
      if (!(dependency in services)) {
        problems.push(`services.${name}.depends_on: no service named "${dependency}"`);
      }
    }
    const sharedWith = service.network_mode?.match(/^service:(.+)$/)?.[1];
    if (sharedWith !== undefined && !(sharedWith in services)) {
      problems.push(`services.${name}.network_mode: no service named "${sharedWith}"`);
    }
    for (const volume of namedVolumes(service)) {
      if (!declaredVolumes.has(volume)) {
        problems.push(
          `services.${name}.volumes: named volume "${volume}" is not declared under top-level volumes`,
        );
      }
    }
  }
  return problems;
}

/** Parses and checks a Compose file; throws an error listing every problem, naming `file`. */
export function parseCompose(text: string, file = "the Compose file"): ComposeFile {
  let document: unknown;
  try {
    // Compose files may use YAML merge keys (`<<: *defaults`).
    document = parse(text, { merge: true });
  } catch (error) {
    throw new Error(`${file} is not valid YAML: ${(error as Error).message}`);
  }
  const problems = composeProblems(document);
  if (problems.length > 0) {
    throw new Error(
      `${file} is not a valid Compose file:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }
  return document as ComposeFile;
}
