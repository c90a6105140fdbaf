#!/usr/bin/env bash
# Runs a test command, passing its output through, and when it fails ends
# with a digest of what failed: the failing tests, their messages, panics and
# time-outs. A failing integration test dumps its servers' logs, thousands of
# lines that would otherwise bury its own messages above a CI log's tail.
#
#   deploy/digest.sh go test ./...
set -uo pipefail

out=$(mktemp "${TMPDIR:-/tmp}/pms-test.XXXXXX")
trap 'rm -f "$out"' EXIT
"$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  printf '\n=== what failed (digest of the %d lines above; exit %d)\n' "$(wc -l <"$out")" "$rc"
  grep -E -e '^\s*--- FAIL' -e '^\s+[A-Za-z0-9_]+_test\.go:[0-9]+: ' -e '^(panic|fatal error):' \
    -e 'test timed out' -e '^FAIL\s' -e 'DATA RACE' "$out" | grep -v '"level":' | cut -c1-400 | head -n 120
fi
exit "$rc"
