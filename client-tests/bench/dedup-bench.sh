#!/usr/bin/env bash
# What --dedup costs on reads: bridgefs with --dedup off, shadow and merge serves the same data; rows
# are read throughput over NBD and 9P, cold and warm, and a "dup" row where NBD reads an image whose
# every page is already resident as a 9P file (with merge those fills are compare-and-share). Modes
# run in rotating order for ROUNDS rounds; the best of each is kept; ratios are mode/off (1.00 = no cost).
# Run by hand (as root, so host caches can be dropped):
#   client-tests/bench/dedup-bench.sh [DATA_MIB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-256}
ROUNDS=${2:-3}
for t in nbdcopy fio diodcat; do command -v $t >/dev/null || { echo "missing $t (./test.sh installs it)"; exit 1; }; done
[ -f server/target/bridgefs.jar ] || mvn -B -q package -DskipTests
work=$(mktemp -d /var/tmp/bridgefs-dedupbench.XXXXXX)
cp server/target/bridgefs.jar "$work/bridgefs.jar"   # a rebuild during the run must not touch the running server
chmod 755 "$work"
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/share"
echo "dedup-bench: ${MIB} MiB per data set in $work"
head -c $((MIB << 20)) /dev/urandom > "$work/seq.img"
head -c $((MIB << 20)) /dev/urandom > "$work/rand.img"
head -c $((MIB << 20)) /dev/urandom > "$work/share/file.bin"
cp "$work/share/file.bin" "$work/dup.img"
head -c $((128 << 20)) /dev/urandom > "$work/warmup.img"
sync
NBD=10950; P9=10951
cold() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
now() { date +%s.%N; }
mibs() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN{printf "%.0f", m/(b-a)}'; }
uri() { echo "nbd://127.0.0.1:$NBD/$1"; }

run_mode() {  # run_mode MODE: prints "row value" lines
  java -XX:MaxDirectMemorySize=3g -jar "$work/bridgefs.jar" serve --dedup "$1" --cache-size $((4 * MIB + 256))m \
    --nbd-listen 127.0.0.1:$NBD --9p-listen 127.0.0.1:$P9 --9p-export "share=$work/share" --writeback-interval 0 \
    --nbd-export "seq=$work/seq.img" --nbd-export "rand=$work/rand.img" --nbd-export "dup=$work/dup.img" \
    --nbd-export "warmup=$work/warmup.img" >"$work/srv.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do nbdinfo --size "$(uri warmup)" >/dev/null 2>&1 && break; sleep 0.1; done
  for _ in 1 2 3; do nbdcopy "$(uri warmup)" null:; done      # JIT warm-up, as a long-running server is
  fio --name=w --ioengine=nbd --uri="$(uri warmup)" --rw=randread --bs=4k --iodepth=32 --size=128m \
      --time_based --runtime=3 >/dev/null 2>&1
  cold
  local t0 t1
  t0=$(now); nbdcopy "$(uri seq)" null:; t1=$(now); echo "nbd_seqread_cold $(mibs $MIB $t0 $t1)"
  t0=$(now); nbdcopy "$(uri seq)" null:; t1=$(now); echo "nbd_seqread_warm $(mibs $MIB $t0 $t1)"
  echo "nbd_randread_cold $(fio --name=r --ioengine=nbd --uri="$(uri rand)" --rw=randread --bs=4k --iodepth=32 \
      --size=${MIB}m --time_based --runtime=8 --norandommap --randrepeat=0 --minimal 2>/dev/null | grep ';' | tail -n1 | cut -d';' -f8)"
  t0=$(now); diodcat -s 127.0.0.1:$P9 -a share /file.bin > /dev/null; t1=$(now); echo "9p_read_cold $(mibs $MIB $t0 $t1)"
  t0=$(now); diodcat -s 127.0.0.1:$P9 -a share /file.bin > /dev/null; t1=$(now); echo "9p_read_warm $(mibs $MIB $t0 $t1)"
  t0=$(now); nbdcopy "$(uri dup)" null:; t1=$(now); echo "nbd_dupread_cold $(mibs $MIB $t0 $t1)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

declare -A BEST
modes=(off shadow merge)
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    m=${modes[$(( (i + r) % 3 ))]}
    echo "dedup-bench: round $r/$ROUNDS, --dedup $m"
    while read -r row v; do
      [ -z "${BEST[$m,$row]:-}" ] || [ "$v" -gt "${BEST[$m,$row]}" ] && BEST[$m,$row]=$v
    done < <(run_mode "$m")
  done
done
rows="nbd_seqread_cold nbd_seqread_warm nbd_randread_cold 9p_read_cold 9p_read_warm nbd_dupread_cold"
printf '\n%-18s %-10s %8s %8s %8s %14s %14s\n' row unit off shadow merge "shadow/off" "merge/off"
for row in $rows; do
  u="MiB/s"; [ "$row" = nbd_randread_cold ] && u="IOPS 4k"
  o=${BEST[off,$row]}; s=${BEST[shadow,$row]}; g=${BEST[merge,$row]}
  printf '%-18s %-10s %8s %8s %8s %14s %14s\n' $row "$u" $o $s $g \
    "$(awk -v a=$s -v b=$o 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a=$g -v b=$o 'BEGIN{printf "%.2f", a/b}')"
done
echo "(best of $ROUNDS rounds; ${MIB} MiB data sets; $(nproc) cores; 1.00 = same speed as --dedup off, below = slower)"
