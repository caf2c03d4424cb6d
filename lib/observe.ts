/**
 * Logs: one JSON object per line on stderr, with a level and a message. Callers pass only fields
 * that are safe to print; credentials never reach a log call.
 *
 * @module
 */

/** Log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** A structured logger. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing JSON lines at `minimum` level and above. */
export function createLogger(minimum: LogLevel = "info"): Logger {
  const threshold = LOG_LEVELS.indexOf(minimum);
  const write = (level: LogLevel) => (message: string, fields: Record<string, unknown> = {}) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, message };
    // A field never overwrites time, level or message.
    for (const [key, value] of Object.entries(fields)) if (!(key in entry)) entry[key] = value;
    console.error(JSON.stringify(entry));
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** The process-wide logger; its level comes from `OMNI_KUBE_LOG_LEVEL` (default `info`). */
export const logger: Logger = createLogger(
  (LOG_LEVELS as readonly string[]).includes(Deno.env.get("OMNI_KUBE_LOG_LEVEL") ?? "")
    ? Deno.env.get("OMNI_KUBE_LOG_LEVEL") as LogLevel
    : "info",
);

/** What an error says, for a log field or another error's message. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
