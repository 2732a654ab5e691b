#!/usr/bin/env bash
# The whole test suite: unit and property tests, then real clients (nbdinfo, nbdcopy, qemu-img, qemu-io,
# fio, diod's 9P clients), Linux guests under QEMU and a small run of the reference experiment, all against
# the real server jar. Installs the Debian packages it
# needs when they are missing and it runs as root, and fetches the guest kernel once.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
need() {  # need PROGRAM PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing+=("$2")
}
need java openjdk-17-jdk-headless
need mvn maven
need qemu-system-x86_64 qemu-system-x86
need qemu-img qemu-utils
need qemu-io qemu-utils
need qemu-nbd qemu-utils
need nbdinfo libnbd-bin
need nbdcopy libnbd-bin
need nbdkit nbdkit
need fio fio
need mkfs.ext4 e2fsprogs
need debugfs e2fsprogs
need curl curl
need diodls diod
need gcc gcc
need certtool gnutls-bin          # NBD TLS tests make their keys and certificates as users do
need psktool gnutls-bin
need chromium chromium          # the dashboard test loads the page in headless Chromium
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)   # static libc for the guest's lock helper
need fincore util-linux           # the reference experiment measures the host page cache
need cpio cpio
need setpriv util-linux           # servers started as an ordinary user (security=mapped)
need systemd-analyze systemd      # conf/bridgefs.service is verified as systemd reads it
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || missing+=(python3-matplotlib)   # the experiment's figures

updated=0
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing $pkgs"
    apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  else
    echo "test.sh: missing packages: $pkgs (run as root, or: sudo apt-get install $pkgs)" >&2
    exit 1
  fi
fi

guest="${BRIDGEFS_GUEST_DIR:-$HOME/.cache/bridgefs/guest}"
if [ ! -f "$guest/vmlinuz" ]; then
  if [ "$(id -u)" = 0 ] && [ $updated = 0 ]; then apt-get update -qq; fi
  client-tests/scripts/fetch-guest-kernel.sh
fi

echo "test.sh: running mvn verify (unit + property tests, then real clients and a guest)"
mvn -B verify
