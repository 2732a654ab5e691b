#!/usr/bin/env bash
# Side-by-side 9P2000.L benchmark: bridgefs and diod serve the same directory on this machine, in one
# run. Rows: diodload (16 threads copying ctl:zero to ctl:null; -g: getattr storm), one loopback client
# sending one request at a time (p9-rtt.py: walk, getattr, clunk round trips; and a FILE_MIB file written
# from start to end in 64 KiB Twrites, msize 64 KiB, diod's largest), and a Linux guest under
# QEMU (TCG) that mounts the directory with trans=tcp,cache=none, writes then reads a file with dd, and
# walks a 20,000-file tree (find, ls -lR). Prints both results and the bridgefs/diod ratio (> 1 means
# bridgefs is faster), then where the guest rows' time goes (the guest's time per request against
# bridgefs's own, from its latency timers).
#   client-tests/bench/p9-bench.sh [FILE_MIB] [DIODLOAD_SECONDS] [ROUNDS]
# The diodload, round-trip and write rows are the best of ROUNDS runs (default 3, alternating servers),
# after one unmeasured run of each kind per server (JIT warm-up); so are the guest dd rows (a run takes
# about half a minute under TCG, the servers alternating); the guest metadata rows, minutes each, run once.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-256}
SECS=${2:-8}
ROUNDS=${3:-3}
for t in diod diodload qemu-system-x86_64 cpio; do command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "missing $t (./test.sh installs it)"; exit 1; }; done
[ -f server/target/bridgefs.jar ] || mvn -B -q package -DskipTests
G="${BRIDGEFS_GUEST_DIR:-$HOME/.cache/bridgefs/guest}"
[ -f "$G/vmlinuz" ] || client-tests/scripts/fetch-guest-kernel.sh
work=$(mktemp -d /var/tmp/bridgefs-p9bench.XXXXXX)
here=$(pwd)/client-tests/bench
cp server/target/bridgefs.jar "$work/bridgefs.jar"   # a rebuild during the run must not touch the running server
chmod 755 "$work"   # diod refuses to attach below a 0700 directory
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
mkdir -p "$work/share" "$work/ctl"
truncate -s 1G "$work/ctl/zero"; : > "$work/ctl/null"

# --- the guest: a busybox initramfs with the 9p and virtio-net modules, built once
V=$(ls "$G/lib/modules"); M="$G/lib/modules/$V/kernel"
ird="$work/initrd"; mkdir -p "$ird/bin" "$ird/modules"
cp /bin/busybox "$ird/bin/"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci net/core/failover drivers/net/net_failover drivers/net/virtio_net fs/netfs/netfs fs/fscache/fscache \
         net/9p/9pnet net/9p/9pnet_fd fs/9p/9p; do
  if [ -f "$M/$m.ko" ]; then cp "$M/$m.ko" "$ird/modules/"; basename "$m" >> "$ird/modules.order"; fi
done
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /modules/$m.ko; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
. /params
if ! mount -t 9p -o trans=tcp,port=$PORT,version=9p2000.L,aname=$ANAME,msize=262144,cache=none 10.0.2.2 /mnt; then
  echo "MOUNT-FAILED"; poweroff -f
fi
rate() { awk -v m=$MIB -v a=$1 -v b=$2 'BEGIN{ printf "%.1fMB/s", m/(b-a) }'; }
if [ "$MODE" = meta ]; then
  # metadata: find lists the tree (readdir, a walk and getattr per entry), ls -lR stats every entry again
  t0=$(cut -d' ' -f1 /proc/uptime); n=$(find /mnt/tree | wc -l); t1=$(cut -d' ' -f1 /proc/uptime)
  ls -lR /mnt/tree > /dev/null; t2=$(cut -d' ' -f1 /proc/uptime)
  echo "META $n $(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') $(awk -v a=$t1 -v b=$t2 'BEGIN{print b-a}') END"
  umount /mnt
  poweroff -f
fi
t0=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/mnt/ddfile bs=1M count=$MIB conv=fsync 2>/dev/null; t1=$(cut -d' ' -f1 /proc/uptime)
echo "WRITE $(rate $t0 $t1)"
echo 3 > /proc/sys/vm/drop_caches
t0=$(cut -d' ' -f1 /proc/uptime); dd if=/mnt/ddfile of=/dev/null bs=1M 2>/dev/null; t1=$(cut -d' ' -f1 /proc/uptime)
echo "READ $(rate $t0 $t1)"
rm /mnt/ddfile
umount /mnt
poweroff -f
INIT
chmod +x "$ird/init"

guest() {  # guest PORT ANAME MODE -> the guest's console output
  printf 'PORT=%s\nANAME=%s\nMIB=%s\nMODE=%s\n' "$1" "$2" "$MIB" "$3" > "$ird/params"
  (cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip > "$work/initrd.gz")
  # the guest's CPU (QEMU's user and system time, all its threads) goes to $work/guest.cpu, for host_per
  local TIMEFORMAT='%U %S'
  { time timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -monitor none -no-reboot \
        -kernel "$G/vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 panic=-1 loglevel=3" \
        -nic user,model=virtio-net-pci 2>&1 ; } 2> "$work/guest.cpu"
}
guest_dd() {  # guest_dd PORT ANAME -> "write_MBps read_MBps"
  local out w r
  out=$(guest "$1" "$2" dd)
  w=$(echo "$out" | grep -o 'WRITE [0-9.]*MB/s' | grep -o '[0-9.]*MB/s' | tail -n1)
  r=$(echo "$out" | grep -o 'READ [0-9.]*MB/s' | grep -o '[0-9.]*MB/s' | tail -n1)
  if [ -z "$w" ] || [ -z "$r" ]; then echo "guest run failed:" >&2; echo "$out" | tail -20 >&2; echo "- -"; return; fi
  echo "$(tombs "$w") $(tombs "$r")"
}
guest_meta() {  # guest_meta PORT ANAME -> "find_files_per_s stat_files_per_s seconds"
  local out
  out=$(guest "$1" "$2" meta)
  echo "$out" | grep -o 'META [0-9]* [0-9.]* [0-9.]* END' | tail -n1 | \
    awk '{ if ($3 > 0 && $4 > 0) printf "%.0f %.0f %.2f", $2/$3, $2/$4, $3+$4; else print "- - -" }'
  echo "$out" | grep -q 'META' || { echo "guest metadata run failed:" >&2; echo "$out" | tail -20 >&2; }
}
# the metadata tree: 100 directories of 200 empty files each, the same for both servers
python3 - "$work/share/tree" <<'PY'
import os, sys
for d in range(100):
    p = os.path.join(sys.argv[1], "d%03d" % d)
    os.makedirs(p)
    for f in range(200):
        open(os.path.join(p, "f%03d" % f), "w").close()
PY
metrics() { curl -s "http://127.0.0.1:5690/metrics"; }
count_requests() { metrics | awk '/^bridgefs_9p_requests_total/ { s += $2 } END { print s + 0 }'; }
tombs() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /GB/) n*=1024; if (v ~ /KB/) n/=1024; printf "%.1f", n}'; }
# What the server spent in CPU per unit of work, beside the speed: in the guest rows the guest (TCG) takes
# most of the time, and the server's own CPU per request compares the servers where speed cannot
# bridgefs's JIT compilers are counted apart (jit_ticks), as nbd-bench does: the guest rows run on the
# server the rows before warmed, as a long-running one is (restarted for them until session 30, for
# latency timers of their own, the rows met a fresh JVM: twice the CPU per MiB of dd). A
# compiler thread that ends between two marks takes its CPU out of jit_ticks but not out of the
# process's: that errs towards charging bridgefs more, never less
ticks() {  # ticks PID -> the process's CPU so far (utime + stime, all threads, clock ticks), less its JIT's
  local st f; read -r st < /proc/$1/stat; f=(${st##*) })   # utime and stime: the 12th and 13th after the name
  echo $((f[11] + f[12] - $(jit_ticks "$1")))
}
jit_ticks() {  # jit_ticks PID -> CPU so far of a JVM's JIT compiler threads (0 for diod)
  local s=0 t c st f
  for t in /proc/$1/task/*; do
    { read -r c < "$t/comm" && read -r st < "$t/stat"; } 2>/dev/null || continue   # a thread may have ended
    case $c in "C1 Compi"*|"C2 Compi"*) f=(${st##*) }); s=$((s + f[11] + f[12])) ;; esac
  done
  echo $s
}
# The host's CPU outside the guest: the whole machine's busy time (every process and kernel thread: the
# server, the kernel's network stack, its write-back of a buffered server's page cache, which no server
# process is charged for) less QEMU's own and, as in the server's rows, bridgefs's JIT compilers' (4.2-4.8
# s in the guest rows when they met a fresh start: twice diod's whole dd figure). Like for like where
# the server process's CPU is not: bridgefs writes back on its own threads, diod leaves it to the kernel's.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }   # busy: user nice system irq softirq
host_per() {  # host_per MACHINE_TICKS_BEFORE UNITS JIT_TICKS -> microseconds per unit of the machine's CPU since, less the last guest's and the JIT's
  awk -v m0="$1" -v m1="$(machine_ticks)" -v u="$2" -v j="$3" -v hz="$(getconf CLK_TCK)" -v g="$(cat "$work/guest.cpu" 2>/dev/null)" \
    'BEGIN{ split(g, q, " "); if (u > 0 && g != "") printf "%.1f", ((m1 - m0 - j) / hz - q[1] - q[2]) * 1e6 / u; else printf "-" }'
}
per() {  # per TICKS UNITS -> microseconds of CPU per unit
  awk -v t="$1" -v u="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (u > 0) printf "%.1f", t * 1e6 / hz / u; else printf "-" }'
}
server_pid() { if [ "$1" = 5660 ]; then echo "$bridgefs_pid"; else echo "$diod_pid"; fi; }
load() {  # load PORT [-g] -> "N ops/s, R rMB/s, W wMB/s CPU": CPU the server's microseconds per op
  local p c0 out; p=$(server_pid "$1"); c0=$(ticks "$p")
  out=$(timeout $((SECS + 30)) diodload -s 127.0.0.1:$1 -r $SECS ${2:-} 2>&1 | grep -o '[0-9]* ops/s.*' | tail -n1)
  echo "$out $(per $(( $(ticks "$p") - c0 )) "$(echo "$out" | awk -v s=$SECS '{print $1 * s}')")"
}
rtt() {  # rtt PORT ANAME [UID] -> "walk getattr clunk" median round trips (us) of one loopback client, one request at a time
  python3 "$here/p9-rtt.py" 127.0.0.1 "$1" "$2" 5000 "${3:-0}"
}
dirs() {  # dirs PORT ANAME [UID] -> "lopen readdir" median round trips (us) of one client opening and reading directories
  python3 "$here/p9-rtt.py" 127.0.0.1 "$1" "$2" opendir 2000 "${3:-0}"
}
wr() {  # wr PORT ANAME -> "MB/s p50_us" of one client writing a MIB MiB file in 64 KiB Twrites, one at a time
  python3 "$here/p9-rtt.py" 127.0.0.1 "$1" "$2" write "$MIB"
}
fieldwise() {  # fieldwise min|max KEY RESULT: keeps, field by field, the lowest round trips or the highest rates of the rounds
  # (a failed run's "-" compares as text, before any figure: min keeps it, max drops it)
  local old=${R[$2]:-}
  if [ -z "$old" ]; then R[$2]=$3; return; fi
  R[$2]=$(echo "$old $3" | awk -v op="$1" '{ n = NF / 2; for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), ((op == "min" ? $i < $(i+n) : $i > $(i+n)) ? $i : $(i+n)) }')
}
best() {  # best KEY RESULT: keeps the run with the most ops/s
  local old=${R[$1]:-}
  if [ -z "$old" ] || [ "$(echo "$2" | awk '{print $1+0}')" -gt "$(echo "$old" | awk '{print $1+0}')" ]; then R[$1]=$2; fi
}

declare -A R
echo "bench: bridgefs and diod, $ROUNDS diodload rounds"
bridgefs_pid=
start_bridgefs() {
  java -jar "$work/bridgefs.jar" serve --9p-listen 127.0.0.1:5660 --9p-export "share=$work/share" --9p-export "ctl=$work/ctl" \
       --cache-size 1g --metrics-listen 127.0.0.1:5690 >>"$work/bridgefs.log" 2>&1 &
  bridgefs_pid=$!; pids+=($bridgefs_pid)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:5690/metrics" >/dev/null && return 0; sleep 0.1; done
  echo "bench: bridgefs did not start"; tail "$work/bridgefs.log"; exit 1
}
start_bridgefs
/usr/sbin/diod -f -n -l 127.0.0.1:5661 -e "$work/share" -e ctl -L stderr >"$work/diod.log" 2>&1 & diod_pid=$!; pids+=($diod_pid)
sleep 3
# a long-running server is JIT-compiled: one unmeasured run of each diodload kind per server first (for
# bridgefs the first 8 s run reached 9-12k ops/s and the third 16-18k in session 16; diod gets the same)
echo "bench: diodload warm-up (not measured)"
for port in 5660 5661; do load $port >/dev/null; load $port -g >/dev/null; done
wr 5660 share >/dev/null; wr 5661 "$work/share" >/dev/null; dirs 5660 share 1000 >/dev/null; dirs 5661 "$work/share" 1000 >/dev/null
for round in $(seq "$ROUNDS"); do
  echo "bench: diodload round $round/$ROUNDS"
  best bridgefs,load "$(load 5660)"; best diod,load "$(load 5661)"
  best diod,getattr "$(load 5661 -g)"; best bridgefs,getattr "$(load 5660 -g)"
  fieldwise min bridgefs,rtt "$(rtt 5660 share)"; fieldwise min diod,rtt "$(rtt 5661 "$work/share")"
  fieldwise min diod,rtt1000 "$(rtt 5661 "$work/share" 1000)"; fieldwise min bridgefs,rtt1000 "$(rtt 5660 share 1000)"
  fieldwise min bridgefs,dirs1000 "$(dirs 5660 share 1000)"; fieldwise min diod,dirs1000 "$(dirs 5661 "$work/share" 1000)"
  best bridgefs,write "$(wr 5660 share)"; best diod,write "$(wr 5661 "$work/share")"
done
echo "bench: guests (bridgefs's latency timers started afresh: they then hold the guest rows' requests only)"
curl -sf -X POST "http://127.0.0.1:5690/reset-latency" >/dev/null
metrics > "$work/metrics-before-dd.txt"
entries=$((100 * 200 + 100 + 1))   # what find lists, and ls -lR stats: the tree's files, directories and itself
mean() { echo "$@" | awk '{ s = 0; n = 0; for (i = 1; i <= NF; i++) if ($i != "-") { s += $i; n++ } if (n) printf "%.1f", s / n; else printf "-" }'; }
guest_dd_run() {  # guest_dd_run SERVER PORT ANAME: one guest dd run; the best rates are kept, the CPU figures of every run
  local p c m j; p=$(server_pid "$2")
  c=$(ticks "$p"); m=$(machine_ticks); j=$(jit_ticks "$p"); rm -f "$work/guest.cpu"
  fieldwise max "$1,dd" "$(guest_dd "$2" "$3")"
  R[$1,ddcpus]="${R[$1,ddcpus]:-} $(per $(( $(ticks "$p") - c )) $((2 * MIB)))"
  R[$1,ddhosts]="${R[$1,ddhosts]:-} $(host_per "$m" $((2 * MIB)) $(( $(jit_ticks "$p") - j )))"
}
guest_rows() {  # guest_rows SERVER PORT ANAME: the metadata rows and the server's CPU in them
  local p c; p=$(server_pid "$2")
  [ "$1" = bridgefs ] && before=$(count_requests)
  c=$(ticks "$p"); m=$(machine_ticks); j=$(jit_ticks "$p"); rm -f "$work/guest.cpu"
  R[$1,meta]=$(guest_meta "$2" "$3"); R[$1,metacpu]=$(per $(( $(ticks "$p") - c )) $((2 * entries)))
  R[$1,metahost]=$(host_per "$m" $((2 * entries)) $(( $(jit_ticks "$p") - j )))
  return 0
}
jit0=$(jit_ticks "$bridgefs_pid")
# the dd rows: the best of ROUNDS guest runs per server, alternating (one run's rate moved 40-52 MB/s on one
# server in session 33)
for round in $(seq "$ROUNDS"); do
  echo "bench: guest dd round $round/$ROUNDS"
  guest_dd_run bridgefs 5660 share
  guest_dd_run diod 5661 "$work/share"
done
for srv in bridgefs diod; do R[$srv,ddcpu]=$(mean ${R[$srv,ddcpus]}); R[$srv,ddhost]=$(mean ${R[$srv,ddhosts]}); done
metrics > "$work/metrics-after-dd.txt"
echo "bench: guest metadata rows"
guest_rows bridgefs 5660 share
R[bridgefs,guestjit]=$(awk -v t=$(( $(jit_ticks "$bridgefs_pid") - jit0 )) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t / hz}')
R[bridgefs,metareqs]=$(( $(count_requests) - before ))
metrics > "$work/metrics-after-meta.txt"
guest_rows diod 5661 "$work/share"

num() { echo "$1" | awk -v f="$2" '{print $f}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
printf '\n%-28s %12s %12s %8s\n' row bridgefs diod ratio
row() { printf '%-28s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
row "diodload ops/s" "$(num "${R[bridgefs,load]}" 1)" "$(num "${R[diod,load]}" 1)"
row "diodload read MB/s" "$(num "${R[bridgefs,load]}" 3)" "$(num "${R[diod,load]}" 3)"
row "diodload -g getattr ops/s" "$(num "${R[bridgefs,getattr]}" 1)" "$(num "${R[diod,getattr]}" 1)"
row "guest dd write MB/s" "$(num "${R[bridgefs,dd]}" 1)" "$(num "${R[diod,dd]}" 1)"
row "guest dd read MB/s" "$(num "${R[bridgefs,dd]}" 2)" "$(num "${R[diod,dd]}" 2)"
row "guest find 20k files/s" "$(num "${R[bridgefs,meta]}" 1)" "$(num "${R[diod,meta]}" 1)"
row "guest ls -lR 20k files/s" "$(num "${R[bridgefs,meta]}" 2)" "$(num "${R[diod,meta]}" 2)"
row "one client: 64K writes MB/s" "$(num "${R[bridgefs,write]}" 1)" "$(num "${R[diod,write]}" 1)"
# round trips: lower is better, so the ratio is diod's over bridgefs's (above 1.00 bridgefs is faster)
lrow() { printf '%-28s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }
lrow "one client: walk us" "$(num "${R[bridgefs,rtt]}" 1)" "$(num "${R[diod,rtt]}" 1)"
lrow "one client: getattr us" "$(num "${R[bridgefs,rtt]}" 2)" "$(num "${R[diod,rtt]}" 2)"
lrow "one client: clunk us" "$(num "${R[bridgefs,rtt]}" 3)" "$(num "${R[diod,rtt]}" 3)"
lrow "one client, uid 1000: walk us" "$(num "${R[bridgefs,rtt1000]}" 1)" "$(num "${R[diod,rtt1000]}" 1)"
lrow "uid 1000: lopen dir us" "$(num "${R[bridgefs,dirs1000]}" 1)" "$(num "${R[diod,dirs1000]}" 1)"
lrow "uid 1000: readdir 8K us" "$(num "${R[bridgefs,dirs1000]}" 2)" "$(num "${R[diod,dirs1000]}" 2)"

# the server's CPU per unit of work: lower is better, so the ratio is diod's over bridgefs's
printf '\n%-44s %12s %12s %8s\n' "server CPU per unit of work, us" bridgefs diod ratio
lrow2() { printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }
lrow2 "diodload, per op" "$(echo "${R[bridgefs,load]}" | awk '{print $NF}')" "$(echo "${R[diod,load]}" | awk '{print $NF}')"
lrow2 "diodload -g, per getattr" "$(echo "${R[bridgefs,getattr]}" | awk '{print $NF}')" "$(echo "${R[diod,getattr]}" | awk '{print $NF}')"
lrow2 "guest dd, per MiB written and read" "${R[bridgefs,ddcpu]}" "${R[diod,ddcpu]}"
lrow2 "guest find + ls -lR, per entry and pass" "${R[bridgefs,metacpu]}" "${R[diod,metacpu]}"
lrow2 "host outside the guest: dd, per MiB" "${R[bridgefs,ddhost]}" "${R[diod,ddhost]}"
lrow2 "host outside the guest: find + ls -lR, per entry" "${R[bridgefs,metahost]}" "${R[diod,metahost]}"
echo "(the server process's user and system CPU, all threads, in the run kept above (dd: the mean of its $ROUNDS runs); above 1.00 bridgefs spends less;"
echo " bridgefs's JIT compilers, not counted above, used ${R[bridgefs,guestjit]} s of CPU during the guest rows;"
echo " bridgefs writes dd's data back to disk on its own threads, diod's is written back by the kernel's, charged to no server;"
echo " the host rows: the whole machine's CPU less the guest's (QEMU's) and bridgefs's JIT compilers': like for like, they count"
echo " that write-back and the network stack; booting the guest is in them, the same for both)"
echo "(${MIB} MiB file, diodload ${SECS}s x 16 threads, best of $ROUNDS; one client: median round trip on loopback, one request at a time, lowest of $ROUNDS, and a ${MIB} MiB file written in 64 KiB Twrites, best of $ROUNDS; guest dd best of $ROUNDS, field by field, metadata once; the guest runs under QEMU TCG: compare servers, not absolute numbers)"

# where the metadata row's time goes: the guest's elapsed time per 9P request against bridgefs's own
# time per request (admission to reply written, p50/p99 by message type, from its latency timers)
secs=$(num "${R[bridgefs,meta]}" 3); reqs=${R[bridgefs,metareqs]}
echo
awk -v s="$secs" -v n="$reqs" 'BEGIN{ if (n > 0 && s > 0) printf "metadata row, bridgefs: %d requests in %.2f s of guest time = %.0f us per request as the guest sees it\n", n, s, s * 1e6 / n }'
sample() { awk -v k="$2" 'index($1, k) == 1 { print $2 }' "$1"; }
micros() { sample "$1" "$2" | awk '{ printf "%.0f us", $1 * 1e6 }'; }   # a latency sample in seconds, as "N us"
delta() { echo $(( $(sample "$work/metrics-after-meta.txt" "$1" | awk '{v = $1} END {print v + 0}') - $(sample "$work/metrics-before-dd.txt" "$1" | awk '{v = $1} END {print v + 0}') )); }   # a count in the guest rows
printf '%-10s %10s %12s %12s %12s\n' type requests "server p50" "server p99" "at once"
for t in walk getattr clunk readdir lopen; do
  n=$(delta "bridgefs_9p_requests_total{type=\"$t\"}")
  p50=$(micros "$work/metrics-after-meta.txt" "bridgefs_9p_request_seconds{type=\"$t\",quantile=\"0.5\"}")
  p99=$(micros "$work/metrics-after-meta.txt" "bridgefs_9p_request_seconds{type=\"$t\",quantile=\"0.99\"}")
  fast=$(delta "bridgefs_9p_requests_fast_total{type=\"$t\"}")
  printf '%-10s %10s %12s %12s %12s\n' "$t" "${n:--}" "${p50:--}" "${p99:--}" "${fast:-0}"
done
echo "(requests: in the guest rows, dd included; latencies: since the timers were started afresh before them; at once: answered on the network thread, no executor)"

# the same for the dd rows: the guest's time per request against the server's own
echo
for io in write read; do
  n0=$(sample "$work/metrics-before-dd.txt" "bridgefs_9p_requests_total{type=\"$io\"}")
  n1=$(sample "$work/metrics-after-dd.txt" "bridgefs_9p_requests_total{type=\"$io\"}")
  p50=$(sample "$work/metrics-after-dd.txt" "bridgefs_9p_request_seconds{type=\"$io\",quantile=\"0.5\"}")
  mbs=$(num "${R[bridgefs,dd]}" $([ $io = write ] && echo 1 || echo 2))
  # requests per run (bridgefs is asked nothing between its dd runs, and each writes and reads the same
  # file); the guest's time: the best run's
  awk -v io=$io -v n=$(( (${n1:-0} - ${n0:-0}) / ROUNDS )) -v mib=$MIB -v mbs="$mbs" -v p="${p50:-0}" 'BEGIN{ if (n > 0 && mbs > 0) {
    g = mib / mbs * 1e6 / n; printf "guest dd %s, bridgefs: %d requests, %.0f us each as the guest sees it, server p50 %.0f us (%.1f%%)\n", io, n, g, p * 1e6, 100 * p * 1e6 / g } }'
done
