package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The block path end to end: a Linux guest under QEMU with {@code -drive file=nbd://...} mounts an
 * ext4 image served by bridgefs, writes and deletes files, syncs, unmounts and powers off. The host then
 * checks the image with e2fsck and reads the files back with debugfs, while the server still runs: what
 * the guest's sync flushed must already be in the host file.
 */
class GuestBlockPathIT {

    static final String SCRIPT = """
            set -e
            mount -t ext4 /dev/vda /mnt
            mkdir -p /mnt/dir/sub
            dd if=/dev/urandom of=/mnt/dir/big bs=1M count=24 2>/dev/null
            md5sum /mnt/dir/big | cut -d' ' -f1 > /mnt/dir/big.md5
            i=1
            while [ $i -le 300 ]; do echo "file $i" > /mnt/dir/sub/f$i; i=$((i+1)); done
            rm /mnt/dir/sub/f1*
            echo "preexisting: $(cat /mnt/hello.txt)"
            rm /mnt/hello.txt
            echo "GUEST-MD5 $(cat /mnt/dir/big.md5)"
            echo "GUEST-COUNT $(ls /mnt/dir/sub | wc -l)"
            sync
            umount /mnt
            """;

    @Test
    void guestExt4OverNbdSurvivesOnTheHost(@TempDir Path dir) throws Exception {
        run(dir, List.of(), s -> List.of("-drive", "file=" + s.uri("disk") + ",format=raw,if=virtio,cache=none"));
    }

    /** The guest run against a server started with {@code serverArgs}, QEMU given {@code drive(server)}. */
    static void run(Path dir, List<String> serverArgs, java.util.function.Function<BridgefsProcess, List<String>> drive) throws Exception {
        Tools.require("qemu-system-x86_64", "mkfs.ext4", "e2fsck", "debugfs");
        Path img = dir.resolve("guest.img");
        Tools.sparseImage(img, 256L << 20, 1);
        Tools.run(Duration.ofSeconds(60), "mkfs.ext4", "-q", "-F", img.toString()).ok("mkfs.ext4");
        java.nio.file.Files.writeString(dir.resolve("hello.txt"), "hello from the host\n");
        Tools.run(Duration.ofSeconds(30), "debugfs", "-w", "-R", "write " + dir.resolve("hello.txt") + " hello.txt", img.toString()).ok("debugfs write");

        Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_blk", "ext4", "crc32c_generic"), SCRIPT);
        List<String> args = new java.util.ArrayList<>(List.of("--nbd-export", "disk=guest.img", "--cache-size", "64m", "--writeback-interval", "0"));
        args.addAll(serverArgs);
        try (var s = BridgefsProcess.start(dir, args.toArray(String[]::new))) {
            List<String> qemu = new java.util.ArrayList<>(drive.apply(s));
            qemu.addAll(List.of("-nic", "none"));
            String console = GuestVm.boot(dir, initrd, qemu, Duration.ofSeconds(240));
            assertEquals(0, GuestVm.exitCode(console), "guest script failed:\n" + console);
            assertTrue(console.contains("preexisting: hello from the host"), console);
            assertTrue(console.contains("GUEST-COUNT 189"), "300 files minus f1, f10-19, f100-199:\n" + console);
            String md5 = console.lines().filter(l -> l.startsWith("GUEST-MD5 ")).findFirst().orElseThrow().substring(10).trim();

            // the server is still running: the guest's sync (NBD FLUSH) must have put everything in the host file
            Tools.run(Duration.ofSeconds(60), "e2fsck", "-fn", img.toString()).ok("e2fsck -fn of the guest's image");
            Tools.Result big = Tools.run(dir, Duration.ofSeconds(60), List.of("sh", "-c",
                    "debugfs -R 'cat /dir/big' " + img + " 2>/dev/null | md5sum | cut -d' ' -f1"));
            assertEquals(md5, big.ok("debugfs cat").out().trim(), "file content written by the guest, read on the host");
            String ls = Tools.run(Duration.ofSeconds(30), "debugfs", "-R", "ls -l /dir/sub", img.toString()).ok("debugfs ls").out();
            assertTrue(ls.contains("f2 ") || ls.contains("f2\n") || ls.matches("(?s).*\\bf2\\b.*"), ls);
            assertFalse(ls.matches("(?s).*\\bf150\\b.*"), "deleted files are gone:\n" + ls);
            String f2 = Tools.run(Duration.ofSeconds(30), "debugfs", "-R", "cat /dir/sub/f2", img.toString()).ok("debugfs cat f2").out();
            assertEquals("file 2\n", f2);
            Tools.Result hello = Tools.run(Duration.ofSeconds(30), "debugfs", "-R", "stat /hello.txt", img.toString());
            assertTrue(hello.err().contains("File not found") || hello.out().contains("File not found"), hello.toString());
            assertTrue(s.metric("bridgefs_flush_ops_total{path=\"nbd\",export=\"disk\"}") >= 1, "the guest flushed");
            assertTrue(s.metric("bridgefs_write_bytes_total{path=\"nbd\",export=\"disk\"}") >= 24L << 20);
            assertEquals(0, s.stop());
        }
        Tools.run(Duration.ofSeconds(60), "e2fsck", "-fn", img.toString()).ok("e2fsck -fn after the server stopped");
    }
}
