/**
 * The release of this code, and the order of releases.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** This code's release (deno.json's `version`): what `migrate` installs. */
export const RELEASE: string = config.version;

/**
 * Compares two releases `MAJOR.MINOR.PATCH` numerically: negative when `a` is older than `b`,
 * zero when equal, positive when newer. A pre-release or build suffix is ignored.
 */
export function compareReleases(a: string, b: string): number {
  const parts = (release: string) => {
    const match = /^(\d+)\.(\d+)\.(\d+)/.exec(release);
    if (!match) throw new Error(`"${release}" is not a release number (MAJOR.MINOR.PATCH)`);
    return match.slice(1).map(Number);
  };
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
