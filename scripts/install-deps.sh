#!/usr/bin/env bash
# install-deps.sh: install every Debian and npm package s3shard needs to build,
# test and benchmark. Idempotent; runs as root with no prompt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config gcc clang libclang-rt-14-dev clang-format
      libnng-dev libmsgpack-dev libcmocka-dev libcurl4-openssl-dev libssl-dev
      libexpat1-dev libjansson-dev zlib1g-dev libfuse3-dev fuse3
      curl python3 python3-botocore python3-boto3 iproute2
      libopenmpi-dev openmpi-bin nodejs npm s3fs rclone)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere (not dpkg); accept them if they run.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# s3rver: the S3 server the tests and the demo run on loopback.
if [ ! -f "$here/tools/node_modules/s3rver/bin/s3rver.js" ]; then
    mkdir -p "$here/tools"
    (cd "$here/tools" && npm install --no-audit --no-fund --silent)
fi
echo "install-deps: all packages present"
