#!/usr/bin/env bash
# Line coverage of the engine by the libFuzzer targets (llvm-cov, clang's source-based coverage): builds the
# targets of tests/fuzz with coverage mapping and no sanitizer (preset fuzz-coverage -> build-fuzz-cov), runs each
# for a while from its seeds (tests/fuzz/corpus/NAME) and a working corpus (build-fuzz-cov/corpus/NAME, kept across
# runs; scripts/fuzz.sh's build-fuzz/fuzz-corpus/NAME is read too when it exists), writes each run's raw profile,
# merges them and reports, for the engine's own files (include/covet, src: not llhttp, the system's libraries or
# the targets themselves), region, function and line coverage: per target (of the code compiled into it), per
# subsystem folder and in total over all targets.
# Usage: scripts/fuzz-coverage.sh [seconds-per-target] [targets...]   (default 30 s, every C++ target)
# Output: build-fuzz-cov/coverage/summary.md (the tables), report.txt (llvm-cov's per-file report), NAME.profdata.
# The Python parsers' atheris targets (tests/fuzz/*_fuzz.py) are not measured here. A docs tool: its figures are
# in docs/security.md ("Fuzzing"); not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [seconds-per-target] [targets...]" >&2; exit 2 ;; esac
for tool in clang++ llvm-profdata llvm-cov; do
  command -v "$tool" >/dev/null ||
    { echo "fuzz-coverage: $tool is missing (Debian: apt-get install clang llvm libclang-rt-14-dev)" >&2; exit 1; }
done
cmake --preset fuzz-coverage >/dev/null
cmake --build --preset fuzz-coverage

all=()
for f in tests/fuzz/*_fuzz.cpp; do n=${f##*/}; all+=("${n%_fuzz.cpp}"); done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

out=build-fuzz-cov/coverage
rm -rf "$out/raw"
mkdir -p "$out/raw"
objects=()
for t in "${targets[@]}"; do
  bin=build-fuzz-cov/tests/fuzz/${t}_fuzz
  [ -x "$bin" ] || { echo "fuzz-coverage: no target $t ($bin)" >&2; exit 2; }
  mkdir -p "build-fuzz-cov/corpus/$t"
  dirs=("build-fuzz-cov/corpus/$t" "tests/fuzz/corpus/$t")
  [ -d "build-fuzz/fuzz-corpus/$t" ] && dirs+=("build-fuzz/fuzz-corpus/$t")
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  # %m: one raw file per binary (libFuzzer runs in one process; a crash still writes what it reached).
  LLVM_PROFILE_FILE="$out/raw/$t-%m.profraw" "$bin" -max_total_time="$seconds" -print_final_stats=1 \
    "${dict[@]}" "${dirs[@]}" >"$out/$t.log" 2>&1 || echo "fuzz-coverage: $t stopped early (see $out/$t.log)" >&2
  llvm-profdata merge -sparse "$out/raw/$t"-*.profraw -o "$out/$t.profdata"
  objects+=("$bin")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -n 1)
  echo "fuzz-coverage: $t: ${execs:-?} executions in ${seconds} s"
done
# This run's targets only (not an earlier run's profiles, nor the previous total).
profiles=()
for t in "${targets[@]}"; do profiles+=("$out/$t.profdata"); done
llvm-profdata merge -sparse "${profiles[@]}" -o "$out/all.profdata"

# Only the engine's own sources: everything under include/covet and src of this tree.
ignore='^(/usr/|.*/tests/|.*/build[^/]*/|.*/_deps/)'
object_args=("${objects[0]}")
for o in "${objects[@]:1}"; do object_args+=("-object" "$o"); done
llvm-cov report "${object_args[@]}" -instr-profile="$out/all.profdata" -ignore-filename-regex="$ignore" >"$out/report.txt"
llvm-cov export "${object_args[@]}" -instr-profile="$out/all.profdata" -ignore-filename-regex="$ignore" \
  -summary-only >"$out/all.json"
for t in "${targets[@]}"; do
  llvm-cov export "build-fuzz-cov/tests/fuzz/${t}_fuzz" -instr-profile="$out/$t.profdata" \
    -ignore-filename-regex="$ignore" -summary-only >"$out/$t.json"
done

python3 - "$out" "$seconds" "${targets[@]}" <<'EOF'
import json, os, re, sys
out, seconds, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
root = os.getcwd() + "/"

def totals(path):
    data = json.load(open(path))["data"][0]
    return data["totals"], data["files"]

def pct(part):
    return f"{part['percent']:.1f}% ({part['covered']}/{part['count']})"

lines = [f"Fuzz coverage: each target {seconds} s from its seeds and working corpus (scripts/fuzz-coverage.sh);",
         "regions, functions and lines of the engine's own files (include/covet, src) compiled into the target.", "",
         "| target | executions | lines | functions | regions |", "| --- | ---: | ---: | ---: | ---: |"]
for t in targets:
    tot, _ = totals(f"{out}/{t}.json")
    log = open(f"{out}/{t}.log", errors="replace").read()
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    lines.append(f"| {t} | {execs[-1] if execs else '?'} | {pct(tot['lines'])} | {pct(tot['functions'])} | "
                 f"{pct(tot['regions'])} |")
tot, files = totals(f"{out}/all.json")
lines.append(f"| **all targets** | | {pct(tot['lines'])} | {pct(tot['functions'])} | {pct(tot['regions'])} |")
folders = {}
for f in files:
    name = f["filename"].removeprefix(root)
    parts = name.split("/")
    folder = "/".join(parts[:3]) if parts[0] == "include" and len(parts) > 3 else "/".join(parts[:-1]) or name
    acc = folders.setdefault(folder, [0, 0])
    acc[0] += f["summary"]["lines"]["covered"]
    acc[1] += f["summary"]["lines"]["count"]
lines += ["", "| folder (all targets) | lines |", "| --- | ---: |"]
for folder, (covered, count) in sorted(folders.items()):
    lines.append(f"| {folder} | {100 * covered / max(count, 1):.1f}% ({covered}/{count}) |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
