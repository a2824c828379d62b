#!/usr/bin/env bash
# npm run test:runtimes: the runtime tests under Bun and Deno, against DATABASE_URL.
# Bun and Deno come from npm, pinned, into .tools/ (not devDependencies: about
# 200 MB that no user's npm ci should download), installed once when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN_VERSION=1.4.5
DENO_VERSION=2.9.6
tools="$PWD/.tools"

if [ ! -x "$tools/bin/bun" ] || [ "$("$tools/bin/bun" --version)" != "$BUN_VERSION" ] \
  || [ ! -x "$tools/bin/deno" ] || ! "$tools/bin/deno" --version | grep -q "^deno $DENO_VERSION "; then
  echo "== installing bun $BUN_VERSION and deno $DENO_VERSION into .tools/"
  rm -rf "$tools"
  npm install --no-audit --no-fund --no-save --prefix "$tools" "bun@$BUN_VERSION" "deno@$DENO_VERSION" > /dev/null
  mkdir -p "$tools/bin"
  # The platform packages hold the binaries (bun's own postinstall may or may not have linked one).
  bun=$(ls "$tools"/node_modules/@oven/bun-*/bin/bun 2>/dev/null | head -n 1 || true)
  [ -n "$bun" ] || bun="$tools/node_modules/bun/bin/bun.exe"
  deno=$(ls "$tools"/node_modules/@deno/*/deno 2>/dev/null | head -n 1)
  ln -sf "$bun" "$tools/bin/bun"
  ln -sf "$deno" "$tools/bin/deno"
fi
export PATH="$tools/bin:$PATH"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
echo "== $(bun --version | sed 's/^/bun /'), $(deno --version | head -n 1)"

echo "== Bun"
bash test/runtimes/bun/run.sh

echo "== Deno"
bash test/runtimes/deno/run.sh
