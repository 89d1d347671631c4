#!/usr/bin/env bash
# Vendors the Swagger UI assets the chassis embeds (crates/ms-chassis/src/openapi/assets/):
# fetches the exact npm `swagger-ui-dist` tarball, checks it against the registry's
# sha512 integrity pinned below, and copies the few files the docs page serves, with the
# package's LICENSE and NOTICE, plus gzip copies of the script and the stylesheet. Run it to update: change VERSION and INTEGRITY together
# (`npm view swagger-ui-dist@X dist.integrity`), then update SWAGGER_UI_VERSION in ui.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=5.35.0
INTEGRITY='sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=='
FILES=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png favicon-16x16.png LICENSE NOTICE)
dest=crates/ms-chassis/src/openapi/assets

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
url="https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-$VERSION.tgz"
echo "fetching $url"
curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$url"

want=${INTEGRITY#sha512-}
got=$(openssl dgst -sha512 -binary "$tmp/pkg.tgz" | base64 -w0)
if [ "$got" != "$want" ]; then
    echo "integrity mismatch for swagger-ui-dist $VERSION: expected sha512-$want, got sha512-$got" >&2
    exit 1
fi

tar -xzf "$tmp/pkg.tgz" -C "$tmp"
pkg_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$tmp/package/package.json")
if [ "$pkg_version" != "$VERSION" ]; then
    echo "package.json says $pkg_version, expected $VERSION" >&2
    exit 1
fi
mkdir -p "$dest"
for f in "${FILES[@]}"; do
    cp "$tmp/package/$f" "$dest/$f"
done
# Served gzip-encoded to browsers that accept it (reproducible: no name, no time stamp).
for f in swagger-ui-bundle.js swagger-ui.css; do
    gzip -9 -n -c "$dest/$f" > "$dest/$f.gz"
done
echo "$VERSION" > "$dest/VERSION"
(cd "$dest" && sha256sum "${FILES[@]}" > SHA256SUMS)
echo "vendored swagger-ui-dist $VERSION into $dest:"
ls -l "$dest"
