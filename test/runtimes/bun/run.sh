#!/usr/bin/env bash
# The Bun tests (npm run test:runtimes runs this with the pinned bun on PATH),
# against DATABASE_URL:
# - Bun's own SQL types against the storage's client types (bun-types of the same
#   version, installed from npm into .tools/bun-types once, as bun is into .tools/);
# - under `bun test`: the shared conformance suite (test/support/conformance.ts, as it is)
#   for pg's Pool, postgres.js and Bun's SQL, a grammY bot on Bun's SQL, and Bun's
#   real errors against the table in test/unit/error-shapes.test.ts.
# preload.ts gives the shared files their "vitest" (bun:test, plus inject).
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${DATABASE_URL:?the Bun tests need DATABASE_URL, a PostgreSQL server}"
[ -f node_modules/pg/package.json ] || { echo "node_modules is missing: run npm ci first" >&2; exit 1; }
version=$(bun --version)
echo "bun $version"

types=.tools/bun-types
if [ "$(node -p "try { require('./$types/node_modules/bun-types/package.json').version } catch { '' }")" != "$version" ]; then
  echo "-- installing bun-types $version into $types/"
  rm -rf "$types"
  npm install --no-audit --no-fund --no-save --prefix "$types" "bun-types@$version" > /dev/null
fi
echo "-- tsc: Bun's SQL types as PostgresStorage clients (bun-types $version)"
node_modules/.bin/tsc -p test/runtimes/bun/tsconfig.bun-types.json

echo "-- bun test test/runtimes/bun"
bun test --preload ./test/runtimes/bun/preload.ts --timeout 30000 ./test/runtimes/bun/
