#!/bin/busybox sh
# The guest's /init (scripts/vm-test.sh packs it into the initramfs with a static busybox and the
# modules a 9p root needs). It mounts the host's root, read-only over 9p, under a tmpfs overlay so
# the guest can write; the kernel's modules come from a second share. Then it runs the command the
# host put on the kernel command line (belt.run=BASE64) in that root, prints its exit code as
# "belt-vm: exit N" and powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do
  insmod "/mods/$m.ko" || echo "belt-vm: insmod $m failed"
done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
  { echo "belt-vm: cannot mount the host root over 9p"; poweroff -f; }
mount -t tmpfs -o size=75% tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  { echo "belt-vm: cannot mount the overlay root"; poweroff -f; }
kver=$(uname -r)
mkdir -p "/newroot/lib/modules/$kver"
mount -t 9p -o trans=virtio,version=9p2000.L,ro modules "/newroot/lib/modules/$kver" ||
  echo "belt-vm: no modules share"
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
cmd=$(sed -n 's/.*belt\.run=\([^ ]*\).*/\1/p' /newroot/proc/cmdline | base64 -d)
echo "belt-vm: kernel $kver"
# switch_root, not chroot: the kernel runs /sbin/modprobe (veth, cls_bpf, ...) in PID 1's root.
exec switch_root /newroot /bin/sh -c '
  mount -t tmpfs tmpfs /run
  mount -t bpf bpf /sys/fs/bpf; mount -t tracefs tracefs /sys/kernel/tracing
  mount -t debugfs debugfs /sys/kernel/debug; mount -t cgroup2 cgroup2 /sys/fs/cgroup
  ip link set lo up
  export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  '"$cmd"'
  echo "belt-vm: exit $?"
  busybox poweroff -f || { echo o >/proc/sysrq-trigger; sleep 10; }'
