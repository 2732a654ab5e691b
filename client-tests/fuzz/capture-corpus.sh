#!/usr/bin/env bash
# Rebuilds the fuzzing corpus from real client traffic: bridgefs behind a recording proxy, driven by
# qemu-img, qemu-io, nbdinfo and nbdcopy (NBD) and by diod's diodls, diodcat and diodload and a Linux
# guest's mount -t 9p (9P). Each connection's client-to-server bytes become one file in
# server/src/test/resources/corpus/{nbd,9p}/ (first 256 KiB). Run by hand after protocol changes:
#   client-tests/fuzz/capture-corpus.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
jar=server/target/bridgefs.jar
[ -f "$jar" ] || mvn -B -q package -DskipTests
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
out_nbd=$top/server/src/test/resources/corpus/nbd
out_9p=$top/server/src/test/resources/corpus/9p
rm -rf "$out_nbd" "$out_9p"; mkdir -p "$out_nbd" "$out_9p"
mkdir -p "$work/share/dir/sub"
head -c 300000 /dev/urandom > "$work/share/file"
echo hello > "$work/share/dir/sub/small"
ln -s file "$work/share/link"
truncate -s 4M "$work/disk.img"; head -c 1048576 /dev/urandom | dd of="$work/disk.img" conv=notrunc status=none
cp "$jar" "$work/bridgefs.jar"
java -jar "$work/bridgefs.jar" serve --nbd-listen 127.0.0.1:10899 --nbd-export "disk=$work/disk.img" \
  --9p-listen 127.0.0.1:5699 --9p-export "share=$work/share" > "$work/server.log" 2>&1 &
pids+=($!)
python3 client-tests/fuzz/tee_proxy.py 10898 10899 "$out_nbd" nbd &
pids+=($!)
python3 client-tests/fuzz/tee_proxy.py 5698 5699 "$out_9p" 9p &
pids+=($!)
for i in $(seq 50); do grep -q "Stop with" "$work/server.log" && break; sleep 0.2; done
N=nbd://127.0.0.1:10898/disk
echo "capture: NBD clients"
nbdinfo --list nbd://127.0.0.1:10898 >/dev/null
nbdinfo --map $N >/dev/null
qemu-img info --output=json $N >/dev/null
qemu-io -f raw -c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k' -c 'discard 64k 64k' -c 'write -z 128k 64k' -c flush $N >/dev/null
nbdcopy -C 2 $N "$work/copy.img"
nbdcopy "$work/copy.img" $N
qemu-img convert -f raw -O raw "$work/copy.img" "$N" -n
fio --name=corpus --ioengine=nbd --uri=$N --rw=randrw --bs=4k --size=1m --iodepth=8 --time_based --runtime=1 >/dev/null
echo "capture: 9P clients"
diodls -s 127.0.0.1:5698 -a share -l / >/dev/null
diodcat -s 127.0.0.1:5698 -a share /file >/dev/null
timeout 5 diodload -s 127.0.0.1:5698 -a share -n 2 -r 2 >/dev/null 2>&1 || true
if [ -f "$HOME/.cache/bridgefs/guest/vmlinuz" ]; then
  echo "capture: a Linux guest's 9P mount"
  (cd client-tests && mvn -B -q -o verify -Dit.test=GuestFilePathIT -Dsurefire.skip=true \
     -Dcorpus.capture="$out_9p" >/dev/null 2>&1) || echo "capture: the guest run did not complete (its traffic so far is kept)"
fi
sleep 1
ls -la "$out_nbd" "$out_9p" | awk '{print $5, $9}'
