#!/usr/bin/env bash
# dataset_cli_test.sh: `s3shard spec check`, `snapshot create|show|verify` and
# `plan` on a local directory source: exit codes, messages, and that the plans
# of every rank are disjoint, complete and deterministic.
set -euo pipefail
S3SHARD=${S3SHARD_BUILD_DIR:?}/s3shard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/data/a/b"
for i in $(seq 1 40); do head -c $((i * 37)) /dev/zero >"$work/data/f$i"; done
for i in 1 2 3; do echo $i >"$work/data/a/b/n$i"; done
cat >"$work/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "ShuffleConfig": {"Seed": 11},
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$work/data", "FileSystemType": "EFS"}}},
  {"ChannelName": "all",
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$work/data", "FileSystemType": "EFS"}}}],
 "S3Shard": {"StateDir": "$work/state", "Epochs": 2,
   "Channels": {"train": {"Distribution": "ShardedByS3Key", "BalanceBy": "bytes", "ShardTargetBytes": 0}}}}
JSON

# spec check: resolved output, errors with where
"$S3SHARD" spec check "$work/job.json" >"$work/resolved.json"
grep -q '"LeaseSeconds": 60' "$work/resolved.json" || fail "defaults not filled in"
grep -q '"Distribution": "ShardedByS3Key"' "$work/resolved.json" || fail "override lost"
"$S3SHARD" spec check "$work/resolved.json" >/dev/null || fail "resolved spec does not check"
printf '{"InputDataConfig": [\n  {"ChannelName": "x",}]}' >"$work/bad.json"
if "$S3SHARD" spec check "$work/bad.json" 2>"$work/err"; then fail "bad JSON accepted"; fi
grep -q 'bad.json:2:' "$work/err" || fail "no line in: $(cat "$work/err")"
printf '{"InputDataConfig": [{"ChannelName": "x", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/p"}}, "Seed": 1}]}' >"$work/bad2.json"
if "$S3SHARD" spec check "$work/bad2.json" 2>"$work/err"; then fail "unknown key accepted"; fi
grep -q 'unknown key "Seed" at \$.InputDataConfig\[0\]' "$work/err" || fail "$(cat "$work/err")"
set +e; "$S3SHARD" spec 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "usage error should exit 2, got $rc"

# snapshot create / show / verify
"$S3SHARD" snapshot create --source "$work/data" --type Directory --out "$work/s.snap" >"$work/sum"
grep -q 'entries: 43' "$work/sum" || fail "$(cat "$work/sum")"
hash=$(awk '/sha256/ {print $2}' "$work/sum")
"$S3SHARD" snapshot show "$work/s.snap" --keys | grep -q '^a/b/n1	2	$' || fail "show --keys"
"$S3SHARD" snapshot verify "$work/s.snap" --hash "$hash" | grep -q ': ok' || fail "verify"
if "$S3SHARD" snapshot verify "$work/s.snap" --hash 00 2>/dev/null; then fail "wrong hash accepted"; fi
cp "$work/s.snap" "$work/bad.snap"
printf 'X' | dd of="$work/bad.snap" bs=1 seek=200 conv=notrunc 2>/dev/null
if "$S3SHARD" snapshot verify "$work/bad.snap" 2>"$work/err"; then fail "damaged snapshot accepted"; fi
grep -q 'checksum mismatch' "$work/err" || fail "$(cat "$work/err")"
"$S3SHARD" snapshot create --job "$work/job.json" --channel train >/dev/null
[ -f "$work/state/snapshots/train.snap" ] || fail "job snapshot not cached in the state dir"

# plan: every rank's share, for several world sizes: disjoint and complete
"$S3SHARD" snapshot show "$work/s.snap" --keys | tail -n +6 | cut -f1 | sort >"$work/all"
for world in 1 2 3 7 64; do
    : >"$work/union"
    for ((r = 0; r < world; r++)); do
        "$S3SHARD" plan --job "$work/job.json" --channel train --epoch 1 --rank $r --world-size $world >>"$work/union"
    done
    sort "$work/union" | uniq -d | grep -q . && fail "world $world: a key in two shares"
    sort "$work/union" | cmp -s - "$work/all" || fail "world $world: union is not the dataset"
done
# deterministic, and the same from the environment as from flags
a=$("$S3SHARD" plan --job "$work/job.json" --channel train --epoch 1 --rank 2 --world-size 4)
b=$(OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=4 "$S3SHARD" plan --job "$work/job.json" --channel train --epoch 1)
c=$(SLURM_PROCID=2 SLURM_NTASKS=4 "$S3SHARD" plan --job "$work/job.json" --channel train --epoch 1 --snapshot "$work/s.snap")
[ "$a" = "$b" ] && [ "$a" = "$c" ] || fail "plan differs between flags, Open MPI env and --snapshot"
d=$("$S3SHARD" plan --job "$work/job.json" --channel train --epoch 0 --rank 2 --world-size 4)
[ "$a" != "$d" ] || fail "epochs 0 and 1 gave the same share"
# FullyReplicated: everything, in snapshot order (no ShuffleConfig)
"$S3SHARD" plan --job "$work/job.json" --channel all --epoch 0 --rank 3 --world-size 4 >"$work/full"
"$S3SHARD" snapshot show "$work/s.snap" --keys | tail -n +6 | cut -f1 | cmp -s - "$work/full" || fail "FullyReplicated share"
# json format
"$S3SHARD" plan --job "$work/job.json" --channel train --epoch 1 --rank 0 --world-size 2 --format json >"$work/p.json"
/usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['world_size']==2 and d['object_count']==len(d['objects'])" "$work/p.json" || fail "json output"
# errors: no topology, unknown channel, bad flags
if env -u RANK -u OMPI_COMM_WORLD_RANK -u PMI_RANK -u SLURM_PROCID "$S3SHARD" plan --job "$work/job.json" --channel train --epoch 0 --resource-config /nonexistent 2>"$work/err"; then fail "no topology accepted"; fi
grep -q 'no rank and world size' "$work/err" || fail "$(cat "$work/err")"
if "$S3SHARD" plan --job "$work/job.json" --channel nope --epoch 0 --rank 0 --world-size 1 2>"$work/err"; then fail "unknown channel"; fi
grep -q 'no channel "nope"' "$work/err" || fail "$(cat "$work/err")"
set +e; "$S3SHARD" plan --job "$work/job.json" --channel train --epoch 0 --rank 4 --world-size 4 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "rank >= world size should be a usage error"
# a cached snapshot of another source is refused, not used
sed "s#$work/data\"#$work/data/a\"#" "$work/job.json" >"$work/job2.json"
if "$S3SHARD" plan --job "$work/job2.json" --channel train --epoch 0 --rank 0 --world-size 1 2>"$work/err"; then fail "stale cache used"; fi
grep -q 'was made from' "$work/err" || fail "$(cat "$work/err")"
echo "dataset CLI: ok"
