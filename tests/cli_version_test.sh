#!/usr/bin/env bash
# The s3shard program runs, prints its version and rejects unknown commands.
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
out=$("$bin" version)
[[ "$out" =~ ^s3shard\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "bad version output: $out"; exit 1; }
if "$bin" no-such-command 2>/dev/null; then echo "unknown command accepted"; exit 1; fi
"$bin" --help | grep -q "usage: s3shard"
