#!/usr/bin/env bash
# Builds the libFuzzer targets (preset fuzz: clang, -fsanitize=fuzzer,address,undefined -> build-fuzz) and
# runs each for a while, from its seeds (tests/fuzz/corpus/NAME, read only) and a working corpus that grows
# across runs (build-fuzz/fuzz-corpus/NAME), with its dictionary (tests/fuzz/NAME.dict) if it has one.
# Fails if any target finds a crash, leak, timeout or sanitizer report: the input is then in
# build-fuzz/fuzz-artifacts/ (reproduce: build-fuzz/tests/fuzz/NAME_fuzz FILE). The Python parsers' targets
# (tests/fuzz/NAME_fuzz.py) run under atheris with .venv's Python and the package's sources. Prints per target the
# executions, libFuzzer's coverage figures (cov: edges, ft: features) and the corpus size.
# Usage: scripts/fuzz.sh [seconds-per-target] [targets...]   (default 60 s, all targets)
#   COVET_FUZZ_ROUNDS=N  round-robin N times over the targets (a long run: the corpora carry over)
#   COVET_FUZZ_NICE=N    run the fuzzers under nice -n N (default 0)
#   COVET_FUZZ_JOBS=N    run N targets at a time (default 1; scripts/test.sh runs two, one per core)
# scripts/test.sh runs `COVET_FUZZ_JOBS=2 scripts/fuzz.sh 8`: every target a few seconds, failing the test command on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [seconds-per-target] [targets...]" >&2; exit 2 ;; esac

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing (Debian: apt-get install clang libclang-rt-14-dev; scripts/setup.sh does)" >&2
  exit 1
fi
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

all=()
for f in tests/fuzz/*_fuzz.cpp tests/fuzz/*_fuzz.py; do n=${f##*/}; all+=("${n%_fuzz.*}"); done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build-fuzz/fuzz-artifacts build-fuzz/fuzz-logs
for t in "${targets[@]}"; do  # every target exists before any runs
  if [ -f "tests/fuzz/${t}_fuzz.py" ]; then  # a Python parser: atheris (requirements-dev.txt) in .venv
    .venv/bin/python -c 'import atheris' 2>/dev/null ||
      { echo "fuzz: $t needs atheris in .venv (scripts/setup.sh installs requirements-dev.txt)" >&2; exit 2; }
  elif [ ! -x "build-fuzz/tests/fuzz/${t}_fuzz" ]; then
    echo "fuzz: no target $t (have: ${all[*]})" >&2
    exit 2
  fi
done

# One target for `seconds`, its summary line printed; its name appended to build-fuzz/fuzz-failed when it fails.
run_target() {
  local t=$1 round=$2 run args log status execs last
  if [ -f "tests/fuzz/${t}_fuzz.py" ]; then
    run=(env PYTHONPATH=bindings/python .venv/bin/python "tests/fuzz/${t}_fuzz.py")
  else
    run=("build-fuzz/tests/fuzz/${t}_fuzz")
  fi
  mkdir -p "build-fuzz/fuzz-corpus/$t"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="build-fuzz/fuzz-artifacts/${t}-")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  log=build-fuzz/fuzz-logs/$t.log
  if nice -n "${COVET_FUZZ_NICE:-0}" "${run[@]}" "${args[@]}" "build-fuzz/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    echo "$t" >>build-fuzz/fuzz-failed
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
  printf 'fuzz: %-14s %-6s execs %-10s %s (round %d, %ss)\n' "$t" "$status" "${execs:-?}" "${last:-}" "$round" "$seconds"
  if [ "$status" = FAILED ]; then
    grep -E 'ERROR|SUMMARY|fuzz property broken|Test unit written' "$log" | head -20 >&2 || true
  fi
}

rm -f build-fuzz/fuzz-failed
rounds=${COVET_FUZZ_ROUNDS:-1}
jobs=${COVET_FUZZ_JOBS:-1}
case "$jobs" in ''|*[!0-9]*|0) echo "fuzz: COVET_FUZZ_JOBS must be a positive number, not '$jobs'" >&2; exit 2 ;; esac
for ((round = 1; round <= rounds; round++)); do
  # `jobs` lanes, each running every jobs-th target in turn (a target's corpus is only ever used by one lane).
  for ((lane = 0; lane < jobs; lane++)); do
    (
      for ((i = lane; i < ${#targets[@]}; i += jobs)); do run_target "${targets[i]}" "$round"; done
    ) &
  done
  wait
done
if [ -s build-fuzz/fuzz-failed ]; then
  echo "fuzz: FAILED: $(sort -u build-fuzz/fuzz-failed | tr '\n' ' ')(logs in build-fuzz/fuzz-logs, inputs in build-fuzz/fuzz-artifacts)" >&2
  exit 1
fi
