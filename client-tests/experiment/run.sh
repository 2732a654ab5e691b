#!/usr/bin/env bash
# The reference experiment of DESIGN.md as one command. Builds bridgefs, installs what the experiment
# uses when missing (as root, with apt-get), fetches the guest kernel, then runs it with progress output:
#   client-tests/experiment/run.sh [--size 256m] [--source /usr/share] [--out DIR] [--guest-memory MIB]
# Results (runs.csv, together.csv, time.png, memory.png, together.png, report.md, guest consoles) go to
# --out, by default client-tests/experiment/results. Run it as root so host caches can be dropped.
set -euo pipefail
cd "$(dirname "$0")/../.."
args=("$@")
out=client-tests/experiment/results
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = --out ] && out=${args[$((i + 1))]}; done

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mke2fs >/dev/null || [ -x /usr/sbin/mke2fs ] || need+=(e2fsprogs)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v fincore >/dev/null || need+=(util-linux)
command -v cpio >/dev/null || need+=(cpio)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "experiment: installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "experiment: missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"; exit 1
  fi
fi
[ -f "${BRIDGEFS_GUEST_DIR:-$HOME/.cache/bridgefs/guest}/vmlinuz" ] || client-tests/scripts/fetch-guest-kernel.sh

echo "experiment: building bridgefs"
mvn -B -q -DskipTests package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=test
# run from copies, so that a rebuild while the experiment runs cannot change the code under measurement
snap=$(mktemp -d /var/tmp/bridgefs-experiment-code.XXXXXX)
trap 'rm -rf "$snap"' EXIT
cp server/target/bridgefs.jar "$snap/"
cp -r client-tests/target/test-classes "$snap/"
mkdir -p "$snap/lib" && tr ':' '\n' < client-tests/target/classpath.txt | while read -r j; do [ -n "$j" ] && cp "$j" "$snap/lib/"; done
java -Xmx1g -Dbridgefs.jar="$snap/bridgefs.jar" -Dbridgefs.experiment.plot="$PWD/client-tests/experiment/plot.py" \
  -Dbridgefs.experiment.command="client-tests/experiment/run.sh${*:+ $*}" \
  -cp "$snap/test-classes:$snap/lib/*" \
  io.bridgefs.clienttests.ReferenceExperiment --out "$out" "$@"
