#!/usr/bin/env bash
# Builds dist/greet-VERSION.tar.gz from src/ with its checksum, and leaves
# build.log next to it (not an artifact).
set -euo pipefail
version="$(cat VERSION)"
rm -rf dist
mkdir -p dist
bash -n src/greet.sh
tar -C src -czf "dist/greet-${version}.tar.gz" .
(cd dist && sha256sum "greet-${version}.tar.gz" >SHA256SUMS)
printf 'built greet %s with %s\n' "${version}" "$(tar --version | head -n 1)" >build.log
cat build.log
