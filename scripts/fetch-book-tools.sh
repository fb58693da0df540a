#!/usr/bin/env bash
# Puts mdBook into target/tools/mdbook/bin/ for tests/book.rs (`mdbook build book`), compiled
# from crates.io with its locked dependencies and without its default features: the tests only
# run `mdbook build`, so the live-reload server and the search index are left out, which halves
# the compile on 2 cores. Kept when present.
set -euo pipefail
cd "$(dirname "$0")/.."
MDBOOK_VERSION=0.5.4
root=target/tools/mdbook
if ! "$root/bin/mdbook" --version 2>/dev/null | grep -qx "mdbook v$MDBOOK_VERSION"; then
  cargo install mdbook --version "$MDBOOK_VERSION" --locked --no-default-features --root "$root"
fi
"$root/bin/mdbook" --version
