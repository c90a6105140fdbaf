#!/usr/bin/env bash
# Runs every fuzz target in the module for $FUZZTIME (default 3s) each. New
# targets are found by themselves: every package with a func Fuzz* in a test
# file, every target `go test -list` names there. A crasher is written to the
# package's testdata/fuzz/<target>/ and fails the run.
#
#   FUZZTIME=3s deploy/fuzz.sh
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
cd "$(dirname "$0")/.."

log() { printf 'fuzz: %s\n' "$*" >&2; }

# count prints how many files the corpus directory holds (0 when a target
# has none yet: find would fail, and with pipefail so would the script).
count() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }

failed=0
for dir in $(grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=.pms '^func Fuzz' . | xargs -r -n1 dirname | sort -u); do
  for name in $($GO test -list '^Fuzz' "$dir" | grep '^Fuzz'); do
    corpus="$dir/testdata/fuzz/$name"
    before=$(count "$corpus")
    log "$dir $name for $FUZZTIME"
    if out=$($GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$dir" 2>&1); then
      continue
    fi
    # Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
    # failure when a worker is slow to stop (golang/go#75804, fixed in Go
    # 1.27). That is no finding as long as no crasher was written.
    if [ "$(count "$corpus")" -eq "$before" ] && grep -qx '    context deadline exceeded' <<<"$out"; then
      log "$name: stopped by Go's fuzztime race (golang/go#75804), no crasher found"
      continue
    fi
    printf '%s\n' "$out" >&2
    failed=1
  done
done
exit $failed
