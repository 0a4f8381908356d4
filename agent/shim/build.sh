#!/bin/sh
# Builds berth-shim, the per-container supervisor of the linux containerizer.
# Usage: agent/shim/build.sh [OUT]   (default OUT: dist/agent/shim/berth-shim)
# The containerizer looks for the binary at dist/agent/shim/berth-shim (next to
# its compiled JS), or at $BERTH_SHIM. Exit status 0 also when no C compiler is
# present: the containerizer then falls back to an unshare/setpriv shell path
# and logs a warning, so `npm run build` must not fail on such hosts.
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
