#!/usr/bin/env bash
# Runs belt's kernel tests on a second kernel, in a qemu guest:
#
#   scripts/vm-test.sh KERNEL [TEST_FILE...]
#
# KERNEL is a Debian kernel package (default `linux-image-amd64`, Debian 12's 6.1; a metapackage is
# resolved to the image it depends on). Its image and modules are unpacked once into
# /var/cache/belt/vm; the guest boots that kernel with a small initramfs of our own (a static
# busybox, the 9p/virtio/overlay modules, scripts/vm/init.sh) and uses the host's root, shared
# read-only over 9p under a tmpfs overlay: the same Deno, libbpf and tools as the host, nothing
# downloaded from elsewhere. The guest runs `deno test` on the given files (default: VM_TESTS below)
# with BELT_KERNEL_TESTS=required and the host's other BELT_* settings (BELT_CONNECT_HOOKS defaults to
# kprobe,fentry and BELT_CONNECT_BURST to 2000 here), and the host prints its kernel and a line
# `vm KERNEL: tests: N passed, N failed`. Exit status: 0 when every test passed.
#
# /dev/kvm is used when a guest boots with it (BELT_VM_ACCEL=kvm|tcg forces one); on these
# machines nested KVM hangs at boot, so TCG (emulation, slower) is the usual path.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pkg=${1:-linux-image-amd64}
shift || true
# What the 6.1 guest checks: the cls_bpf chain path (no TCX before 6.6), the connect tracer on the
# hook sets this host lacks (kprobes, fentry), and the mirror and firewall on an older verifier.
VM_TESTS=(tests/tc_test.ts tests/chain_test.ts tests/connect_test.ts tests/mirror_test.ts
  tests/firewall_traffic_test.ts)
tests=("${@:-${VM_TESTS[@]}}")
timeout_s=${BELT_VM_TIMEOUT:-1500}
cache=/var/cache/belt/vm

say() { echo "vm-test: $*" >&2; }
die() {
  say "$*"
  exit 1
}

[[ $EUID -eq 0 ]] || die "needs root (it unpacks a kernel into $cache and boots it)"
for tool in qemu-system-x86_64 busybox depmod apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup.sh"
done

# A metapackage (linux-image-amd64) names the real image among its dependencies.
image=$pkg
dep=$(apt-cache depends "$pkg" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
[[ -n $dep ]] && image=$dep
kdir=$cache/$image
if [[ ! -f $kdir/ready ]]; then
  say "unpacking $image into $kdir"
  rm -rf "$kdir" && mkdir -p "$kdir"
  (cd "$kdir" && apt-get download "$image" >/dev/null 2>&1) ||
    die "cannot download $image (apt-get download $image)"
  dpkg-deb -x "$kdir"/*.deb "$kdir/root"
  rm -f "$kdir"/*.deb
  depmod -b "$kdir/root" "$(ls "$kdir/root/lib/modules")"
  touch "$kdir/ready"
fi
kver=$(ls "$kdir/root/lib/modules")
vmlinuz=$kdir/root/boot/vmlinuz-$kver
moddir=$kdir/root/lib/modules/$kver

work=$(mktemp -d /tmp/belt-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The initramfs: busybox, the modules that mount a 9p root under an overlay (in load order), init.
mkdir -p "$work/initrd/"{bin,mods,proc,sys,dev}
cp "$(command -v busybox)" "$work/initrd/bin/busybox"
: >"$work/initrd/mods/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  for path in $(modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'); do
    name=$(basename "$path" .ko)
    grep -qx "$name" "$work/initrd/mods/order" && continue
    cp "$path" "$work/initrd/mods/$name.ko"
    echo "$name" >>"$work/initrd/mods/order"
  done
done
install -m 755 "$root/scripts/vm/init.sh" "$work/initrd/init"
(cd "$work/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")

# What the guest runs, in the same checkout (the host's root is the guest's root).
# BELT_VM_CMD replaces the tests by a command of your own (e.g. to read a verifier log).
# The tracepoint hooks are the host's to test; a 2,000-connect burst takes TCG seconds, not minutes.
export BELT_CONNECT_HOOKS=${BELT_CONNECT_HOOKS:-kprobe,fentry}
export BELT_CONNECT_BURST=${BELT_CONNECT_BURST:-2000}
# The host's exported BELT_* settings reach the guest (single-quoted for its dash), except
# BELT_VM_* (this script's) and BELT_TC_MODE (a host's tcx would fail every TC test before 6.6).
guest_env=""
for name in "${!BELT_@}"; do
  [[ $name == BELT_VM_* || $name == BELT_TC_MODE ]] && continue
  [[ $(declare -p "$name") == "declare -x"* ]] || continue
  value=${!name}
  guest_env+="export $name='${value//\'/\'\\\'\'}'; "
done
guest_cmd="cd '$root' && ${guest_env}${BELT_VM_CMD:-BELT_KERNEL_TESTS=required deno test -A --no-check ${tests[*]}}"
cmdline="console=ttyS0 edd=off panic=-1 quiet belt.run=$(printf '%s' "$guest_cmd" | base64 -w0)"

accel=${BELT_VM_ACCEL:-tcg}
cpu=max
[[ $accel == kvm ]] && cpu=host,-arch-capabilities
[[ $accel == tcg ]] && accel=tcg,thread=multi
say "booting $kver ($accel) for: ${tests[*]}"
start=$SECONDS
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m 3072 -smp "$(nproc)" \
  -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" -append "$cmdline" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev "local,id=modules,path=$moddir,security_model=none,readonly=on" \
  -device virtio-9p-pci,fsdev=modules,mount_tag=modules </dev/null 2>&1 |
  sed -u 's/\r//g' | tee "$work/console.log" | grep --line-buffered -v '^\s*$'
set -e
log=$work/console.log
say "guest ran $((SECONDS - start)) s"
guest_kver=$(grep -ao 'belt-vm: kernel [^ ]*' "$log" | head -1 | cut -d' ' -f3)
code=$(grep -ao 'belt-vm: exit [0-9]*' "$log" | tail -1 | cut -d' ' -f3)
# deno test's last result line: "ok | 12 passed (3 steps) | 0 failed (40s)" (or FAILED |).
passed=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -n 's/.*| \([0-9]*\) passed.*| \([0-9]*\) failed.*/\1/p' | tail -1)
failed=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -n 's/.*| \([0-9]*\) passed.*| \([0-9]*\) failed.*/\2/p' | tail -1)
if [[ -z $code || -z $passed || $passed == 0 ]]; then
  echo "vm ${guest_kver:-$kver}: tests: ${passed:-0} passed, 1 failed (the guest ran no test or did not finish: see above)"
  exit 1
fi
echo "vm $guest_kver: tests: $passed passed, $failed failed"
[[ $code == 0 && $failed == 0 ]]
