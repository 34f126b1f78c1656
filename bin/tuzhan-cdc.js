#!/usr/bin/env node
// Entry point of the `tuzhan-cdc` command: the compiled CLI lives in dist/ (built by `npm run build`,
// which `npm install` runs through the `prepare` script).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('tuzhan-cdc: not built yet; run `npm run build` (or `npm install`) first');
    process.exit(1);
  }
  throw err;
});
