#!/usr/bin/env bash
# Runs the whole suite N times in a row (default 10) while a CPU burner keeps every core busy, and lists
# each test that failed at least once. A test that depends on the wall clock or on the machine's speed
# shows up here long before it turns a CI run red. Usage: npm run test:stress [-- RUNS [TEST_FILE...]]
# (test files given: only those, e.g. the ones a change touches).
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
files=("${@:2}")
out="$(mktemp -d "${TMPDIR:-/tmp}/k2-stress-XXXX")"
burners=()
for _ in $(seq 1 "$(nproc)"); do
  ( while :; do :; done ) &
  burners+=("$!")
done
# The burners stop with the script, however it ends; a signal ends it (not just the current run).
trap 'kill "${burners[@]}" 2>/dev/null' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed_runs=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if npx vitest run "${files[@]}" --reporter=json --outputFile="$out/run-$i.json" >"$out/run-$i.log" 2>&1; then
    echo "run $i/$runs: passed in $(( $(date +%s) - start )) s"
  else
    failed_runs=$((failed_runs + 1))
    echo "run $i/$runs: FAILED in $(( $(date +%s) - start )) s (log: $out/run-$i.log)"
  fi
done

node -e '
const fs = require("fs");
const dir = process.argv[1];
const failures = new Map();
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  const report = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
  for (const file of report.testResults ?? [])
    for (const t of file.assertionResults ?? [])
      if (t.status === "failed") {
        const key = `${file.name.replace(process.cwd() + "/", "")} > ${t.fullName}`;
        failures.set(key, (failures.get(key) ?? 0) + 1);
      }
}
if (failures.size === 0) console.log("No test failed in any run.");
for (const [name, n] of [...failures].sort((a, b) => b[1] - a[1])) console.log(`${n}x  ${name}`);
' "$out"
echo "$failed_runs of $runs run(s) failed; reports in $out"
[ "$failed_runs" -eq 0 ]
