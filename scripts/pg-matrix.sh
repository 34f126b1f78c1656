#!/usr/bin/env bash
# `npm run test:pg-matrix`: the replication-critical integration tests on every supported PostgreSQL
# major, one vitest run per major (TUZHAN_TEST_PG_MAJOR picks the server binaries: Debian's where
# installed, else the pg-matrix-<major> dev dependency). Arguments go to vitest, e.g. a test name.
# TUZHAN_PG_MATRIX="17 18" narrows the majors.
#
# The set is what depends on the server's own behaviour: slot creation and its exported snapshot,
# the stream and its positions, invalidated and lost slots, restarts and failover, logical messages
# (backfill watermarks), TOAST, TRUNCATE, schema changes, replica identity, publications made by a
# DBA, the status schema's migrations and a role with only the documented grants. Tests of the
# platform, the CLI's output and the console run once, in `npm test`.
set -uo pipefail
cd "$(dirname "$0")/.."

files=(
  test/integration/harness.test.ts
  test/integration/migrate.test.ts
  test/integration/status-store.test.ts
  test/integration/stream.test.ts
  test/integration/first-start.test.ts
  test/integration/pipeline.test.ts
  test/integration/pipeline-semantics.test.ts
  test/integration/crash-safety.test.ts
  test/integration/sent-position.test.ts
  test/integration/slot-invalidated.test.ts
  test/integration/resync.test.ts
  test/integration/backfill.test.ts
  test/integration/db-restart.test.ts
  test/integration/publication-dba.test.ts
  test/integration/claims-toast-gone.test.ts
  test/integration/claims-truncate.test.ts
  test/integration/claims-schema-change.test.ts
  test/integration/claims-delete-lookup.test.ts
  test/integration/claims-snapshot-writes.test.ts
  test/integration/claims-wal-sender-timeout.test.ts
)
for f in test/integration/failover.test.ts test/integration/least-privilege.test.ts test/integration/back-on-stream.test.ts; do
  [ -e "$f" ] && files+=("$f")
done

failed=()
summary=()
for major in ${TUZHAN_PG_MATRIX:-14 15 16 17 18}; do
  echo "=== PostgreSQL $major"
  start=$(date +%s)
  if TUZHAN_TEST_PG_MAJOR="$major" npx vitest run --project integration "${files[@]}" "$@"; then
    result=passed
  else
    result=FAILED
    failed+=("$major")
  fi
  summary+=("PostgreSQL $major: $result in $(($(date +%s) - start)) s")
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "the matrix failed on PostgreSQL ${failed[*]}" >&2
  exit 1
fi
