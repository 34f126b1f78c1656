/** The package's version, as `--version`, the startup log line and `tuzhan_cdc_build_info` give it. */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function packageVersion(): string {
  // Two levels up from both src/util/ and dist/util/.
  cached ??= (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return cached;
}
