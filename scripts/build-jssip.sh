#!/bin/sh
# Rebuilds agent_console/static/vendor/jssip/ from the npm registry: JsSIP ships CommonJS only, so it is
# bundled (with debug, ms, events and sdp-transform) into one minified file that defines the global JsSIP.
# The console loads it from the CTI's own server, never from a CDN.
#   scripts/build-jssip.sh [version]      (needs node and npm)
set -eu
VERSION=${1:-3.13.8}
OUT=$(cd "$(dirname "$0")/.." && pwd)/agent_console/static/vendor/jssip
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
cd "$BUILD"
npm init -y >/dev/null
npm install --no-audit --no-fund "jssip@$VERSION" esbuild@0.27 >/dev/null
./node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --minify --format=iife \
  --global-name=JsSIP --target=es2019 --outfile="$OUT/jssip.min.js"
{
  echo "JsSIP $VERSION (https://jssip.net), bundled with its dependencies for the browser. Their licenses follow."
  for d in jssip debug ms events sdp-transform; do
    v=$(node -p "require('./node_modules/$d/package.json').version")
    printf '\n==============================================================================\n%s %s\n' "$d" "$v"
    printf '==============================================================================\n'
    cat node_modules/$d/LICENSE* node_modules/$d/license* 2>/dev/null || true
  done
} > "$OUT/LICENSE"
echo "wrote $OUT/jssip.min.js and $OUT/LICENSE"
