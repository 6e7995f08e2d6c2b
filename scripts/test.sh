#!/usr/bin/env bash
# Runs every check and test as CI does: setup, stale eBPF objects, fmt, lint,
# type check, doc lint, publish dry run, then all tests with kernel tests
# required (a skipped kernel test is a failure). Ends with
# `tests: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

scripts/setup.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
export BELT_KERNEL_TESTS=required NO_COLOR=1

passed=0
failed=0
check() { # name, command...
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "check $name ... ok"
  else
    failed=$((failed + 1))
    echo "check $name ... FAILED"
    echo "$out" | tail -40
  fi
}

check "eBPF objects up to date" deno run -A scripts/build.ts --check
check "deno fmt --check" deno fmt --check
check "deno lint" deno lint
check "deno check" deno check mod.ts bpf/ cli/ plugins/ tests/ scripts/
check "deno doc --lint" deno doc --lint mod.ts bpf/mod.ts
check "deno publish --dry-run" deno publish --dry-run --allow-dirty

log=$(mktemp)
deno test -A --trace-leaks tests/ 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)
rm -f "$log"
t_passed=$(sed -n 's/^[A-Z]* | \([0-9]*\) passed.*/\1/p; s/^ok | \([0-9]*\) passed.*/\1/p' <<<"$summary" | head -1)
t_failed=$(sed -n 's/.*| \([0-9]*\) failed.*/\1/p' <<<"$summary" | head -1)
if [[ -z "$t_passed" ]]; then # the runner itself broke: count it as a failure
  t_passed=0
  t_failed=1
fi
if [[ $test_rc -ne 0 && "${t_failed:-0}" -eq 0 ]]; then t_failed=1; fi
passed=$((passed + t_passed))
failed=$((failed + ${t_failed:-0}))

# Kernel tests on Debian 12's stock 6.1 kernel in a qemu guest (scripts/vm-test.sh): the cls_bpf
# chain path every pre-6.6 kernel takes, the connect tracer on kprobes and fentry, and the mirror
# and firewall through an older verifier.
vm_log=$(mktemp)
bash scripts/vm-test.sh linux-image-amd64 2>&1 | tee "$vm_log"
vm_line=$(grep -E '^vm .*: tests: [0-9]+ passed, [0-9]+ failed' "$vm_log" | tail -1)
rm -f "$vm_log"
if [[ $vm_line =~ tests:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  echo "vm-test: no result line"
  failed=$((failed + 1))
fi

# Leftovers are failures too: no namespace or pin of ours may survive the run.
if ip netns list 2>/dev/null | grep -q '^belt-'; then
  echo "leftover network namespaces: $(ip netns list | grep '^belt-' | tr '\n' ' ')"
  failed=$((failed + 1))
fi

echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
