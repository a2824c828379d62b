#!/usr/bin/env bash
# The Deno tests (npm run test:runtimes runs this with the pinned deno on PATH):
# the JSR checks on the source, then the shared conformance suite, a grammY bot
# and the source's own exports under `deno test`, against DATABASE_URL.
#
# Offline: npm packages resolve from this repo's node_modules (npm ci first),
# nothing is fetched from npm, JSR or deno.land, and no deno.lock is written.
# No --sloppy-imports anywhere: the source's .ts specifiers are what Deno and JSR load.
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${DATABASE_URL:?the Deno tests need DATABASE_URL, a PostgreSQL server}"
[ -f node_modules/pg/package.json ] || { echo "node_modules is missing: run npm ci first" >&2; exit 1; }
deno --version | head -n 1

echo "-- deno check src/index.ts"
deno check src/index.ts

echo "-- deno lint src test/runtimes/deno"
deno lint src test/runtimes/deno

# --no-npm: the source imports no npm package; without it deno doc also walks the
# @types/node that tsconfig.json names for the tests, and warns about its references.
echo "-- deno doc --lint src/index.ts"
deno doc --lint --no-npm src/index.ts

# --allow-dirty: the check must not depend on git's state; a clean checkout needs no flag.
echo "-- deno publish --dry-run (jsr.json)"
deno publish --dry-run --allow-dirty

# The version JSR would publish is npm's (test/package-versions.test.ts checks the same under vitest).
package_version=$(node -p 'require("./package.json").version')
jsr_version=$(node -p 'require("./jsr.json").version')
[ "$package_version" = "$jsr_version" ] || { echo "jsr.json has version $jsr_version, package.json $package_version" >&2; exit 1; }

# import_map.json maps "vitest" to the shim and the npm packages to npm: specifiers;
# --node-modules-dir=manual resolves them from node_modules instead of downloading.
# Permissions: the network (the database, and the local fake Bot API), the
# environment (DATABASE_URL; pg reads PG* variables), and reading the repo (PGlite's data files).
echo "-- deno test test/runtimes/deno"
deno test \
  --import-map test/runtimes/deno/import_map.json \
  --node-modules-dir=manual \
  --no-lock \
  --allow-net --allow-env --allow-read=. \
  test/runtimes/deno/
