package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real backing-store failures: an image on a 1 MiB tmpfs runs out of space. The error reaches the
 * client as NBD_ENOSPC (never a silent success), the connection keeps working, and whether the
 * backing filesystem takes O_DIRECT (tmpfs does only on newer kernels) is said in the stats.
 */
class BackingErrorsIT {
    static final long MiB = 1 << 20;

    static boolean root() throws Exception {
        return Tools.run(Duration.ofSeconds(5), "id", "-u").out().trim().equals("0");
    }

    @Test
    void fullFilesystemGivesEnospcAndTheConnectionGoesOn(@TempDir Path dir) throws Exception {
        if (!root()) System.err.println("BackingErrorsIT: not root, cannot mount a tmpfs: this test does not run");
        assumeTrue(root(), "mounting a small tmpfs needs root (CI runs as root)");
        Path small = dir.resolve("small");
        Files.createDirectories(small);
        Tools.run(Duration.ofSeconds(10), "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small.toString()).ok("mount tmpfs");
        try {
            Tools.sparseImage(small.resolve("wt.img"), 64 * MiB, 1);
            Tools.sparseImage(small.resolve("wb.img"), 64 * MiB, 2);
            try (var s = BridgefsProcess.start(dir, "--nbd-export", "wt=small/wt.img", "--cache-mode", "writethrough", "--writeback-interval", "0")) {
                // tmpfs has O_DIRECT only on newer kernels (6.6+): the stats must say what this one does
                boolean kernelDirect = Tools.run(Duration.ofSeconds(10), "dd", "if=/dev/zero", "of=" + small.resolve("probe"),
                        "bs=4096", "count=1", "oflag=direct").exit() == 0;
                Files.deleteIfExists(small.resolve("probe"));
                assertEquals(kernelDirect ? 1 : 0, s.metric("bridgefs_backing_direct_io"), "O_DIRECT on tmpfs: " + kernelDirect);
                try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                    c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                    c.go("wt");
                    c.write(1, 0, new byte[2 * (int) MiB]);
                    RawNbdClient.Reply r = c.reply(0);
                    assertEquals(1, r.cookie());
                    assertEquals(NBD_ENOSPC, r.error(), "writethrough: the write itself reports the full filesystem");
                    c.request(NBD_CMD_READ, 0, 2, 16 * MiB, 4096);
                    c.out.flush();
                    RawNbdClient.Reply read = c.reply(4096);
                    assertEquals(0, read.error(), "the connection keeps working");
                }
                assertTrue(s.metric("bridgefs_io_errors_total{path=\"nbd\",export=\"wt\"}") >= 1);
                assertTrue(s.log().contains("failed"), "the failure is logged");
            }
            Files.delete(small.resolve("wt.img"));
            var s = BridgefsProcess.start(dir, "--nbd-export", "wb=small/wb.img", "--writeback-interval", "0");
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.go("wb");
                byte[] data = new byte[2 * (int) MiB];
                java.util.Arrays.fill(data, (byte) 7);
                c.write(1, 0, data);
                assertEquals(0, c.reply(0).error(), "writeback: the write is taken into the cache");
                c.request(NBD_CMD_FLUSH, 0, 2, 0, 0);
                c.out.flush();
                RawNbdClient.Reply f = c.reply(0);
                assertEquals(NBD_ENOSPC, f.error(), "the flush cannot make it durable and says so");
                c.request(NBD_CMD_READ, 0, 3, MiB + 4096, 4096);
                c.out.flush();
                RawNbdClient.Reply read = c.reply(4096);
                assertEquals(0, read.error());
                assertEquals(7, read.data()[100], "the acknowledged data is still served from the cache, not dropped");
            }
            assertNotEquals(0, s.stop(), "stopping with data that cannot be made durable is a failure, not exit 0");
        } finally {
            Tools.run(Duration.ofSeconds(10), "umount", "-l", small.toString());
        }
    }
}
