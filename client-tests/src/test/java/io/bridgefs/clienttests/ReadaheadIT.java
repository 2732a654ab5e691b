package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Read-ahead against the counters (issue 11): a sequential nbdcopy is read ahead and every page read
 * ahead is then read; an export with readahead=off reads nothing ahead; scattered pairs of reads through
 * a cache far smaller than the image waste read-ahead, which is counted; the stats command shows both.
 */
class ReadaheadIT {
    static final long MIB = 1 << 20;

    /** qemu-io reading {@code bytes} from the start in 64 KiB requests, one after another. */
    static String[] sequential(String uri, long bytes) {
        return sequential(uri, 0, bytes);
    }

    static String[] sequential(String uri, long from, long bytes) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (long at = from; at < from + bytes; at += 64 * 1024) cmd.addAll(List.of("-c", "read -q " + at + " 64k"));
        cmd.add(uri);
        return cmd.toArray(String[]::new);
    }

    @Test
    void readaheadIsCountedAndPaysForSequentialReaders(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy", "qemu-io");
        Tools.sparseImage(dir.resolve("seq.img"), 64 * MIB, 3, 0, 64 * MIB);
        Tools.sparseImage(dir.resolve("off.img"), 16 * MIB, 4, 0, 16 * MIB);
        try (var s = BridgefsProcess.start(dir, "--cache-size", "256m", "--nbd-export", "seq=seq.img", "--nbd-export", "off=off.img,readahead=off")) {
            Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("off"), "null:").ok("nbdcopy off");
            assertEquals(0, s.metric("bridgefs_readahead_bytes_total"), "readahead=off reads nothing ahead");
            // 64 KiB reads in order: every request after the first starts right after a resident page
            Tools.run(Duration.ofSeconds(120), sequential(s.uri("seq"), 64 * MIB)).ok("qemu-io sequential");
            Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("seq"), "null:").ok("nbdcopy seq");
            long ahead = s.metric("bridgefs_readahead_bytes_total");
            assertTrue(ahead > 8 * MIB, "a sequential reader is read ahead: " + ahead);
            assertEquals(0, s.metric("bridgefs_readahead_unused_bytes_total"), "with room for the image, nothing read ahead is wasted");
            String stats = CliIT.bridgefs(dir, "stats", "--url", "http://127.0.0.1:" + s.metricsPort).ok("bridgefs stats").out();
            assertTrue(stats.contains("read-ahead: "), stats);
            assertTrue(s.http("/stats").contains("\"readahead_bytes\":" + ahead), "the JSON stats carry the counter");
            assertEquals(0, s.stop());
        }
    }

    @Test
    void readaheadEvictedUnreadIsCountedAndShrinks(@TempDir Path dir) throws Exception {
        Tools.require("qemu-io");
        Tools.sparseImage(dir.resolve("big.img"), 256 * MIB, 5, 0, 256 * MIB);
        try (var s = BridgefsProcess.start(dir, "--cache-size", "16m", "--nbd-export", "big=big.img,readahead=auto")) {
            // fill the 16 MiB cache with one sequential pass
            Tools.run(Duration.ofSeconds(120), sequential(s.uri("big"), 64 * MIB)).ok("qemu-io sequential fill");
            long ahead0 = s.metric("bridgefs_readahead_bytes_total"), unused0 = s.metric("bridgefs_readahead_unused_bytes_total");
            assertTrue(ahead0 > 16 * MIB, "the sequential pass was read ahead: " + ahead0);
            // pairs of adjacent 4 KiB reads 7 MiB apart: the second read of each pair looks sequential, so
            // it is read ahead; the full cache evicts that before anyone reads it
            List<String> pairs = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
            int n = 0;
            for (long at = 3 * MIB + 8192; at + 8192 < 256 * MIB; at += 7 * MIB, n++) {
                pairs.addAll(List.of("-c", "read -q " + at + " 4k", "-c", "read -q " + (at + 4096) + " 4k"));
            }
            pairs.add(s.uri("big"));
            Tools.run(Duration.ofSeconds(120), pairs.toArray(String[]::new)).ok("qemu-io scattered pairs");
            long ahead = s.metric("bridgefs_readahead_bytes_total") - ahead0;
            // another sequential pass, elsewhere, evicts everything the pairs left, read-ahead included
            Tools.run(Duration.ofSeconds(120), sequential(s.uri("big"), 128 * MIB, 32 * MIB)).ok("qemu-io second pass");
            long unused = s.metric("bridgefs_readahead_unused_bytes_total") - unused0;
            System.out.printf("%d scattered pairs: read ahead %d KiB, evicted unread %d KiB%n", n, ahead >> 10, unused >> 10);
            assertTrue(ahead > 0, "the pairs looked sequential: something was read ahead");
            assertTrue(unused > 0, "read-ahead evicted unread is counted");
            // auto shrinks: what a pair reads ahead is not read by the next pair, so the window it had grown
            // to (a run: 1 MiB with this cache) halves pair after pair; a fixed window would read n MiB
            assertTrue(ahead < 4 * MIB, "auto read ahead " + ahead + " bytes for " + n + " scattered pairs");
            assertEquals(0, s.stop());
        }
        assertTrue(Files.exists(dir.resolve("big.img")));
    }
}
