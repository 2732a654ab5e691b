package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --dirty-background auto} against the counters, with a real client (nbdcopy over NBD, which
 * sends no FLUSH unless told to): in a 64 MiB cache, 24 MiB written leaves more than a quarter dirty,
 * so the background flusher writes back one 8 MiB chunk, the lowest pages; nbdcopy then writes those
 * 8 MiB again. Each of their pages is counted as rewritten; with auto the share the flusher keeps
 * dirty rises from 16 MiB to a tenth of the cache below the 75% limit (41.6 MiB) and nothing more is
 * written back; with a fixed 25% the share stays put and another 8 MiB is written back.
 */
class WritebackIT {
    static final long MIB = 1 << 20;
    static final long FLOOR = 16 * MIB, CEILING = (16384 * 3 / 4 - 16384 / 10) * 4096L;

    @Test
    void pagesTheFlusherWroteAndTheGuestWroteAgainRaiseTheShareWithAuto(@TempDir Path dir) throws Exception {
        long[] r = rewrite(dir, "auto");
        assertEquals(8 * MIB, r[1], "the 8 MiB the flusher wrote were written again");
        assertEquals(CEILING, r[2], "the share rose to a tenth of the cache below the limit");
        assertEquals(0, r[0], "nothing written back after the rewrite");
    }

    @Test
    void aFixedShareWritesTheRewriteBackAgain(@TempDir Path dir) throws Exception {
        long[] r = rewrite(dir, "25");
        assertEquals(8 * MIB, r[1], "counted with a fixed share too");
        assertEquals(FLOOR, r[2], "a fixed share does not move");
        // a chunk is 8 MiB of dirty pages; its run may take in a few clean pages next to them
        assertTrue(r[0] >= 8 * MIB && r[0] <= 8 * MIB + 16 * 4096, "another chunk written back after the rewrite: " + r[0]);
    }

    /**
     * {@code --write-behind} (8 MiB by default): fio writing 12 MiB sequentially (1 MiB requests, eight in
     * flight, no FLUSH) into a 64 MiB cache, below its 16 MiB background share: the file is written back
     * behind the writer, lowest pages first, until less than 8 MiB of it is dirty, and those bytes are in
     * the image file before any FLUSH. 12 MiB more in random 4k writes form no stream: nothing more is
     * written. With off, the sequential 12 MiB stay dirty.
     */
    @Test
    void aSequentialWriterIsWrittenBackBehindItsWritesWithoutAFlush(@TempDir Path dir) throws Exception {
        Tools.require("fio");
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 32 * MIB, 9);
        try (var s = BridgefsProcess.start(dir, "--cache-size", "64m", "--writeback-interval", "0", "--nbd-export", "disk=disk.img")) {
            fio(s, "write", "1m", 8, 0);
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (s.metric("bridgefs_dirty_bytes") >= 8 * MIB && System.nanoTime() < deadline) Thread.sleep(20);
            long dirty = s.metric("bridgefs_dirty_bytes"), written = s.metric("bridgefs_writeback_bytes_total");
            assertTrue(dirty < 8 * MIB, "written behind until under 8 MiB dirty: " + dirty);
            assertEquals(12 * MIB, dirty + written, "each page written back once");
            byte[] onDisk = new byte[(int) written];
            try (var in = java.nio.file.Files.newInputStream(img)) {
                assertEquals(written, in.readNBytes(onDisk, 0, onDisk.length));
            }
            for (int i = 0; i < onDisk.length; i++) assertEquals((byte) 0xa5, onDisk[i], "image byte " + i + " before any FLUSH");

            fio(s, "randwrite", "4k", 32, 16 * MIB);
            Thread.sleep(1000);                            // time for the flusher to run, if it will
            assertEquals(written, s.metric("bridgefs_writeback_bytes_total"), "random writes: nothing written behind");
            assertEquals(dirty + 12 * MIB, s.metric("bridgefs_dirty_bytes"));
            assertEquals(0, s.stop());
        }
        try (var s = BridgefsProcess.start(dir, "--cache-size", "64m", "--writeback-interval", "0", "--write-behind", "off",
                "--nbd-export", "disk=disk.img")) {
            fio(s, "write", "1m", 8, 0);
            Thread.sleep(1000);
            assertEquals(0, s.metric("bridgefs_writeback_bytes_total"), "off: nothing written back below the share");
            assertEquals(12 * MIB, s.metric("bridgefs_dirty_bytes"));
            assertEquals(0, s.stop());
        }
    }

    /** fio writing 12 MiB of 0xa5 from {@code offset} (each block once), without a FLUSH. */
    private static void fio(BridgefsProcess s, String rw, String bs, int depth, long offset) throws Exception {
        Tools.run(Duration.ofSeconds(120), "fio", "--name=" + rw, "--ioengine=nbd", "--uri=" + s.uri("disk"), "--rw=" + rw,
                "--bs=" + bs, "--iodepth=" + depth, "--offset=" + offset, "--size=12m", "--buffer_pattern=0xa5").ok("fio " + rw);
    }

    /** Runs the workload; returns the bytes written back after the rewrite, the rewritten bytes and the share at the end. */
    private static long[] rewrite(Path dir, String background) throws Exception {
        Tools.require("nbdcopy");
        Path first = Tools.sparseImage(dir.resolve("first.img"), 24 * MIB, 7, 0, 24 * MIB);
        Path again = Tools.sparseImage(dir.resolve("again.img"), 8 * MIB, 8, 0, 8 * MIB);
        Tools.sparseImage(dir.resolve("disk.img"), 32 * MIB, 9, 0, 0);
        try (var s = BridgefsProcess.start(dir, "--cache-size", "64m", "--writeback-interval", "0",
                "--dirty-background", background, "--write-behind", "off", "--nbd-export", "disk=disk.img")) {
            assertEquals(FLOOR, s.metric("bridgefs_dirty_background_bytes"), "both start at a quarter");
            Tools.run(Duration.ofSeconds(60), "nbdcopy", first.toString(), s.uri("disk")).ok("nbdcopy 24 MiB");
            awaitDirty(s, 16 * MIB);
            assertEquals(8 * MIB, s.metric("bridgefs_writeback_bytes_total"), "the flusher wrote one chunk");
            Tools.run(Duration.ofSeconds(60), "nbdcopy", again.toString(), s.uri("disk")).ok("nbdcopy 8 MiB again");
            Thread.sleep(1500);                            // time for the flusher to run, if it will
            awaitDirty(s, background.equals("auto") ? 24 * MIB : 16 * MIB);
            long[] out = {s.metric("bridgefs_writeback_bytes_total") - 8 * MIB, s.metric("bridgefs_writeback_rewritten_bytes_total"),
                    s.metric("bridgefs_dirty_background_bytes")};
            assertTrue(s.http("/stats").contains("\"writeback_rewritten_bytes\":" + out[1]), "the JSON stats carry the counter");
            String stats = CliIT.bridgefs(dir, "stats", "--url", "http://127.0.0.1:" + s.metricsPort).ok("bridgefs stats").out();
            assertTrue(stats.contains("write-back: "), stats);
            assertEquals(0, s.stop());
            return out;
        }
    }

    private static void awaitDirty(BridgefsProcess s, long bytes) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (s.metric("bridgefs_dirty_bytes") != bytes && System.nanoTime() < deadline) Thread.sleep(20);
        assertEquals(bytes, s.metric("bridgefs_dirty_bytes"), "dirty bytes");
    }
}
