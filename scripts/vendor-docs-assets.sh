#!/usr/bin/env bash
# Vendors the assets of the interactive API docs (/docs: Swagger UI, /redoc: ReDoc) into the Python package,
# bindings/python/covet/openapi/static/, from the npm registry — so the docs pages work offline, from the wheel.
#   scripts/vendor-docs-assets.sh                       re-download the pinned versions below and check them
#   SWAGGER_UI_VERSION=5.x.y REDOC_VERSION=2.x.y scripts/vendor-docs-assets.sh    update: then edit the pins here
# Each tarball (`npm pack`) is checked against the sha512 integrity the registry publishes for that version
# (`npm view <pkg>@<version> dist.integrity`) before anything is extracted; only the files the pages load are
# kept, with their licences. The versions are also written into covet/openapi/docs.py (the `?v=` of the
# default asset URLs, which makes browsers fetch the new files after an update) and static/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
swagger_version=${SWAGGER_UI_VERSION:-5.35.0}
redoc_version=${REDOC_VERSION:-2.5.4}
static=bindings/python/covet/openapi/static
docs_py=bindings/python/covet/openapi/docs.py

command -v npm >/dev/null || { echo "vendor-docs-assets: npm not found (install Node.js)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PACKAGE VERSION: the tarball, checked against the registry's sha512, unpacked into $tmp/PACKAGE
fetch() {
    local pkg=$1 version=$2 want have tgz
    want=$(npm view "$pkg@$version" dist.integrity)
    case "$want" in
        sha512-*) ;;
        *) echo "vendor-docs-assets: $pkg@$version: the registry gives no sha512 integrity ('$want')" >&2; exit 1 ;;
    esac
    tgz=$(cd "$tmp" && npm pack --silent "$pkg@$version")
    have="sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)"
    if [ "$have" != "$want" ]; then
        echo "vendor-docs-assets: $pkg@$version: tarball integrity $have, the registry says $want" >&2
        exit 1
    fi
    mkdir -p "$tmp/$pkg"
    tar -xzf "$tmp/$tgz" -C "$tmp/$pkg" --strip-components=1
    echo "$pkg@$version: integrity $want OK" >&2
    printf '%s' "$want"
}

swagger_integrity=$(fetch swagger-ui-dist "$swagger_version")
redoc_integrity=$(fetch redoc "$redoc_version")

rm -rf "$static/swagger-ui" "$static/redoc"
mkdir -p "$static/swagger-ui" "$static/redoc"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png oauth2-redirect.js \
         LICENSE NOTICE; do
    cp "$tmp/swagger-ui-dist/$f" "$static/swagger-ui/$f"
done
for f in bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE; do
    cp "$tmp/redoc/$f" "$static/redoc/$(basename "$f")"
done

sed -i -E "s/^SWAGGER_UI_VERSION = \"[^\"]*\"/SWAGGER_UI_VERSION = \"$swagger_version\"/; \
s/^REDOC_VERSION = \"[^\"]*\"/REDOC_VERSION = \"$redoc_version\"/" "$docs_py"

cat > "$static/README.md" <<EOF
# Vendored assets of the interactive API docs

Served by a CovetPy app under \`docs_assets_url\` (default \`/_covet/docs\`) for \`/docs\` and \`/redoc\`, so the
docs pages need no CDN: they work offline and behind firewalls. Written by \`scripts/vendor-docs-assets.sh\` —
do not edit by hand.

| directory | npm package | version | licence | tarball integrity (npm registry) |
|---|---|---|---|---|
| \`swagger-ui/\` | [swagger-ui-dist](https://www.npmjs.com/package/swagger-ui-dist) | $swagger_version | Apache-2.0 (\`LICENSE\`, \`NOTICE\`; bundled third-party notices: \`swagger-ui-bundle.js.LICENSE.txt\`) | \`$swagger_integrity\` |
| \`redoc/\` | [redoc](https://www.npmjs.com/package/redoc) | $redoc_version | MIT (\`LICENSE\`; bundled third-party notices: \`redoc.standalone.js.LICENSE.txt\`) | \`$redoc_integrity\` |

Files kept, unchanged from the tarballs: \`swagger-ui-bundle.js\`, \`swagger-ui.css\`, \`favicon-32x32.png\` (also
ReDoc's page icon), \`oauth2-redirect.js\` (inlined into the page \`get_swagger_ui_oauth2_redirect_html\` generates)
and \`redoc.standalone.js\` (from \`bundles/\`), plus the licence files.

To update: \`SWAGGER_UI_VERSION=5.x.y REDOC_VERSION=2.x.y scripts/vendor-docs-assets.sh\`, then set the same
versions as the defaults at the top of the script, run the docs tests (\`tests/python/test_docs_ui.py\`, which
drive Chromium) and commit \`static/\` with \`docs.py\`.
EOF
echo "vendored swagger-ui-dist $swagger_version and redoc $redoc_version into $static" >&2
