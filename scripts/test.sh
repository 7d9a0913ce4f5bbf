#!/usr/bin/env bash
# test.sh: install what is missing, build with AddressSanitizer and
# UndefinedBehaviorSanitizer, and run every test (README command 2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/install-deps.sh
build=${S3SHARD_TEST_BUILD:-build-test}
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DS3SHARD_WERROR=ON \
      -DS3SHARD_SANITIZER=address,undefined >/dev/null
cmake --build "$build" -j "$jobs"
if command -v clang-format >/dev/null && [ -f .clang-format ]; then
    bash scripts/check-format.sh
fi
# Fuzz targets: a separate clang build, each target run briefly on its corpus.
if [ -d tests/fuzz ] && command -v clang >/dev/null; then
    CC=clang cmake -S . -B "$build-fuzz" -DCMAKE_BUILD_TYPE=Debug -DS3SHARD_BUILD_FUZZ=ON \
        -DS3SHARD_BUILD_TESTS=OFF -DS3SHARD_BUILD_BENCH=OFF -DS3SHARD_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build-fuzz" -j "$jobs"
    bash tests/fuzz/run.sh "$build-fuzz"
fi
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 600
