#!/usr/bin/env bash
# Asset checks of stored partitions, for CI: run it after `./dev demo` has materialized the
# sample range. Runs only the checks (nothing is re-materialized), prints one line per layer and
# the failing checks by name, and exits 1 when a blocking (error-severity) check fails, 2 when the
# run config is missing or invalid.
#
#   .ci/checks.sh [--config FILE] [--from YYYY-MM-DD --to YYYY-MM-DD] [--select LAYER ...]
#
# Defaults: configs/main.yaml and its start..end, i.e. exactly what `./dev demo` stored.
# ENERGY_ASSETS_CLI may name the energy-assets executable (default: .venv's, else PATH's).
set -euo pipefail
cd "$(dirname "$0")/.."

cli=${ENERGY_ASSETS_CLI:-}
if [ -z "$cli" ]; then
  if [ -x .venv/bin/energy-assets ]; then
    cli=.venv/bin/energy-assets
  elif command -v energy-assets >/dev/null; then
    cli=$(command -v energy-assets)
  else
    echo "error: energy-assets not found; run ./dev demo first (it creates .venv)" >&2
    exit 2
  fi
fi

config=configs/main.yaml
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

echo "asset checks on stored partitions: config $config ${args[*]:-(its start..end)}"
exec "$cli" --config "$config" checks "${args[@]}"
