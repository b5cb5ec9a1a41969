#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, then merges what it found into the
# committed corpus (fuzz/corpus/TARGET/, replayed by CI as ordinary tests; kept to a set cover of
# the edges reached) and prints one line per target for docs/reliability.md. Needs the nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
#
#   tools/fuzz.sh [SECONDS] [TARGET...]      e.g. tools/fuzz.sh 600, or tools/fuzz.sh 60 scenario
#   FUZZ_JOBS=2 tools/fuzz.sh 600            two targets at a time
#
# Crashes (panics, hangs past 10 s, more than 2 GiB) land in fuzz/artifacts/TARGET/; replay one
# with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(config scenario vary objective safetensors gguf); fi
jobs=${FUZZ_JOBS:-1}

cargo +nightly fuzz build -O
mkdir -p work logs

fuzz_one() {
  local t=$1
  mkdir -p "work/$t"
  cp -n "corpus/$t"/* "work/$t/" 2>/dev/null || true
  local rc=0 started=$SECONDS
  # The working corpus grows freely; only inputs that add coverage are merged back below.
  cargo +nightly fuzz run -O "$t" "work/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 >"logs/$t.log" 2>&1 || rc=$?
  local took=$((SECONDS - started))
  # The committed corpus stays small: a set cover of the edges reached (hit counts and
  # comparison features ignored), plus the named seeds and crash regressions.
  local merged="work/$t.merged"
  rm -rf "$merged" && mkdir -p "$merged"
  if cargo +nightly fuzz run -O "$t" "$merged" "work/$t" "corpus/$t" -- -set_cover_merge=1 -use_counters=0 \
    -use_cmp=0 -use_value_profile=0 >"logs/$t.merge.log" 2>&1; then
    find "corpus/$t" -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}' -exec cp {} "$merged/" \;
    rm -rf "corpus/$t" && mv "$merged" "corpus/$t"
  fi
  local execs crashes
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "fuzz: $t  ${took} s  ${execs} executions  exit ${rc}  ${crashes} artifacts  corpus $(ls "corpus/$t" | wc -l) files"
}

running=0
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
