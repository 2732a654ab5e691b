package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.P9Message.*;
import java.io.ByteArrayOutputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Against the real jar: Tflush cancels a request that has not started (it is never answered; Rflush
 * comes instead), a directory renamed under open fids keeps them working, and every per-export counter
 * of both paths equals what a known workload did.
 */
class FlushRenameCountersIT {
    static final long MIB = 1 << 20;

    @TempDir
    Path dir;


    @Test
    void tflushCancelsRequestsNotYetStarted() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        try (RandomAccessFile f = new RandomAccessFile(share.resolve("big").toFile(), "rw")) {
            f.setLength(64 * MIB);
        }
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share);
             RawP9Client c = new RawP9Client(port)) {
            c.attach(1 << 20, "share", 1);
            c.walk(1, 2, "big");
            c.ok(new Tlopen(c.tag(), 2, P9.O_RDONLY), Rlopen.class);
            // 200 reads of 1 MiB at once: a connection has at most 32 MiB in flight, the rest wait unstarted
            ByteArrayOutputStream burst = new ByteArrayOutputStream();
            for (int t = 1000; t < 1200; t++) burst.write(RawP9Client.frame(new Tread(t, 2, (t % 64) * MIB, (int) MIB)));
            Set<Integer> flushed = Set.of(1150, 1180, 1199);
            int ftag = 3000;
            for (int old : flushed) burst.write(RawP9Client.frame(new Tflush(ftag++, old)));
            c.sendRaw(burst.toByteArray());
            Set<Integer> reads = new HashSet<>();
            Set<Integer> rflush = new HashSet<>();
            while (reads.size() + rflush.size() < 200 - flushed.size() + flushed.size()) {
                P9Message r = c.receive();
                if (r instanceof Rread rr) {
                    assertTrue(reads.add(rr.tag()), "tag " + rr.tag() + " answered twice");
                    assertFalse(rflush.contains(rr.tag()));
                    rr.data().release();
                } else if (r instanceof Rflush) {
                    rflush.add(r.tag());
                } else {
                    fail("unexpected reply " + r);
                }
            }
            assertEquals(Set.of(3000, 3001, 3002), rflush);
            for (int old : flushed) assertFalse(reads.contains(old), "flushed request " + old + " was answered: it had not started");
            assertEquals(197, reads.size());
            // the connection goes on
            c.walk(1, 3, "big");
            // a flush of a tag that is not in flight is answered at once
            assertInstanceOf(Rflush.class, c.rpc(new Tflush(c.tag(), 4321)));
            assertEquals(0, s.stop());
        }
    }

    @Test
    void aDirectoryRenamedUnderOpenFids() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.createDirectories(share.resolve("d/sub"));
        Files.writeString(share.resolve("d/sub/f"), "hello");
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share);
             RawP9Client a = new RawP9Client(port);
             RawP9Client b = new RawP9Client(port)) {
            a.attach(8192, "share", 1);
            b.attach(8192, "share", 1);
            a.walk(1, 2, "d", "sub");
            b.walk(1, 2, "d", "sub");
            a.ok(new Trenameat(a.tag(), 1, "d", 1, "e"), Rrenameat.class);
            // both connections' fids below the renamed directory walk ".." to its new name
            for (RawP9Client c : List.of(a, b)) {
                Rwalk up = c.walk(2, 3, "..");
                assertEquals(Files.getAttribute(share.resolve("e"), "unix:ino"), up.qids().get(0).path());
                c.walk(2, 4, "f");
                c.ok(new Tlopen(c.tag(), 4, P9.O_RDONLY), Rlopen.class);
                assertEquals("hello", new String(c.readAll(4, 4096)));
            }
            assertEquals(0, s.stop());
        }
    }

    @Test
    void everyPerExportCounterMatchesAKnownWorkload() throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 64 * MIB, 0);
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.write(share.resolve("f"), new byte[(int) (3 * MIB)]);
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "share=" + share)) {
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.go("disk");
                long cookie = 1;
                for (int i = 0; i < 10; i++) {                      // 10 reads of 64 KiB
                    c.request(NBD_CMD_READ, 0, cookie++, i * 65536L, 65536);
                    c.out.flush();
                    assertEquals(0, c.reply(65536).error());
                }
                for (int i = 0; i < 5; i++) {                       // 5 writes of 8 KiB
                    c.write(cookie++, i * 8192L, new byte[8192]);
                    assertEquals(0, c.reply(0).error());
                }
                for (int i = 0; i < 2; i++) {                       // 2 flushes
                    c.request(NBD_CMD_FLUSH, 0, cookie++, 0, 0);
                    c.out.flush();
                    assertEquals(0, c.reply(0).error());
                }
                c.request(NBD_CMD_TRIM, 0, cookie++, 0, 4096);      // 1 trim
                c.out.flush();
                assertEquals(0, c.reply(0).error());
                for (int i = 0; i < 3; i++) {                       // 3 reads past the end: errors
                    c.request(NBD_CMD_READ, 0, cookie++, 128 * MIB, 4096);
                    c.out.flush();
                    assertEquals(NBD_EINVAL, c.reply(0).error());
                }
            }
            try (RawP9Client c = new RawP9Client(port)) {
                c.attach(1 << 20, "share", 1);
                c.walk(1, 2, "f");
                c.ok(new Tlopen(c.tag(), 2, P9.O_RDWR), Rlopen.class);
                for (int i = 0; i < 7; i++) {                       // 7 reads of 128 KiB
                    Rread r = c.ok(new Tread(c.tag(), 2, i * 131072L, 131072), Rread.class);
                    assertEquals(131072, r.data().readableBytes());
                    r.data().release();
                }
                for (int i = 0; i < 3; i++) c.write(2, i * 100L, "0123456789");   // 3 writes of 10 bytes
                for (int i = 0; i < 4; i++) {                       // 4 errors
                    assertEquals(P9.ENOENT, c.error(new Twalk(c.tag(), 1, 9, List.of("missing" + i))));
                }
                c.ok(new Tfsync(c.tag(), 2, 0), Rfsync.class);
            }
            String nbd = "{path=\"nbd\",export=\"disk\"}";
            String p9 = "{path=\"9p\",export=\"share\"}";
            assertEquals(10, s.metric("bridgefs_read_ops_total" + nbd));
            assertEquals(10 * 65536, s.metric("bridgefs_read_bytes_total" + nbd));
            assertEquals(5, s.metric("bridgefs_write_ops_total" + nbd));
            assertEquals(5 * 8192, s.metric("bridgefs_write_bytes_total" + nbd));
            assertEquals(2, s.metric("bridgefs_flush_ops_total" + nbd));
            assertEquals(1, s.metric("bridgefs_trim_ops_total" + nbd));
            assertEquals(3, s.metric("bridgefs_io_errors_total" + nbd));
            assertEquals(7, s.metric("bridgefs_read_ops_total" + p9));
            assertEquals(7 * 131072, s.metric("bridgefs_read_bytes_total" + p9));
            assertEquals(3, s.metric("bridgefs_write_ops_total" + p9));
            assertEquals(30, s.metric("bridgefs_write_bytes_total" + p9));
            assertEquals(4, s.metric("bridgefs_io_errors_total" + p9));
            assertEquals(1, s.metric("bridgefs_flush_ops_total" + p9));
            assertEquals(7, s.metric("bridgefs_9p_requests_total{type=\"read\"}"));
            // the server's own time per request, by type: present, positive, p99 at least p50
            String metrics = s.http("/metrics");
            double p50 = sample(metrics, "bridgefs_9p_request_seconds{type=\"read\",quantile=\"0.5\"}");
            double p99 = sample(metrics, "bridgefs_9p_request_seconds{type=\"read\",quantile=\"0.99\"}");
            assertTrue(p50 > 0 && p99 >= p50 && p99 < 10, "read p50 " + p50 + " s, p99 " + p99 + " s");
            assertTrue(sample(metrics, "bridgefs_9p_request_seconds{type=\"walk\",quantile=\"0.5\"}") > 0, "walks are timed too");
            assertTrue(s.http("/stats").contains("\"9p_request_seconds\":{"), "and in the JSON stats");
            // answered on the network thread: the walk to the file just written (its name is in the kernel's
            // dentry cache), never the 4 walks to missing names; at most the 7 reads (resident ones)
            assertEquals(1, sample(metrics, "bridgefs_9p_requests_fast_total{type=\"walk\"}"), "walks answered at once");
            String fastReads = "bridgefs_9p_requests_fast_total{type=\"read\"}";
            assertTrue(!metrics.contains(fastReads) || sample(metrics, fastReads) <= 7);
            assertTrue(s.http("/stats").contains("\"9p_requests_fast\":{\""), "and in the JSON stats");
            assertEquals(0, s.stop());
        }
    }

    static double sample(String metrics, String name) {
        for (String l : metrics.split("\n")) if (l.startsWith(name + " ")) return Double.parseDouble(l.substring(name.length() + 1));
        throw new AssertionError(name + " not in /metrics");
    }

    /**
     * A file removed (Tunlinkat, Tremove) or replaced by a rename is dropped from the cache at its last
     * close, dirty pages included, instead of written back: nothing can read them again. The bytes
     * written back are counted against a known workload: only the file that keeps its name is written.
     * A removed file still open through a fid reads what was written until that fid is clunked; after
     * that an old fid cannot open it (ENOENT, as a path would say).
     */
    @Test
    void removedFilesAreDroppedNotWrittenBack() throws Exception {
        final long HALF = 512 << 10;           // each file
        Path share = Files.createDirectories(dir.resolve("share"));
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share,
                "--writeback-interval", "0");
             RawP9Client c = new RawP9Client(port)) {
            c.attach(1 << 20, "share", 1);
            for (String name : new String[] {"unlinked", "removed", "replaced", "replacement", "open"}) {
                c.walk(1, 2);
                c.ok(new Tlcreate(c.tag(), 2, name, P9.O_RDWR, 0644, 0), Rlcreate.class);
                byte[] half = new byte[(int) HALF];
                java.util.Arrays.fill(half, (byte) name.charAt(0));
                c.ok(new Twrite(c.tag(), 2, 0, io.netty.buffer.Unpooled.wrappedBuffer(half)), Rwrite.class);
                if (!name.equals("open")) c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
            }
            long dirty = s.metric("bridgefs_dirty_bytes");
            assertEquals(5 * HALF, dirty, "five files of 512 KiB, dirty in the cache");
            c.ok(new Tunlinkat(c.tag(), 1, "unlinked", 0), Runlinkat.class);
            c.walk(1, 3, "removed");
            c.ok(new Tremove(c.tag(), 3), Rremove.class);
            c.ok(new Trenameat(c.tag(), 1, "replacement", 1, "replaced"), Rrenameat.class);
            c.walk(1, 5, "open");                    // a fid to it, not opened
            c.ok(new Tunlinkat(c.tag(), 1, "open", 0), Runlinkat.class);
            assertEquals(2 * HALF, s.metric("bridgefs_dirty_bytes"), "the renamed file and the open one are left");
            assertEquals(0, s.metric("bridgefs_writeback_bytes_total"), "nothing written back to the removed files");
            byte[] stillThere = c.readAll(2, (int) HALF);
            assertEquals(HALF, stillThere.length);
            assertEquals('o', stillThere[(int) HALF - 1], "removed but open: its bytes are still read");
            c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
            assertEquals(HALF, s.metric("bridgefs_dirty_bytes"), "clunked: the removed file's pages are gone");
            assertEquals(P9.ENOENT, c.error(new Tlopen(c.tag(), 5, P9.O_RDONLY)), "open nowhere and no name: an old fid cannot open it");
            c.ok(new Tclunk(c.tag(), 5), Rclunk.class);
            c.ok(new Tfsync(c.tag(), 1, 0), Rfsync.class);
            c.walk(1, 4, "replaced");
            c.ok(new Tlopen(c.tag(), 4, P9.O_RDONLY), Rlopen.class);
            c.ok(new Tfsync(c.tag(), 4, 0), Rfsync.class);
            assertEquals(HALF, s.metric("bridgefs_writeback_bytes_total"), "only the file that kept a name was written back");
            byte[] host = Files.readAllBytes(share.resolve("replaced"));
            assertEquals(HALF, host.length);
            assertEquals('r', host[0]);
            assertEquals(List.of("replaced"), Files.list(share).map(p -> p.getFileName().toString()).toList());
            c.ok(new Tclunk(c.tag(), 4), Rclunk.class);
        }
    }

    /** The server's descriptors that lead to a removed file under {@code dir}. */
    static long removedOpen(BridgefsProcess s, Path dir) throws Exception {
        long n = 0;
        try (var fds = Files.list(Path.of("/proc", Long.toString(s.process.pid()), "fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    String to = Files.readSymbolicLink(fd).toString();
                    if (to.startsWith(dir.toString()) && to.endsWith(" (deleted)")) n++;
                } catch (java.io.IOException closedMeanwhile) {
                    // a descriptor closed while listed
                }
            }
        }
        return n;
    }

    @Test
    void filesRemovedOnTheHostAreReleasedWithoutWriteBack() throws Exception {
        final long HALF = 512 << 10;
        Path share = Files.createDirectories(dir.resolve("share")).toRealPath();
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share,
                "--writeback-interval", "0");
             RawP9Client c = new RawP9Client(port)) {
            c.attach(1 << 20, "share", 1);
            for (String name : new String[] {"gone", "kept"}) {
                c.walk(1, 2);
                c.ok(new Tlcreate(c.tag(), 2, name, P9.O_RDWR, 0644, 0), Rlcreate.class);
                byte[] half = new byte[(int) HALF];
                java.util.Arrays.fill(half, (byte) name.charAt(0));
                c.ok(new Twrite(c.tag(), 2, 0, io.netty.buffer.Unpooled.wrappedBuffer(half)), Rwrite.class);
                c.ok(new Tclunk(c.tag(), 2), Rclunk.class);     // no fid left: the server keeps the file open for its pages
            }
            assertEquals(2 * HALF, s.metric("bridgefs_dirty_bytes"));
            Files.delete(share.resolve("gone"));                  // a host process, not a Tremove
            assertTrue(removedOpen(s, share) > 0, "right after the host's rm the server still holds the file");
            long deadline = System.nanoTime() + 20_000_000_000L;  // the sweep runs every 5 s
            while (removedOpen(s, share) > 0 && System.nanoTime() < deadline) Thread.sleep(200);
            assertEquals(0, removedOpen(s, share), "released within a sweep or two: the host has the blocks back");
            assertEquals(HALF, s.metric("bridgefs_dirty_bytes"), "the removed file's pages dropped");
            assertEquals(0, s.metric("bridgefs_writeback_bytes_total"), "nothing written back to it");
            c.ok(new Tfsync(c.tag(), 1, 0), Rfsync.class);
            c.walk(1, 3, "kept");
            c.ok(new Tlopen(c.tag(), 3, P9.O_RDONLY), Rlopen.class);
            c.ok(new Tfsync(c.tag(), 3, 0), Rfsync.class);
            assertEquals(HALF, s.metric("bridgefs_writeback_bytes_total"), "the file still named kept its data");
            assertEquals('k', Files.readAllBytes(share.resolve("kept"))[(int) HALF - 1]);
            c.ok(new Tclunk(c.tag(), 3), Rclunk.class);
        }
    }
}
