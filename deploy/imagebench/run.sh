#!/usr/bin/env bash
# run.sh builds imgproxy from a local checkout (IMGPROXY_SRC) unless
# IMGPROXY_BIN points at a binary, checks that vipsthumbnail is there, and
# runs imagebench with ARGS. It installs nothing: it says what is missing.
set -euo pipefail
GO=${GO:-go}
missing=0
command -v vipsthumbnail >/dev/null || { echo "missing: vipsthumbnail (Debian libvips-tools; make deps)"; missing=1; }
pkg-config --exists vips || { echo "missing: libvips headers (Debian libvips-dev; make deps)"; missing=1; }
if [ -z "${IMGPROXY_BIN:-}" ]; then
  if [ -z "${IMGPROXY_SRC:-}" ] || [ ! -f "$IMGPROXY_SRC/cli/main.go" ]; then
    echo "missing: IMGPROXY_SRC, a checkout of github.com/imgproxy/imgproxy (v4, with cli/), or IMGPROXY_BIN, its binary"
    missing=1
  else
    IMGPROXY_BIN=$PWD/bin/imgproxy
    (cd "$IMGPROXY_SRC" && nice -n 10 $GO build -o "$IMGPROXY_BIN" ./cli)
  fi
fi
[ $missing = 0 ] || exit 1
$GO build -o bin/imagebench ./deploy/imagebench
exec nice -n 10 bin/imagebench -imgproxy "$IMGPROXY_BIN" "$@"
