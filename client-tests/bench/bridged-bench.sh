#!/usr/bin/env bash
# The bridged disk against nbdkit's linuxdisk plugin, on one directory, in one run on this machine.
# Rows: time to first byte (server start until the first 4 KiB of the image has been read), memory once
# serving (RSS, and the disk copy nbdkit linuxdisk makes of the files), a sequential read of the whole
# image with nbdcopy (host caches dropped first when root), and a Linux guest's `tar` of the tree on the
# (linuxdisk here is nbdkit 1.32: a GPT disk with one ext4 partition; its size and content are alike)
# bridged disk against an `mke2fs -d` image of the same tree served by bridgefs.
#   client-tests/bench/bridged-bench.sh [TREE_MIB] [FILES]     (defaults 256 and 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-256}
FILES=${2:-20000}
for t in nbdkit nbdcopy nbdinfo qemu-io qemu-system-x86_64 cpio mke2fs python3; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "missing $t (./test.sh installs it)"; exit 1; }
done
[ -f server/target/bridgefs.jar ] || mvn -B -q package -DskipTests
G="${BRIDGEFS_GUEST_DIR:-$HOME/.cache/bridgefs/guest}"
[ -f "$G/vmlinuz" ] || client-tests/scripts/fetch-guest-kernel.sh
work=$(mktemp -d /var/tmp/bridgefs-bridgedbench.XXXXXX)
cp server/target/bridgefs.jar "$work/bridgefs.jar"
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
export TMPDIR="$work"        # nbdkit linuxdisk builds its copy here

echo "bench: making a tree of $FILES files, $MIB MiB"
python3 - "$work/tree" "$MIB" "$FILES" <<'PY'
import os, random, sys
root, mib, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(12)
total = mib << 20
weights = [rnd.expovariate(1.0) for _ in range(files)]
scale = total / sum(weights)
for i, w in enumerate(weights):
    d = os.path.join(root, "d%03d" % (i % 200), "s%02d" % (i // 200 % 10))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rnd.randbytes(int(w * scale)))
PY
mke2fs -q -F -t ext4 -b 4096 -d "$work/tree" "$work/tree.ext4" $(( MIB * 3 / 2 + 64 ))M

drop() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
now() { date +%s.%N; }
rss_mib() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' /proc/$1/status; }
deleted_mib() {  # bytes of deleted files the process holds open (nbdkit linuxdisk's image copy)
  local sum=0 f
  for f in /proc/$1/fd/*; do
    if readlink "$f" | grep -q '(deleted)'; then sum=$(( sum + $(stat -L -c %s "$f") )); fi
  done
  echo $(( sum >> 20 ))
}
first_byte() {  # first_byte URI START PID -> seconds from START until 4 KiB at offset 0 was read
  until qemu-io -r -f raw -c "read 0 4k" "$1" >/dev/null 2>&1; do
    kill -0 "$3" 2>/dev/null || { echo "the server exited:" >&2; cat "$work"/*.log >&2; exit 1; }
    sleep 0.02
  done
  awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
copy_s() { drop; local t0; t0=$(now); nbdcopy "$1" null:; awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

declare -A R
echo "bench: bridgefs (bridged disk)"
drop
t0=$(now)
java -jar "$work/bridgefs.jar" serve --nbd-listen 127.0.0.1:10870 --nbd-export tree="$work/tree",bridged --cache-size 64m \
     --metrics-listen 127.0.0.1:10871 > "$work/bridgefs.log" 2>&1 &
pids+=($!); bp=$!
R[bridgefs,ttfb]=$(first_byte nbd://127.0.0.1:10870/tree "$t0" $bp)
R[bridgefs,rss]=$(rss_mib $bp); R[bridgefs,disk]=0
R[bridgefs,size]=$(nbdinfo --size nbd://127.0.0.1:10870/tree)
R[bridgefs,copy]=$(copy_s nbd://127.0.0.1:10870/tree)
R[bridgefs,rss2]=$(rss_mib $bp)
kill $bp; wait $bp 2>/dev/null || true

echo "bench: nbdkit linuxdisk"
drop
t0=$(now)
nbdkit -f -i 127.0.0.1 -p 10872 linuxdisk "$work/tree" type=ext4 > "$work/nbdkit.log" 2>&1 &
pids+=($!); np=$!
R[nbdkit,ttfb]=$(first_byte nbd://127.0.0.1:10872 "$t0" $np)
R[nbdkit,rss]=$(rss_mib $np); R[nbdkit,disk]=$(deleted_mib $np)
R[nbdkit,size]=$(nbdinfo --size nbd://127.0.0.1:10872)
R[nbdkit,copy]=$(copy_s nbd://127.0.0.1:10872)
R[nbdkit,rss2]=$(rss_mib $np)
kill $np; wait $np 2>/dev/null || true

# --- a guest's tar of the tree: bridged disk against the mke2fs -d image, one bridgefs serving both
V=$(ls "$G/lib/modules"); M="$G/lib/modules/$V/kernel"
ird="$work/initrd"; mkdir -p "$ird/bin" "$ird/modules"; cp /bin/busybox "$ird/bin/"
declare -A seen
addmod() {
  local n=$1 f d
  [ -n "${seen[$n]:-}" ] && return; seen[$n]=1
  f=$(find "$M" -name "$n.ko" -o -name "${n//_/-}.ko" | head -1); [ -n "$f" ] || return 0
  for d in $(tr '\0' '\n' < "$f" | grep -a '^depends=' | head -1 | cut -d= -f2 | tr ',' ' '); do addmod "$d"; done
  cp "$f" "$ird/modules/"; basename "$f" .ko >> "$ird/modules.order"
}
for m in virtio_pci virtio_blk ext4 crc32c_generic; do addmod $m; done
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /modules/$m.ko; done
mount -t ext4 -o ro /dev/vda /mnt || { echo MOUNT-FAILED; poweroff -f; }
t0=$(cut -d' ' -f1 /proc/uptime); tar -cf /dev/null -C /mnt .; t1=$(cut -d' ' -f1 /proc/uptime)
echo "TAR $(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') END"
umount /mnt
poweroff -f
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip > "$work/initrd.gz")
java -jar "$work/bridgefs.jar" serve --nbd-listen 127.0.0.1:10873 --nbd-export tree="$work/tree",bridged \
     --nbd-export img="$work/tree.ext4",ro --cache-size 1g > "$work/bridgefs2.log" 2>&1 &
pids+=($!); bp=$!
until nbdinfo --size nbd://127.0.0.1:10873/tree >/dev/null 2>&1; do sleep 0.1; done
guest_tar() {  # guest_tar EXPORT -> seconds the guest's tar took
  drop
  timeout 1800 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -monitor none -no-reboot \
      -kernel "$G/vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 panic=-1 loglevel=3" -nic none \
      -drive file=nbd://127.0.0.1:10873/$1,format=raw,if=virtio,readonly=on 2>&1 | tr -d '\r' > "$work/guest-$1.log" || true
  grep -q 'TAR [0-9]' "$work/guest-$1.log" || { echo "guest run on $1 failed:" >&2; tail -15 "$work/guest-$1.log" >&2; }
  grep -ao 'TAR [0-9.]*' "$work/guest-$1.log" | head -1 | cut -d' ' -f2
}
echo "bench: guest tar on the bridged disk"; R[bridgefs,tar]=$(guest_tar tree)
echo "bench: guest tar on the mke2fs -d image"; R[image,tar]=$(guest_tar img)
kill $bp; wait $bp 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "-" }'; }
echo
echo "| row | bridgefs bridged | nbdkit linuxdisk | ratio (> 1: bridgefs better) |"
echo "|---|---:|---:|---:|"
echo "| time to first byte (s) | ${R[bridgefs,ttfb]} | ${R[nbdkit,ttfb]} | $(ratio ${R[bridgefs,ttfb]} ${R[nbdkit,ttfb]}) |"
echo "| memory serving: RSS MiB (bridgefs: --cache-size 64m, JVM included) / disk copy MiB | ${R[bridgefs,rss]} / 0 | ${R[nbdkit,rss]} / ${R[nbdkit,disk]} | $(ratio ${R[bridgefs,rss]} $(( ${R[nbdkit,rss]} + ${R[nbdkit,disk]} ))) |"
echo "| RSS after the full read (MiB) | ${R[bridgefs,rss2]} | ${R[nbdkit,rss2]} | - |"
echo "| image size (MiB) | $(( ${R[bridgefs,size]} >> 20 )) | $(( ${R[nbdkit,size]} >> 20 )) | - |"
echo "| nbdcopy of the whole image (s) | ${R[bridgefs,copy]} | ${R[nbdkit,copy]} | $(ratio ${R[bridgefs,copy]} ${R[nbdkit,copy]}) |"
echo
echo "| row | bridged disk | mke2fs -d image (bridgefs) | ratio |"
echo "|---|---:|---:|---:|"
echo "| guest tar of the tree (s, TCG) | ${R[bridgefs,tar]:--} | ${R[image,tar]:--} | $(ratio ${R[bridgefs,tar]:-0} ${R[image,tar]:-0}) |"
echo "(tree: $FILES files, $MIB MiB; bridgefs's RSS includes its JVM and the cache it has filled; nbdkit's copy sits in TMPDIR)"
