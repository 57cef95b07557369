#!/usr/bin/env bash
# Builds the Jaeger UI (jaegertracing/jaeger-ui, the React app that Jaeger's release binaries embed) from source
# into ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/jaeger-ui/<version>, for scripts/screenshot-trace.py: the
# `jaeger` program that scripts/build-jaeger.sh builds from the Go module proxy has no UI compiled in (its page
# is a placeholder), and Jaeger serves a built UI from a directory (jaeger_query's `ui.assets_path`).
# A docs tool, not part of the test command. A second run reuses the build. Prints the directory on stdout.
#
# Source: the tag v1.75.0, the UI released with Jaeger v1.75.0 / v2.12.0 (build-jaeger.sh's version), checked
# against its commit. Taken from
#   COVET_JAEGER_UI_SRC=DIR  a local git repository of jaeger-ui holding the tag (a clone or a bare mirror), or
#   COVET_JAEGER_UI_GIT=URL  a git URL to clone it from (default: the project on GitHub).
# Dependencies: `npm ci` from the npm registry, exactly as the tag's package-lock.json pins them. Needs git, Node
# >= 20.19 and npm (the UI's package.json asks for Node 24; its build tool, Vite 7, needs 20.19, and the build
# was checked with Node 20.20). About 500 MB in a scratch directory, removed afterwards; 5 minutes on 2 cores.
set -euo pipefail
JAEGER_UI_VERSION=v1.75.0
JAEGER_UI_COMMIT=d83cb35c682151485818b0d5bbaead44dddade6a
out=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/jaeger-ui/$JAEGER_UI_VERSION
if [ -f "$out/index.html" ]; then
  echo "$out"
  exit 0
fi
say() { echo "jaeger-ui.sh: $*" >&2; }
for tool in git node npm; do
  command -v "$tool" >/dev/null || { say "needs $tool on PATH (scripts/setup.sh installs Node and npm)"; exit 1; }
done
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  say "Node $(node --version) is too old: Vite 7 needs 20.19 or newer"
  exit 1
fi

# The long steps run through `step`, each in its own process group: on Ctrl-C, SIGTERM or a failure the group is
# stopped (SIGTERM, SIGKILL after 10 s: npm takes its time) and the scratch directory removed.
child=
step() {
  setsid "$@" >&2 &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return "$rc"
}
stop_step() {
  [ -n "$child" ] && kill -TERM -- "-$child" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 -- "-$child" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL -- "-$child" 2>/dev/null || true
}
work=$(mktemp -d "${TMPDIR:-/tmp}/covet-jaeger-ui.XXXXXX")
trap 'stop_step; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "${COVET_JAEGER_UI_SRC:-}" ]; then
  repo=$COVET_JAEGER_UI_SRC
  say "source: $JAEGER_UI_VERSION from the repository $repo"
else
  repo=$work/repo
  url=${COVET_JAEGER_UI_GIT:-https://github.com/jaegertracing/jaeger-ui.git}
  say "source: cloning $JAEGER_UI_VERSION from $url"
  step git clone -q --bare --depth 1 --branch "$JAEGER_UI_VERSION" "$url" "$repo"
fi
commit=$(git -C "$repo" rev-parse --verify -q "$JAEGER_UI_VERSION^{commit}") ||
  { say "$repo has no tag $JAEGER_UI_VERSION"; exit 1; }
if [ "$commit" != "$JAEGER_UI_COMMIT" ]; then
  say "tag $JAEGER_UI_VERSION in $repo is commit $commit, expected $JAEGER_UI_COMMIT: refusing to build it"
  exit 1
fi
mkdir "$work/src"
git -C "$repo" archive "$commit" | tar -x -C "$work/src"

cd "$work/src"
# --ignore-scripts: the root's `prepare` (git hooks, then plexus's build) is run by hand below, and no
# dependency needs an install script (esbuild's binary comes as an optional dependency). --engine-strict=false
# overrides the repository's .npmrc, which would refuse Node < 24 (see above).
say "npm ci (about 1400 packages)"
step nice -n 10 npm ci --ignore-scripts --engine-strict=false --no-audit --no-fund --loglevel=error
say "building the plexus graph package, then the UI"
step env -C packages/plexus NODE_ENV=production nice -n 10 npm run --silent build
# Vite directly, not `npm run build`: that script first runs scripts/get-tracking-version.js, whose require()
# fails in this ES-module package (it only names the build for analytics, which stay off).
step env -C packages/jaeger-ui NODE_ENV=production nice -n 10 npx --no-install vite build --logLevel warn
[ -f packages/jaeger-ui/build/index.html ] || { say "the build made no index.html"; exit 1; }
# Built in the scratch directory, then moved: an interrupted build never leaves a half-built cache.
mkdir -p "$(dirname "$out")"
rm -rf "$out.tmp"
mv packages/jaeger-ui/build "$out.tmp"
mv "$out.tmp" "$out"
say "built $(du -sh "$out" | cut -f1) into $out"
echo "$out"
