#!/bin/sh
# Builds berth-probe, the agent's runner of COMMAND check probes (berth-probe.c).
# Usage: agent/checks/build.sh [OUT]   (default OUT: dist/agent/checks/berth-probe)
# Exit status 0 also without a C compiler: the checks then spawn each probe from
# the agent's own process (slower; probe-runner.ts picks whichever exists).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../dist/agent/checks/berth-probe"}
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "berth-probe: no C compiler ($cc) found; COMMAND checks will spawn from the agent" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
"$cc" -O2 -Wall -Wextra -o "$tmp" "$here/berth-probe.c"
mv -f "$tmp" "$out"
