#!/usr/bin/env bash
# Side-by-side NBD-over-TLS benchmark: bridgefs, qemu-nbd (--tls-creds) and nbdkit (--tls=require) serve
# the same image with the same keys, pre-shared (psktool) and X.509 (certtool), in one run; rows are
# nbdcopy sequential read (warm, MiB/s) and 4k reads at queue depth 32 on one connection (nbdcopy
# --request-size=4096 --requests=32; fio's nbd engine refuses tls-psk-file in URIs and qemu-img bench
# takes no tls-creds object), with bridgefs/peer ratios (> 1: bridgefs is faster). By hand, not in CI:
#   client-tests/bench/tls-bench.sh [IMAGE_SIZE_MIB] [SECONDS_PER_FIO_ROW]
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${1:-512}
SECS=${2:-8}
[ -f server/target/bridgefs.jar ] || mvn -B -q package -DskipTests
for t in qemu-nbd nbdkit nbdcopy fio certtool psktool; do command -v $t >/dev/null || { echo "missing $t (./test.sh installs it)"; exit 1; }; done
work=$(mktemp -d /var/tmp/bridgefs-tlsbench.XXXXXX)
cp server/target/bridgefs.jar "$work/bridgefs.jar"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
echo "tls-bench: keys and certificates"
psktool -u alice -p keys.psk >/dev/null 2>&1
mkdir psk && cp keys.psk psk/keys.psk
printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 3\n' > ca.info
printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 3\n' > server.info
certtool --generate-privkey --outfile ca-key.pem 2>/dev/null
certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem 2>/dev/null
certtool --generate-privkey --outfile server-key.pem 2>/dev/null
certtool --generate-certificate --load-privkey server-key.pem --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
  --template server.info --outfile server-cert.pem 2>/dev/null
mkdir x509 client && cp ca-cert.pem server-cert.pem server-key.pem x509/ && cp ca-cert.pem client/
echo "tls-bench: a ${SIZE_MIB} MiB image of random data"
head -c $((SIZE_MIB << 20)) /dev/urandom > bench.img
PORT=10950
pid=
start() {  # start SERVER CREDS
  case $1-$2 in
    bridgefs-psk)  java -jar bridgefs.jar serve --nbd-listen 127.0.0.1:$PORT --nbd-export bench=bench.img --cache-size $((SIZE_MIB + 256))m \
                     --writeback-interval 0 --tls require --tls-psk keys.psk >srv.log 2>&1 & pid=$! ;;
    bridgefs-x509) java -jar bridgefs.jar serve --nbd-listen 127.0.0.1:$PORT --nbd-export bench=bench.img --cache-size $((SIZE_MIB + 256))m \
                     --writeback-interval 0 --tls require --tls-certificates x509 >srv.log 2>&1 & pid=$! ;;
    qemu-nbd-psk)  qemu-nbd -f raw -x bench -p $PORT -b 127.0.0.1 -t --shared=16 --cache=writeback \
                     --object tls-creds-psk,id=tls0,endpoint=server,dir=$work/psk --tls-creds tls0 bench.img >srv.log 2>&1 & pid=$! ;;
    qemu-nbd-x509) qemu-nbd -f raw -x bench -p $PORT -b 127.0.0.1 -t --shared=16 --cache=writeback \
                     --object tls-creds-x509,id=tls0,endpoint=server,dir=$work/x509,verify-peer=no --tls-creds tls0 bench.img >srv.log 2>&1 & pid=$! ;;
    nbdkit-psk)    nbdkit -f -i 127.0.0.1 -p $PORT --tls=require --tls-psk=keys.psk file bench.img >srv.log 2>&1 & pid=$! ;;
    nbdkit-x509)   nbdkit -f -i 127.0.0.1 -p $PORT --tls=require --tls-certificates=x509 file bench.img >srv.log 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 100); do
    if nbdinfo --size "$(uri $2)" >/dev/null 2>&1; then
      if [ "$1" = bridgefs ]; then    # a long-running JVM is JIT-compiled: warm it first
        nbdcopy "$(uri $2)" null:; bench_iops $2 >/dev/null
      fi
      return 0
    fi
    sleep 0.1
  done
  echo "tls-bench: $1 ($2) did not start"; cat srv.log; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
uri() { if [ "$1" = psk ]; then echo "nbds://alice@127.0.0.1:$PORT/bench?tls-psk-file=$work/keys.psk"; else echo "nbds://127.0.0.1:$PORT/bench?tls-certificates=$work/client"; fi; }
copy_mibs() {
  local t0 t1; t0=$(date +%s.%N); nbdcopy "$(uri $1)" null:; t1=$(date +%s.%N)
  awk -v s="$SIZE_MIB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", s/(b-a)}'
}
bench_iops() {  # 4k reads, 32 in flight, one connection: IOPS
  local t0 t1; t0=$(date +%s.%N)
  nbdcopy -C 1 --request-size=4096 --requests=32 "$(uri $1)" null:
  t1=$(date +%s.%N)
  awk -v s="$SIZE_MIB" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", s * 256 / (b-a)}'
}
declare -A R
for creds in psk x509; do
  for s in bridgefs qemu-nbd nbdkit; do
    echo "tls-bench: $s over $creds"
    start $s $creds
    nbdcopy "$(uri $creds)" null:
    a=$(copy_mibs $creds); b=$(copy_mibs $creds)
    R[$s,$creds,seq]=$(( a > b ? a : b ))
    R[$s,$creds,rand]=$(bench_iops $creds)
    stop
  done
done
printf '\n%-22s %-18s %9s %9s %9s %12s %12s\n' row unit bridgefs qemu-nbd nbdkit "vs qemu-nbd" "vs nbdkit"
for creds in psk x509; do
  for r in seq rand; do
    unit=$([ $r = seq ] && echo "MiB/s nbdcopy" || echo "IOPS 4k qd32")
    b=${R[bridgefs,$creds,$r]}; q=${R[qemu-nbd,$creds,$r]}; k=${R[nbdkit,$creds,$r]}
    printf '%-22s %-18s %9s %9s %9s %12.2f %12.2f\n' "$([ $r = seq ] && echo seqread || echo read4k)_$creds" "$unit" "$b" "$q" "$k" \
      "$(awk -v a=$b -v c=$q 'BEGIN{print a/c}')" "$(awk -v a=$b -v c=$k 'BEGIN{print a/c}')"
  done
done
echo "(ratios are bridgefs/peer: above 1.00 bridgefs is faster; ${SIZE_MIB} MiB image, warm; 4k rows: nbdcopy 4 KiB requests, 32 in flight, one connection; 2 cores)"
