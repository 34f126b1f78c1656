/**
 * Entry point of `tuzhan-cdc`: importing this module runs the command line (bin/tuzhan-cdc.js
 * imports the compiled dist/cli/main.js; `node --import tsx src/cli/main.ts` runs the source).
 * Tests that want the program without running it import ./program.js instead.
 */
import { register as backfill } from './backfill.js';
import { register as check } from './check.js';
import { register as demo } from './demo.js';
import { register as held } from './held.js';
import { register as mockApi } from './mock-api.js';
import { runCli, type Registrar } from './program.js';
import { register as retryFailed } from './retry-failed.js';
import { register as run } from './run.js';
import { register as status } from './status.js';
import { register as teardown } from './teardown.js';

/**
 * Every command of the CLI, in the order `--help` lists them. A command lives in
 * src/cli/<command>.ts and exports `register(program: Command): void`; add its import here.
 * Expected (docs/design.md, "Interfaces"): run, check, status, retry-failed, backfill, held, teardown,
 * mock-api, demo.
 */
const COMMANDS: readonly Registrar[] = [
  run,
  check,
  status,
  retryFailed,
  backfill,
  held,
  teardown,
  mockApi,
  demo,
];

// `tuzhan-cdc status | head` closes the pipe early: that is the reader's choice, not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await runCli(process.argv.slice(2), COMMANDS, {
  stderr: (text) => process.stderr.write(text),
  debug: Boolean(process.env.DEBUG),
});
if (code === 0) {
  // Let pending output flush; a command that leaves handles open must close them itself.
  process.exitCode = 0;
} else {
  process.exit(code);
}
