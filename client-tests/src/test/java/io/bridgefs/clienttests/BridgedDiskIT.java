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
