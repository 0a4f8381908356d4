#!/bin/sh
# Builds berth-shim, the per-container supervisor of both containerizers,
# statically linked where the C library allows (a supervisor is exec'd per
# task: a static binary maps and faults in far fewer pages).
# Usage: agent/shim/build.sh [OUT]   (default OUT: dist/agent/shim/berth-shim)
# The containerizers look for the binary at dist/agent/shim/berth-shim (next to
# their compiled JS), or at $BERTH_SHIM. Exit status 0 also when no C compiler is
# present: the posix containerizer then uses its shell engines and the linux one
# refuses to start, naming the missing compiler, so `npm run build` must not fail.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../dist/agent/shim/berth-shim"}
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "berth-shim: no C compiler ($cc) found; linux containerizer will use the shell fallback" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
"$cc" -O2 -Wall -Wextra -static -o "$tmp" "$here/berth-shim.c" 2>/dev/null || "$cc" -O2 -Wall -Wextra -o "$tmp" "$here/berth-shim.c"
mv -f "$tmp" "$out"
