#!/usr/bin/env bash
# Side-by-side NBD benchmark: bridgefs, qemu-nbd and nbdkit's file plugin serve the same 1 GiB image
# on this machine, in one run; each row prints the three results and bridgefs/peer ratios (> 1 means
# bridgefs is faster). Run by hand (as root, so the host page cache can be dropped for the cold rows):
#   client-tests/bench/nbd-bench.sh [IMAGE_SIZE_MIB] [SECONDS_PER_FIO_ROW] [ROUNDS]
# Cold: server restarted and host caches dropped. Warm: the same again right after a full read (best of three).
# The *_cold write rows: after a restart with caches dropped, every page of half the image written once.
# Every row is the best of ROUNDS rounds (default 3; with 2, nbdkit's cold rows moved 2x between two runs
# in session 32); each round runs the servers in a rotated order.
# bridgefs (a JVM) is JIT-warmed on separate images after each start, as a long-running server is (warm
# and cold reads, writes; its cache emptied before the rows); the CPU its JIT compilers still used
# during the measured rows is printed at the end.
# A second table gives what each kept row cost in CPU per 4 KiB request or MiB: the server process's,
# the whole machine's (the client and the kernel's write-back included), and the client's share of a
# core: a row whose client is at ~100% of a core measures the client more than the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${1:-1024}
SECS=${2:-10}
ROUNDS=${3:-3}
[ -f server/target/bridgefs.jar ] || mvn -B -q package -DskipTests
work=$(mktemp -d /var/tmp/bridgefs-bench.XXXXXX)
cp server/target/bridgefs.jar "$work/bridgefs.jar"   # a rebuild during the run must not touch the running server
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
for t in qemu-nbd qemu-io nbdkit nbdcopy fio python3 curl; do command -v $t >/dev/null || { echo "missing $t (./test.sh installs it)"; exit 1; }; done
img="$work/bench.img"
echo "bench: creating a ${SIZE_MIB} MiB image of random data in $work"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$img"
head -c $((256 << 20)) /dev/urandom > "$work/warmup.img"
head -c $((256 << 20)) /dev/urandom > "$work/warmcold.img"
truncate -s 256m "$work/warmwrite.img"
sync

PORT=10900
ADMIN_PORT=10990   # bridgefs's metrics and operator actions (the NBD port moves on with each server started)
pid=
start() {  # start NAME
  case $1 in
    bridgefs) java -XX:MaxDirectMemorySize=3g -jar "$work/bridgefs.jar" serve --nbd-listen 127.0.0.1:$PORT \
                --nbd-export "bench=$img" --nbd-export "warmup=$work/warmup.img" --nbd-export "warmcold=$work/warmcold.img" --nbd-export "warmwrite=$work/warmwrite.img" --cache-size $((SIZE_MIB + 768))m \
                --writeback-interval 0 --metrics-listen 127.0.0.1:$ADMIN_PORT >"$work/srv.log" 2>&1 &
              pid=$! ;;
    qemu-nbd) qemu-nbd -f raw -x bench -p $PORT -b 127.0.0.1 -t --shared=16 --cache=writeback --aio=threads "$img" >"$work/srv.log" 2>&1 &
              pid=$! ;;
    nbdkit)   nbdkit -f -i 127.0.0.1 -p $PORT file "$img" >"$work/srv.log" 2>&1 &
              pid=$! ;;
    # the protocol's ceiling: a C server with no I/O at all (filled with the same data before the rows)
    nbdkit-memory) nbdkit -f -i 127.0.0.1 -p $PORT memory "${SIZE_MIB}M" >"$work/srv.log" 2>&1 &
              pid=$! ;;
  esac
  for _ in $(seq 100); do
    if nbdinfo --size "nbd://127.0.0.1:$PORT/bench" >/dev/null 2>&1; then
      # a long-running JVM server is JIT-compiled: warm it on another image, so rows measure the data path
      if [ "$1" = bridgefs ]; then
        # 48 passes: with 12, Netty's read path was still being compiled by C2 during the first three
        # warm passes of the bench image (1.7-5x the server CPU of a compiled pass; measured in session 15)
        for _ in $(seq 48); do nbdcopy "nbd://127.0.0.1:$PORT/warmup" null:; done
        # and each of the rows' request kinds: random reads of pages not yet cached (a second image),
        # random reads and writes of cached ones, 1 MiB writes
        warm_fio randread 4k 32 warmcold
        warm_fio randrw 4k 32 warmup
        # and writes to pages not cached (a sparse image: about half of them new pages)
        warm_fio randwrite 4k 32 warmwrite
        # 1 MiB writes to both images at once: past a quarter of the cache dirty, so the background
        # flusher's chunked write-back runs (and is compiled) too, as it does in the write rows
        warm_fio write 1m 8 warmup warmcold
        # and cold reads, which a long-running server meets all day but a fresh one only in the rows: its
        # cache emptied (POST /drop-caches) before each pass, sequential passes of one image and random
        # reads of it. Without them C2 was still compiling the fill and eviction paths during the cold
        # rows (0.37-0.52 s of CPU in seqread_cold, 0.47-0.71 s in randread_cold, per two rounds, in
        # session 28's runs; by hand, 430 us of a 1 GiB cold read's 1,200 us of server CPU per MiB)
        for _ in $(seq 16); do drop_caches; nbdcopy "nbd://127.0.0.1:$PORT/warmcold" null:; done
        for _ in 1 2 3; do drop_caches; warm_fio randread 4k 32 warmcold; done
        # and sequential writes into an emptied cache, which the seqwrite_cold row is: streams of new
        # pages, written behind (--write-behind) by the flusher. Without them its JIT compilers used
        # 0.22 s of CPU during that row in session 35's first run (143 us per MiB written)
        for _ in 1 2 3 4; do drop_caches; warm_fio write 1m 8 warmwrite; done
        drop_caches; cold
        jit_mark=$(jit_cs)
      fi
      return 0
    fi
    sleep 0.1
  done
  echo "bench: $1 did not start"; cat "$work/srv.log"; exit 1
}
# CPU time (centiseconds) of the server JVM's JIT compiler threads: what compiling cost during the
# measured rows is reported, so a row that ran while C2 was still compiling can be told apart
jit_cs() {
  local s=0 t c st f
  for t in /proc/$pid/task/*; do
    { read -r c < "$t/comm" && read -r st < "$t/stat"; } 2>/dev/null || continue   # a thread may have ended
    # the fields after the thread's name ("(C2 CompilerThre)" has a space): utime and stime are the 12th and 13th
    case $c in "C1 Compi"*|"C2 Compi"*) f=(${st##*) }); s=$((s + f[11] + f[12])) ;; esac
  done
  echo $s
}
jit_mark=
declare -A JIT
jit_row() {  # jit_row ROW: bridgefs's JIT CPU since the last mark (set after its warm-up) is the row's
  local now; now=$(jit_cs); JIT[$1]=$(( ${JIT[$1]:-0} + now - jit_mark )); jit_mark=$now
}
warm_fio() {  # warm_fio RW BS IODEPTH EXPORT...: 2 s of one row's kind of request on each export at once (JIT warm-up)
  # ending with a FLUSH, as the rows do: it runs the write-back path, which the warm-up's writes to a
  # 256 MiB image would otherwise never reach (below the cache's background threshold), and leaves the
  # warm-up image clean rather than up to a sixth of the cache dirty when the rows start
  local rw=$1 bs=$2 qd=$3 jobs=() e; shift 3
  for e in "$@"; do jobs+=(--name="$e" --uri="nbd://127.0.0.1:$PORT/$e"); done
  fio --ioengine=nbd --rw=$rw --bs=$bs --iodepth=$qd --size=256m --time_based --runtime=2 --end_fsync=1 \
      "${jobs[@]}" >/dev/null 2>&1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
# bridgefs evicts every clean page (its operator action; the warm-up's writes ended with a FLUSH)
drop_caches() { curl -fsS -X POST "http://127.0.0.1:$ADMIN_PORT/drop-caches" >/dev/null; }
cold() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
uri() { echo "nbd://127.0.0.1:$PORT/bench"; }

# What a measured row cost in CPU, beside its speed: the server process's CPU and the whole machine's
# (every process and kernel thread: the client, and the host's own write-back of a buffered server's
# pages, which no server process is charged for), per unit of work (a 4 KiB request, or a MiB), and the
# client's CPU as a share of one core. A row whose client is at ~100% of a core measures the client:
# there the machine's CPU per request tells the servers apart. Written to a file for keep (the
# measurements run in subshells).
cpu_mark() {  # -> "SERVER_TICKS MACHINE_TICKS"
  local st f; read -r st < /proc/$pid/stat; f=(${st##*) })   # utime and stime: the 12th and 13th after the name
  echo "$((f[11] + f[12])) $(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat)"   # busy: user nice system irq softirq
}
cpu_note() {  # cpu_note MARK UNITS CLIENT_PERCENT
  local now; now=$(cpu_mark)
  awk -v a="$1" -v b="$now" -v u="$2" -v c="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN{ split(a, x, " "); split(b, y, " ");
    if (u > 0) printf "%s %s %.0f\n", num((y[1] - x[1]) * 1e6 / hz / u), num((y[2] - x[2]) * 1e6 / hz / u), c }
    function num(v) { return sprintf(v < 100 ? "%.1f" : "%.0f", v) }' > "$work/cpu.last"
}

copy_mibs() {  # MiB/s of nbdcopy to null:
  local t0 t1 m TIMEFORMAT='%U %S %R'; m=$(cpu_mark); t0=$(date +%s.%N)
  { time nbdcopy "$(uri)" null: ; } 2> "$work/time.last"; t1=$(date +%s.%N)
  cpu_note "$m" "$SIZE_MIB" "$(awk '{ if ($3 > 0) printf "%.0f", ($1 + $2) * 100 / $3 }' "$work/time.last")"
  awk -v s="$SIZE_MIB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", s/(b-a)}'
}
fio_row() {  # fio_row RW BS IODEPTH -> IOPS (4k) or MiB/s (large)
  # RAMP: the second of requests before fio's measured ones, which the CPU counted includes
  RAMP=1 fio_run "$1" "$2" "$3" --size=${SIZE_MIB}m --time_based --runtime=$SECS --ramp_time=1 --norandommap --randrepeat=0
}
# fio_once RW BS IODEPTH HALF -> IOPS (4k) or MiB/s (large): every block of one half of the image (0 or 1)
# written once (fio's random map: no block twice), none of it cached; the time includes the closing FLUSH
fio_once() {
  local half=$(( SIZE_MIB / 2 ))
  RAMP=0 fio_run "$1" "$2" "$3" --offset=$(( $4 * half ))m --size=${half}m
}
fio_run() {  # fio_run RW BS IODEPTH FIO_OPTION...: one job ending with a FLUSH (in its time); IOPS (4k) or MiB/s
  local rw=$1 bs=$2 qd=$3 out m; shift 3
  m=$(cpu_mark)
  out=$(fio --name=b --ioengine=nbd --uri="$(uri)" --rw=$rw --bs=$bs --iodepth=$qd "$@" --minimal --end_fsync=1 2>/dev/null | grep ";" | tail -n1)
  # terse v3 (1-based awk fields): 6/7/8/9 read KiB, KiB/s, IOPS, ms; 47/48/49/50 the same for writes;
  # 88/89 the job's user/system CPU (% of one core). Units of work: 4 KiB requests, or MiB; the ramp's
  # requests (not in fio's counts) taken at the measured rate
  cpu_note "$m" "$(echo "$out" | awk -F';' -v rw=$rw -v bs=$bs -v ramp=${RAMP:-0} '{ r = (rw ~ /read/);
    kib = r ? $6 : $47; ms = r ? $9 : $50; if (ms > 0) kib *= (ms + 1000 * ramp) / ms;
    printf "%.0f", bs == "4k" ? kib / 4 : kib / 1024 }')" "$(echo "$out" | awk -F';' '{printf "%.0f", $88 + $89}')"
  echo "$out" | awk -F';' -v rw=$rw -v bs=$bs '{
    r = (rw ~ /read/); kib = r ? $7 : $48; iops = r ? $8 : $49;
    if (bs == "4k") printf "%.0f", iops; else printf "%.0f", kib/1024 }'
}

# Once per run, after bridgefs's write rows (its cache full of their pages, no write-back timer): 16 MiB
# written and FLUSHed, then the server killed with SIGKILL: what the FLUSH acknowledged must be in the
# image file. A server that acknowledged a FLUSH before its data was written fails the bench.
durable=
durable_check() {
  local off=$(( (SIZE_MIB / 2) << 20 ))
  qemu-io -f raw -c "write -P 0xa5 $off 16M" -c flush "$(uri)" >/dev/null
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  if python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); sys.exit(f.read(16 << 20) != b"\xa5" * (16 << 20))' "$img" "$off"; then
    durable="16 MiB written and FLUSHed after the write rows, then kill -9: all of it in the image file"
  else
    echo "bench: DATA LOST: bridgefs acknowledged a FLUSH, was killed with SIGKILL, and the image does not hold what it flushed"
    exit 1
  fi
}

# The best of three warm passes, for every server alike: bridgefs's first full pass after a cold one cost
# it up to twice the CPU of the later ones (measured once: 0.6-0.7 s per GiB, then 0.3-0.4; a noisier
# repeat showed passes of the warm-up image as costly) although the JVM was warmed on another image.
warm_reads() { for _ in 1 2 3; do keep $1 seqread_warm "$(copy_mibs)"; done; }

declare -A R
declare -A CPU
declare -A ALL    # every round's figure, in the order run: a best can be told from a peer's fast and slow modes
keep() {  # keep SERVER ROW VALUE: the best of the rounds so far, and what it cost in CPU (cpu_note)
  [ "$1" = bridgefs ] && jit_row "$2"
  [ "$3" != - ] && ALL[$1,$2]="${ALL[$1,$2]:-}${ALL[$1,$2]:+ }$3"
  local old=${R[$1,$2]:-} cost=-
  [ "$3" != - ] && [ -s "$work/cpu.last" ] && cost=$(cat "$work/cpu.last")
  rm -f "$work/cpu.last"
  if [ "$3" = - ] || [ -z "$old" ] || [ "$old" = - ] || [ "$3" -gt "$old" ]; then R[$1,$2]=$3; CPU[$1,$2]=$cost; fi
}
servers=(bridgefs qemu-nbd nbdkit nbdkit-memory)
for round in $(seq "$ROUNDS"); do
for i in 0 1 2 3; do
  s=${servers[$(( (i + round - 1) % 4 ))]}
  echo "bench: round $round/$ROUNDS: $s"
  if [ $s = nbdkit-memory ]; then
    start $s; nbdcopy "$img" "$(uri)"
    keep $s seqread_cold -; keep $s randread_cold -
    warm_reads $s
    keep $s randread_warm "$(fio_row randread 4k 32)"
    keep $s seqwrite "$(fio_row write 1m 8)"
    keep $s randwrite "$(fio_row randwrite 4k 32)"
    keep $s seqwrite_cold -; keep $s randwrite_cold -
    stop; PORT=$((PORT + 1)); continue
  fi
  cold; start $s
  keep $s seqread_cold "$(copy_mibs)"
  warm_reads $s
  stop; cold; start $s
  keep $s randread_cold "$(fio_row randread 4k 32)"
  nbdcopy "$(uri)" null:; [ $s = bridgefs ] && jit_row fill
  keep $s randread_warm "$(fio_row randread 4k 32)"
  keep $s seqwrite "$(fio_row write 1m 8)"
  keep $s randwrite "$(fio_row randwrite 4k 32)"
  # a guest writing where nothing is cached: every page once, 1M sequential over the first half, 4k
  # random over the second (whole pages: neither needs a read of the old content)
  stop; cold; start $s
  keep $s seqwrite_cold "$(fio_once write 1m 8 0)"
  keep $s randwrite_cold "$(fio_once randwrite 4k 32 1)"
  if [ $s = bridgefs ] && [ -z "$durable" ]; then durable_check; else stop; fi
  PORT=$((PORT + 1))
done
done

rows="seqread_cold seqread_warm randread_cold randread_warm seqwrite randwrite seqwrite_cold randwrite_cold"
declare -A UNIT=([seqread_cold]="MiB/s nbdcopy" [seqread_warm]="MiB/s nbdcopy" [randread_cold]="IOPS fio 4k qd32"
                 [randread_warm]="IOPS fio 4k qd32" [seqwrite]="MiB/s fio 1M qd8" [randwrite]="IOPS fio 4k qd32"
                 [seqwrite_cold]="MiB/s fio 1M qd8" [randwrite_cold]="IOPS fio 4k qd32")
ratio() { awk -v a="$1" -v c="$2" 'BEGIN{ if (c ~ /^[0-9.]+$/ && c > 0) printf "%.2f", a/c; else printf "-" }'; }
printf '\n%-14s %-17s %10s %10s %10s %10s %12s %12s %12s\n' row unit bridgefs qemu-nbd nbdkit nbdkit-mem "vs qemu-nbd" "vs nbdkit" "vs nbdkit-mem"
for r in $rows; do
  b=${R[bridgefs,$r]}; q=${R[qemu-nbd,$r]}; k=${R[nbdkit,$r]}; m=${R[nbdkit-memory,$r]}
  printf '%-14s %-17s %10s %10s %10s %10s %12s %12s %12s\n' $r "${UNIT[$r]}" $b $q $k $m "$(ratio $b $q)" "$(ratio $b $k)" "$(ratio $b $m)"
done
# the CPU of the rounds kept above: server process / whole machine, microseconds per unit of work
cpu_of() { local c=${CPU[$1,$2]:--}; [ "$c" = - ] && { echo -; return; }; set -- $c; echo "$1/$2"; }
client_of() { local c=${CPU[$1,$2]:--}; [ "$c" = - ] && { echo -; return; }; set -- $c; echo "$3"; }
machine_ratio() {  # the peer's machine CPU per unit over bridgefs's: above 1.00 bridgefs costs the host less
  local b=${CPU[bridgefs,$2]:--} p=${CPU[$1,$2]:--}
  [ "$b" = - ] || [ "$p" = - ] && { echo -; return; }
  awk -v b="$b" -v p="$p" 'BEGIN{ split(b, x, " "); split(p, y, " "); if (x[2] > 0) printf "%.2f", y[2] / x[2]; else printf "-" }'
}
printf '\nCPU per unit of work in microseconds (a 4 KiB request, or a MiB): server process / whole machine\n'
printf '%-14s %-6s %12s %12s %12s %12s %9s %9s %11s\n' row unit bridgefs qemu-nbd nbdkit nbdkit-mem "qemu/brfs" "nbdkit/b" "client %cpu"
for r in $rows; do
  case $r in rand*) u=4k-op ;; *) u=MiB ;; esac
  printf '%-14s %-6s %12s %12s %12s %12s %9s %9s %11s\n' $r $u "$(cpu_of bridgefs $r)" "$(cpu_of qemu-nbd $r)" "$(cpu_of nbdkit $r)" \
    "$(cpu_of nbdkit-memory $r)" "$(machine_ratio qemu-nbd $r)" "$(machine_ratio nbdkit $r)" \
    "$(client_of bridgefs $r)/$(client_of qemu-nbd $r)/$(client_of nbdkit $r)/$(client_of nbdkit-memory $r)"
done
echo "(ratios: the peer's whole-machine CPU per unit over bridgefs's, above 1.00 bridgefs costs the host less; client %cpu: fio's or nbdcopy's, % of one core, bridgefs/qemu-nbd/nbdkit/nbdkit-mem; bridgefs's figures include its JIT compilers', given by row below)"
printf '\nEvery round, in the order run (seqread_warm: three passes a round); the tables above keep the best:\n'
for r in $rows; do
  line=$(printf '%-14s' $r)
  for sv in "${servers[@]}"; do line="$line | $sv ${ALL[$sv,$r]:--}"; done
  echo "$line"
done
echo "durability (bridgefs): $durable"
jit_by_row=""; jit_all=0
for r in $rows fill; do jit_by_row="$jit_by_row $r $(awk -v c=${JIT[$r]:-0} 'BEGIN{printf "%.2f", c / 100}')"; jit_all=$((jit_all + ${JIT[$r]:-0})); done
echo "bridgefs's JIT compilers during its measured rows: $(awk -v c=$jit_all 'BEGIN{printf "%.2f", c / 100}') s of CPU in all ($ROUNDS rounds, three server starts each; by row, s:$jit_by_row; fill: the unmeasured full read before randread_warm)"
echo "(ratios are bridgefs/peer: above 1.00 bridgefs is faster; best of $ROUNDS rounds; ${SIZE_MIB} MiB image, ${SECS}s per fio row, $(nproc) cores)"
