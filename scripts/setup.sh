#!/usr/bin/env bash
# Installs what belt needs on a Debian machine, only what is missing, and
# mounts bpffs (and tracefs) when absent. Safe to run again: fast when done.
#
#   scripts/setup.sh            everything: run, build eBPF objects, test, bench
#   scripts/setup.sh --runtime  only what `./belt` needs to run
set -euo pipefail

DENO_VERSION=2.9.6 # pinned: the npm package `deno`
runtime_only=false
[[ "${1:-}" == "--runtime" ]] && runtime_only=true

say() { echo "setup: $*" >&2; }

need_root() {
  if [[ $EUID -ne 0 ]]; then
    say "$1 is missing and installing it needs root: run \`sudo scripts/setup.sh\`"
    exit 1
  fi
}

# Debian packages: runtime first, then what building and testing need.
runtime_pkgs=(libbpf1 iproute2)
dev_pkgs=(clang llvm gcc libc6-dev libbpf-dev linux-libc-dev bpftool tcpdump iputils-ping procps util-linux
  tshark)
# scripts/vm-test.sh: a second kernel under qemu, with an initramfs of our own.
dev_pkgs+=(qemu-system-x86 busybox-static kmod)
# The benchmarks' peers (deno task bench): side by side with belt in the same run.
dev_pkgs+=(iperf3 nftables iptables xdp-tools ethtool)
pkgs=("${runtime_pkgs[@]}")
$runtime_only || pkgs+=("${dev_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  need_root "Debian packages (${missing[*]})"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Deno 2 from the npm package (JSR and other download hosts are not needed).
deno_major() { deno --version 2>/dev/null | sed -n 's/^deno \([0-9]*\)\..*/\1/p'; }
if [[ "$(deno_major)" != "2" ]]; then
  need_root "Deno 2"
  if ! command -v npm >/dev/null; then
    say "installing npm"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  say "installing deno@$DENO_VERSION from npm"
  npm install -g --no-fund --no-audit "deno@$DENO_VERSION" >/dev/null 2>&1
  hash -r
  if [[ "$(deno_major)" != "2" ]]; then
    say "deno@$DENO_VERSION did not install: try \`npm install -g deno@$DENO_VERSION\` by hand"
    exit 1
  fi
fi

# bpffs for pins; tracefs for classic tracepoints. Only as root, only when absent.
if [[ $EUID -eq 0 ]]; then
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || say "could not mount bpffs at /sys/fs/bpf"
  if [[ -d /sys/kernel/tracing ]] && ! mountpoint -q /sys/kernel/tracing; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || say "could not mount tracefs (classic tracepoints unavailable)"
  fi
fi
exit 0
