#!/usr/bin/env bash
# Fetches Debian's generic (non-cloud) kernel and its modules for the test guests, once.
# The guest kernel boots under QEMU TCG; its modules (virtio, ext4, 9p, nbd) are loaded by the
# busybox initramfs that the client tests build (see GuestVm.java).
# Output: $BRIDGEFS_GUEST_DIR (default ~/.cache/bridgefs/guest) with vmlinuz and lib/modules/<ver>/.
set -euo pipefail
dir="${BRIDGEFS_GUEST_DIR:-$HOME/.cache/bridgefs/guest}"
if [ -f "$dir/vmlinuz" ] && [ -d "$dir/lib/modules" ]; then
  echo "guest kernel: already in $dir"; exit 0
fi
mkdir -p "$dir"
# Newest generic kernel that apt knows: prefer the unsigned package (DESIGN.md), else the signed one.
pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -n1)
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2}' | head -n1)
fi
[ -n "$pkg" ] || { echo "fetch-guest-kernel: no linux-image-*-amd64 package known to apt (run apt-get update)" >&2; exit 1; }
echo "guest kernel: downloading $pkg"
tmp=$(mktemp -d)
( cd "$tmp" && apt-get download "$pkg" >/dev/null )
dpkg-deb -x "$tmp"/*.deb "$tmp/root"
kimg=$(ls "$tmp"/root/boot/vmlinuz-* | head -n1)
cp "$kimg" "$dir/vmlinuz"
mkdir -p "$dir/lib"
rm -rf "$dir/lib/modules"
cp -a "$tmp/root/lib/modules" "$dir/lib/modules"
rm -rf "$tmp"
echo "guest kernel: $(basename "$kimg") in $dir"
