package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bridged export ({@code --nbd-export NAME=DIR,bridged}) with real clients: nbdcopy's copy of the
 * image passes e2fsck and holds the host tree (owners, modes, times, contents, symlinks, hard links,
 * sparse files, devices); a Linux guest mounts it over {@code -drive file=nbd://} and sees the host's
 * tree, and under {@code -snapshot} may write without touching the host; the image of the host's
 * /usr/share is clean; a 9P client and an NBD client of the same directory share the pages by location.
 */
class BridgedDiskIT {

    /** A tree with every kind of entry, made with the host's tools (run as root: owners and device nodes). */
    static final String TREE = """
            set -e
            mkdir -p t/a/b/c t/sticky t/many
            echo hello > t/hello.txt
            : > t/empty
            head -c 3000000 /dev/urandom > t/a/data.bin
            ln t/a/data.bin t/a/b/hardlink
            ln -s hello.txt t/short-link
            ln -s "$(printf 'x%.0s' $(seq 1 180))/far/away" t/a/long-link
            ln -s /etc/passwd t/escape
            truncate -s 5G t/sparse
            for i in 0 1 2 3 4 5 6 7 8 9; do echo "island $i" | dd of=t/sparse bs=1 seek=$((i * 300000000)) conv=notrunc status=none; done
            mkfifo t/fifo
            mknod t/null c 1 3
            mknod t/bigdev b 300 5
            chown 1234:5678 t/a/data.bin
            chown 70000:80000 t/hello.txt
            chmod 4755 t/a/data.bin
            chmod 1777 t/sticky
            chmod 0640 t/hello.txt
            touch -h -d '2001-02-03 04:05:06' t/short-link
            touch -d '1999-12-31 23:59:59' t/a/b/c
            touch -d '2040-01-01 00:00:00' t/empty
            i=0; while [ $i -lt 2000 ]; do echo $i > t/many/entry-with-a-name-$i; i=$((i+1)); done
            printf 'n%.0s' $(seq 1 255) | xargs -I{} sh -c 'echo longest > t/{}'
            """;

    /** One line per entry (name, raw mode, owner, group, mtime; md5 of files, target of symlinks), by the same busybox on both sides. */
    static final String LISTING = """
            cd "$1"
            find . ! -path './lost+found*' | sort | while read -r f; do
              line=$(busybox stat -c '%n|%f|%u|%g|%Y' "$f")
              if [ -L "$f" ]; then line="$line|$(readlink "$f")"
              elif [ -f "$f" ]; then line="$line|$(md5sum < "$f" | cut -d' ' -f1)"
              elif [ -b "$f" ] || [ -c "$f" ]; then line="$line|$(busybox stat -c '%t:%T' "$f")"
              fi
              echo "$line"
            done
            """;

    static Path tree(Path dir) throws Exception {
        Tools.run(dir, Duration.ofSeconds(120), List.of("sh", "-c", TREE)).ok("making the tree");
        return dir.resolve("t");
    }

    static String listing(Path dir, Path root) throws Exception {
        Files.writeString(dir.resolve("listing.sh"), LISTING);
        return Tools.run(dir, Duration.ofSeconds(120), List.of("sh", dir.resolve("listing.sh").toString(), root.toString())).ok("listing").out();
    }

    @Test
    void nbdcopyOfTheImageIsCleanAndHoldsTheTree(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy", "nbdinfo", "e2fsck", "debugfs", "busybox");
        Path t = tree(dir);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "tree=t,bridged", "--cache-size", "64m")) {
            Path img = dir.resolve("copy.img");
            Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("tree"), img.toString()).ok("nbdcopy");
            Tools.run(Duration.ofSeconds(120), "e2fsck", "-fn", img.toString()).ok("e2fsck -fn of the bridged image");
            String info = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--map", s.uri("tree")).ok("nbdinfo --map").out();
            assertTrue(info.contains("hole,zero"), "the free space is reported as a hole:\n" + info);
            assertTrue(Files.size(img) < 64L << 20, "the image holds the data, not the 5 GiB sparse size: " + Files.size(img));
            Path out = dir.resolve("out");
            Files.createDirectories(out);
            Tools.run(Duration.ofSeconds(120), "debugfs", "-R", "rdump / " + out, img.toString()).ok("debugfs rdump");
            assertEquals(restorable(listing(dir, t)), restorable(listing(dir, out)), "the tree read back from the image (debugfs rdump) is the host's");
            // what rdump does not restore, read from the image itself
            assertTrue(debugfs(img, "stat /a/data.bin").contains("Mode:  04755"), debugfs(img, "stat /a/data.bin"));
            assertTrue(debugfs(img, "stat /sticky").contains("Mode:  01777"), debugfs(img, "stat /sticky"));
            assertTrue(debugfs(img, "stat /fifo").contains("Type: FIFO"), debugfs(img, "stat /fifo"));
            assertTrue(debugfs(img, "stat /null").contains("Device major/minor number: 01:03"), debugfs(img, "stat /null"));
            assertTrue(debugfs(img, "stat /bigdev").contains("Device major/minor number: 300:05"), debugfs(img, "stat /bigdev"));
            assertTrue(debugfs(img, "stat /short-link").contains("mtime: 0x" + Long.toHexString(981173106L)), debugfs(img, "stat /short-link"));
            assertTrue(debugfs(img, "stat /hello.txt").contains("User: 70000   Group: 80000"), debugfs(img, "stat /hello.txt"));
            String stats = s.http("/stats");
            assertTrue(stats.contains("\"export\":\"tree\",\"kind\":\"bridged\""), stats);
            var http = java.net.http.HttpClient.newHttpClient();
            var rescan = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + s.metricsPort + "/exports/tree/rescan"))
                    .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, rescan.statusCode(), rescan.body());
            // with a client connected, a rescan is refused (and runs when it leaves)
            Files.writeString(t.resolve("added-later"), "new\n");
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(io.bridgefs.protocol.nbd.NbdConstants.NBD_FLAG_C_FIXED_NEWSTYLE | io.bridgefs.protocol.nbd.NbdConstants.NBD_FLAG_C_NO_ZEROES);
                c.go("tree");
                var busy = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + s.metricsPort + "/exports/tree/rescan"))
                        .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(409, busy.statusCode(), busy.body());
            }
            long deadline = System.currentTimeMillis() + 30_000;
            while (s.log().split("bridged image 'tree' of", -1).length - 1 < 3 && System.currentTimeMillis() < deadline) Thread.sleep(100);
            Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("tree"), img.toString()).ok("nbdcopy after the rescan");
            String added = Tools.run(Duration.ofSeconds(30), "debugfs", "-R", "cat /added-later", img.toString()).ok("debugfs cat").out();
            assertEquals("new\n", added, "the rescan that waited for the client to leave took the new file in");
            assertEquals(0, s.stop());
        }
    }

    /**
     * Generated trees through the real NBD client: for three seeds, a random tree (directories at any
     * depth, files with data islands and holes, symlinks, hard links, FIFOs, random owners and modes)
     * served as a bridged disk, copied with nbdcopy, clean under {@code e2fsck -fn}, and read back by
     * {@code debugfs rdump} as the host lists it.
     */
    @Test
    void generatedTreesCopiedWithNbdcopyAreCleanAndReadBack(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy", "e2fsck", "debugfs", "busybox");
        for (long seed = 1; seed <= 3; seed++) {
            Path t = Files.createDirectories(dir.resolve("g" + seed));
            generate(t, new java.util.Random(seed));
            try (var s = BridgefsProcess.start(dir, "--nbd-export", "g=" + t.getFileName() + ",bridged", "--cache-size", "64m")) {
                Path img = dir.resolve("g" + seed + ".img");
                Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("g"), img.toString()).ok("nbdcopy");
                Tools.run(Duration.ofSeconds(120), "e2fsck", "-fn", img.toString()).ok("e2fsck -fn, seed " + seed);
                Path out = Files.createDirectories(dir.resolve("out" + seed));
                Tools.run(Duration.ofSeconds(120), "debugfs", "-R", "rdump / " + out, img.toString()).ok("debugfs rdump");
                assertEquals(restorable(listing(dir, t)), restorable(listing(dir, out)), "seed " + seed);
                assertEquals(0, s.stop());
            }
        }
    }

    private static void generate(Path root, java.util.Random r) throws Exception {
        List<Path> dirs = new java.util.ArrayList<>(List.of(root));
        List<Path> files = new java.util.ArrayList<>();
        for (int i = 0; i < 150; i++) {
            Path parent = dirs.get(r.nextInt(dirs.size()));
            Path p = parent.resolve("e" + i + "-" + "x".repeat(r.nextInt(3) == 0 ? r.nextInt(200) : 0));
            switch (r.nextInt(6)) {
                case 0 -> dirs.add(Files.createDirectory(p));
                case 1, 2 -> {
                    try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(p.toFile(), "rw")) {
                        long size = r.nextInt(4) == 0 ? r.nextInt(64 << 20) : r.nextInt(300_000);
                        for (int k = 0, n = 1 + r.nextInt(4); k < n && size > 0; k++) {
                            byte[] b = new byte[1 + r.nextInt(50_000)];
                            r.nextBytes(b);
                            f.seek((long) (r.nextDouble() * size));
                            f.write(b);
                        }
                        f.setLength(Math.max(size, f.length()));
                    }
                    files.add(p);
                }
                case 3 -> Files.createSymbolicLink(p, Path.of("t".repeat(1 + r.nextInt(300))));
                case 4 -> {
                    if (!files.isEmpty()) Files.createLink(p, files.get(r.nextInt(files.size())));
                }
                default -> Tools.run(Duration.ofSeconds(10), "mkfifo", p.toString()).ok("mkfifo");
            }
            if (Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) && !Files.isSymbolicLink(p)) {
                Tools.run(Duration.ofSeconds(10), "chown", r.nextInt(100_000) + ":" + r.nextInt(100_000), p.toString()).ok("chown");
                Tools.run(Duration.ofSeconds(10), "chmod", Integer.toOctalString(Files.isDirectory(p) ? 0700 | r.nextInt(0100) : r.nextInt(01000)), p.toString()).ok("chmod");
            }
        }
    }

    static String debugfs(Path img, String request) throws Exception {
        return Tools.run(Duration.ofSeconds(60), "debugfs", "-R", request, img.toString()).ok("debugfs " + request).out();
    }

    /**
     * A listing as far as {@code debugfs rdump} restores it: it leaves out device files and FIFOs, drops
     * the setuid and sticky bits, and gives symlinks the time of the dump (checked with stat instead).
     */
    static String restorable(String listing) {
        StringBuilder b = new StringBuilder();
        for (String line : listing.split("\n")) {
            String[] f = line.split("\\|", -1);
            if (f.length < 5) continue;
            int mode = Integer.parseInt(f[1], 16);
            int type = mode & 0170000;
            if (type != 0100000 && type != 0040000 && type != 0120000) continue;
            f[1] = Integer.toHexString(type | (mode & 0777));
            if (type == 0120000) f[4] = "-";
            b.append(String.join("|", f)).append('\n');
        }
        return b.toString();
    }

    /**
     * A guest boots with the bridged disk as {@code -drive file=nbd://...,readonly=on}, mounts it read-only
     * and lists it with the same busybox commands as the host: every name, mode, owner, group, mtime,
     * file md5, symlink target and device number is the host's. A second boot with {@code -snapshot}
     * writes and deletes in the mounted image; the host tree is untouched.
     */
    @Test
    void aGuestMountsTheBridgedDiskAndSeesTheHostTree(@TempDir Path dir) throws Exception {
        Tools.require("qemu-system-x86_64", "busybox");
        Path t = tree(dir);
        String host = listing(dir, t);
        String script = "set -e\nmount -t ext4 -o ro /dev/vda /mnt\necho LISTING-START\nsh /listing.sh /mnt\necho LISTING-END\numount /mnt\n";
        Files.writeString(dir.resolve("listing.sh"), LISTING);
        Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_blk", "ext4", "crc32c_generic"), script,
                java.util.Map.of("listing.sh", dir.resolve("listing.sh")));
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "tree=t,bridged", "--cache-size", "64m")) {
            String console = GuestVm.boot(dir, initrd, List.of("-drive", "file=" + s.uri("tree") + ",format=raw,if=virtio,readonly=on", "-nic", "none"),
                    Duration.ofSeconds(300));
            assertEquals(0, GuestVm.exitCode(console), "guest script failed:\n" + console);
            String guest = console.substring(console.indexOf("LISTING-START") + "LISTING-START".length(), console.indexOf("LISTING-END"))
                    .replace("\r", "").strip() + "\n";
            assertEquals(host, guest, "the guest's view of the bridged disk is the host tree");

            String writes = "set -e\nmount -t ext4 /dev/vda /mnt\necho guest > /mnt/written-by-guest\nrm /mnt/hello.txt\n"
                    + "dd if=/dev/zero of=/mnt/a/data.bin bs=4096 count=10 conv=notrunc 2>/dev/null\nsync\necho GUEST-LS $(ls /mnt | wc -l)\numount /mnt\n";
            Path initrd2 = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_blk", "ext4", "crc32c_generic"), writes);
            String console2 = GuestVm.boot(dir, initrd2, List.of("-drive", "file=" + s.uri("tree") + ",format=raw,if=virtio", "-snapshot", "-nic", "none"),
                    Duration.ofSeconds(300));
            assertEquals(0, GuestVm.exitCode(console2), "guest writes under -snapshot:\n" + console2);
            assertEquals(host, listing(dir, t), "the guest's writes under -snapshot never reach the host tree");
            assertTrue(s.metric("bridgefs_read_bytes_total{path=\"nbd\",export=\"tree\"}") > 3_000_000, "the guest read the data through the server");
            assertEquals(0, s.stop());
        }
    }

    /**
     * Sharing by location, with real clients of both paths on one directory (--dedup shadow, which only
     * counts duplicates): diodcat reads half the files over 9P, nbdcopy then reads the whole bridged
     * image, diodcat reads the other half. Each data page is read from disk once and cached once; each
     * path hits the other's pages; no fill duplicates a resident page. The same run against an
     * {@code mke2fs -d} image of the tree, the usual way to give a guest a directory as a disk, caches
     * the data twice and counts every block path page as a duplicate.
     */
    @Test
    void aBlockClientAndA9pClientShareTheTreesPagesByLocation(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy", "diodcat", "mke2fs");
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        int files = 64, pages = 64;                               // 64 files of 256 KiB: 16 MiB of data
        long data = (long) files * pages * 4096;
        Tools.run(dir, Duration.ofSeconds(60), List.of("sh", "-c", "mkdir t && for i in $(seq 0 " + (files - 1)
                + "); do head -c " + pages * 4096 + " /dev/urandom > t/f$i; done")).ok("data files");
        Tools.run(Duration.ofSeconds(60), "mke2fs", "-q", "-t", "ext4", "-b", "4096", "-d", dir.resolve("t").toString(), dir.resolve("copy.ext4").toString(), "64M")
                .ok("mke2fs -d");
        long[] bridged = shareRun(dir, files, "tree=t,bridged");
        long[] copied = shareRun(dir, files, "tree=copy.ext4,ro");
        System.out.printf("two paths on one tree (%d MiB of data): bridged cached %d MiB, duplicate fills %d, cross hits %d/%d;"
                        + " mke2fs -d image cached %d MiB, duplicate fills %d, cross hits %d/%d%n", data >> 20, bridged[0] >> 20, bridged[1],
                bridged[2], bridged[3], copied[0] >> 20, copied[1], copied[2], copied[3]);
        long dataPages = data / 4096;
        assertTrue(bridged[0] < data * 11 / 10, "the bridged disk and 9P cache the data once: " + bridged[0]);
        assertEquals(0, bridged[1], "no fill repeats a resident page");
        assertTrue(bridged[2] >= dataPages / 2 && bridged[3] >= dataPages / 2, "each path hits the pages the other read: " + bridged[2] + ", " + bridged[3]);
        assertTrue(copied[0] > data * 19 / 10, "an mke2fs -d image caches the data a second time: " + copied[0]);
        assertTrue(copied[1] >= dataPages * 9 / 10, "and its fills duplicate the files' pages: " + copied[1]);
    }

    /** One run of the sharing workload; returns cached bytes, duplicate fills, 9P-to-NBD and NBD-to-9P hits. */
    private static long[] shareRun(Path dir, int files, String nbdExport) throws Exception {
        int p9 = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--dedup", "shadow", "--cache-size", "128m", "--nbd-export", nbdExport,
                "--9p-listen", "127.0.0.1:" + p9, "--9p-export", "share=t")) {
            String cat = "diodcat -s 127.0.0.1:" + p9 + " -a share /f$i > /dev/null";
            Tools.run(dir, Duration.ofSeconds(120), List.of("sh", "-c", "for i in $(seq 0 2 " + (files - 1) + "); do " + cat + "; done")).ok("diodcat even");
            Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("tree"), "null:").ok("nbdcopy");
            Tools.run(dir, Duration.ofSeconds(120), List.of("sh", "-c", "for i in $(seq 1 2 " + (files - 1) + "); do " + cat + "; done")).ok("diodcat odd");
            long[] out = {s.metric("bridgefs_cached_bytes"),
                    s.metric("bridgefs_duplicate_fills_total{path=\"nbd\"}") + s.metric("bridgefs_duplicate_fills_total{path=\"9p\"}"),
                    s.metric("bridgefs_cross_path_hits_total{from=\"9p\",to=\"nbd\"}"),
                    s.metric("bridgefs_cross_path_hits_total{from=\"nbd\",to=\"9p\"}")};
            assertEquals(0, s.stop());
            return out;
        }
    }

    @Test
    void theHostsUsrShareIsACleanImage(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy", "e2fsck");
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "share=/usr/share,bridged", "--cache-size", "128m")) {
            Path img = dir.resolve("share.img");
            Tools.run(Duration.ofSeconds(300), "nbdcopy", s.uri("share"), img.toString()).ok("nbdcopy of /usr/share's image");
            Tools.run(Duration.ofSeconds(300), "e2fsck", "-fn", img.toString()).ok("e2fsck -fn of /usr/share's image");
            String host = Tools.run(dir, Duration.ofSeconds(60), List.of("sh", "-c", "cd /usr/share && md5sum < $(find . -type f -size +100k | sort | head -1)")).ok("md5").out();
            String name = Tools.run(dir, Duration.ofSeconds(60), List.of("sh", "-c", "cd /usr/share && find . -type f -size +100k | sort | head -1 | cut -c2-")).ok("find").out().trim();
            String image = Tools.run(dir, Duration.ofSeconds(60), List.of("sh", "-c", "debugfs -R 'cat " + name + "' " + img + " 2>/dev/null | md5sum")).ok("debugfs cat").out();
            assertEquals(host.split(" ")[0], image.split(" ")[0], name);
            assertEquals(0, s.stop());
        }
    }
}
