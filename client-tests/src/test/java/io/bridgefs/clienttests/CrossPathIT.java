package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import java.nio.file.Files;
import java.time.Duration;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One host file reached over NBD and over 9P goes through the same cache frames: each path reads what
 * the other wrote, at once, and the counters show hits by one path on pages the other filled.
 */
class CrossPathIT {

    @Test
    void nbdAnd9pShareOneCacheForOneHostFile(@TempDir Path dir) throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        byte[] init = new byte[1 << 20];
        new java.util.Random(8).nextBytes(init);
        Files.write(share.resolve("disk.img"), init);
        int p9 = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "disk=share/disk.img", "--9p-listen", "127.0.0.1:" + p9,
                "--9p-export", "share=share", "--writeback-interval", "0")) {
            try (RawNbdClient n = new RawNbdClient(s.nbdPort); RawP9Client c = new RawP9Client(p9)) {
                n.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                n.go("disk");
                c.attach(1 << 20, "share", 1);
                c.walk(1, 2, "disk.img");
                c.ok(new Tlopen(c.tag(), 2, P9.O_RDWR), Rlopen.class);

                // the NBD path fills 256 pages; the 9P path then hits all of them
                n.request(NBD_CMD_READ, 0, 1, 0, 1 << 20);
                n.out.flush();
                assertArrayEquals(init, n.reply(1 << 20).data());
                byte[] via9p = c.readAll(2, 65536);
                assertArrayEquals(init, via9p);
                assertEquals(256, s.metric("bridgefs_cross_path_hits_total{from=\"nbd\",to=\"9p\"}"));
                assertEquals(256, s.metric("bridgefs_shared_pages"));
                assertEquals(0, s.metric("bridgefs_cache_fills_total{path=\"9p\"}"), "9P read nothing from disk");

                // a write through NBD is seen by 9P at once (same frames, nothing written back yet)
                n.write(2, 4096, "written over NBD".getBytes());
                assertEquals(0, n.reply(0).error());
                Rread r = c.ok(new Tread(c.tag(), 2, 4096, 16), Rread.class);
                assertEquals("written over NBD", r.data().toString(java.nio.charset.StandardCharsets.UTF_8));
                // and a write through 9P is seen by NBD
                c.write(2, 8192, "written over 9P");
                n.request(NBD_CMD_READ, 0, 3, 8192, 15);
                n.out.flush();
                assertEquals("written over 9P", new String(n.reply(15).data()));
                n.request(NBD_CMD_FLUSH, 0, 4, 0, 0);
                n.out.flush();
                assertEquals(0, n.reply(0).error());
            }
        }
        byte[] onDisk = Files.readAllBytes(share.resolve("disk.img"));
        assertEquals("written over NBD", new String(onDisk, 4096, 16));
        assertEquals("written over 9P", new String(onDisk, 8192, 15));
    }

    @Test
    void theBlockPathsDuplicatedReadsAreCounted(@TempDir Path dir) throws Exception {
        // DESIGN.md's example: a 1 MiB file F over 9P, and an image whose 4 KiB-aligned region holds F over NBD
        byte[][] fi = fileAndImage(dir, 9);
        byte[] f = fi[0];
        int p9 = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "img=image.raw", "--9p-listen", "127.0.0.1:" + p9, "--9p-export", "share=share")) {
            try (RawP9Client c = new RawP9Client(p9); RawNbdClient n = new RawNbdClient(s.nbdPort)) {
                c.attach(1 << 20, "share", 1);
                c.walk(1, 2, "F");
                c.ok(new Tlopen(c.tag(), 2, P9.O_RDONLY), Rlopen.class);
                assertArrayEquals(f, c.readAll(2, 262144));
                n.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                n.go("img");
                n.request(NBD_CMD_READ, 0, 1, 1 << 20, 1 << 20);
                n.out.flush();
                assertArrayEquals(f, n.reply(1 << 20).data());
            }
            assertEquals(256, s.metric("bridgefs_duplicate_fills_total{path=\"nbd\"}"));
            assertEquals(1 << 20, s.metric("bridgefs_duplicate_fill_bytes_total{path=\"nbd\"}"));
            assertEquals(0, s.metric("bridgefs_duplicate_fills_total{path=\"9p\"}"));
            assertEquals(256, s.metric("bridgefs_dedup_pages_sharing"));
        }
    }

    @Test
    void mergeSharesTheDuplicatedPagesWithRealClientsAndCopiesOnWrite(@TempDir Path dir) throws Exception {
        Tools.require("diodcat", "nbdcopy", "qemu-io");
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        byte[][] fi = fileAndImage(dir, 11);
        byte[] f = fi[0], img = fi[1];
        Path share = dir.resolve("share");
        int p9 = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--dedup", "merge", "--nbd-export", "img=image.raw",
                "--9p-listen", "127.0.0.1:" + p9, "--9p-export", "share=share", "--writeback-interval", "0")) {
            String srv = "127.0.0.1:" + p9;
            Path viaDiod = dir.resolve("F.diod");
            // F stays open through a raw client too, so the counts below do not depend on retention of closed files
            try (RawP9Client keep = new RawP9Client(p9)) {
                keep.attach(1 << 20, "share", 1);
                keep.walk(1, 2, "F");
                keep.ok(new Tlopen(keep.tag(), 2, P9.O_RDONLY), Rlopen.class);
                Tools.run(dir, Duration.ofSeconds(60), java.util.List.of("sh", "-c", "diodcat -s " + srv + " -a share /F > " + viaDiod)).ok("diodcat");
                assertArrayEquals(f, Files.readAllBytes(viaDiod));
                Path whole = dir.resolve("img.copy");
                Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("img"), whole.toString()).ok("nbdcopy");
                assertArrayEquals(img, Files.readAllBytes(whole));
                assertEquals(256, s.metric("bridgefs_duplicate_fills_total{path=\"nbd\"}"));
                assertEquals(256, s.metric("bridgefs_dedup_pages_shared"), "F's 256 frames each serve the image too");
                assertEquals(256, s.metric("bridgefs_dedup_pages_sharing"));
                assertEquals(1 << 20, s.metric("bridgefs_dedup_saved_bytes"));
                assertEquals(1, s.metric("bridgefs_dedup_mode{mode=\"merge\"}"));
                long resident = s.metric("bridgefs_resident_pages");
                assertEquals(resident * 4096 - (1 << 20), s.metric("bridgefs_cached_bytes"), "merged pages take memory once");

                // a write to the image's copy of F's first page copies it first; F is unchanged
                Tools.run(Duration.ofSeconds(60), "qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 4k", s.uri("img")).ok("qemu-io write");
                assertEquals(1, s.metric("bridgefs_dedup_cow_breaks_total"));
                assertEquals(255, s.metric("bridgefs_dedup_pages_shared"));
                Tools.run(dir, Duration.ofSeconds(60), java.util.List.of("sh", "-c", "diodcat -s " + srv + " -a share /F > " + viaDiod)).ok("diodcat again");
                assertArrayEquals(f, Files.readAllBytes(viaDiod), "the block write never reaches the file");
                Tools.run(Duration.ofSeconds(60), "qemu-io", "-f", "raw", "-c", "read -P 0xab 1M 4k", s.uri("img")).ok("qemu-io read back");

                // operator actions: the counters agree with a recount of the frames; drop-caches empties the cache
                var http = java.net.http.HttpClient.newHttpClient();
                var base = java.net.URI.create("http://127.0.0.1:" + s.metricsPort);
                var verify = http.send(java.net.http.HttpRequest.newBuilder(base.resolve("/verify")).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, verify.statusCode(), verify.body());
                var drop = http.send(java.net.http.HttpRequest.newBuilder(base.resolve("/drop-caches"))
                        .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, drop.statusCode());
                assertTrue(drop.body().startsWith("dropped "), drop.body());
                assertEquals(s.metric("bridgefs_dirty_bytes"), s.metric("bridgefs_cached_bytes"), "only dirty pages stay");
                assertEquals(0, s.metric("bridgefs_dedup_pages_shared"));

                // reset-latency: the latency quantiles describe the requests since; the counts go on
                String walkP99 = "bridgefs_9p_request_seconds{type=\"walk\",quantile=\"0.99\"}", walks = "bridgefs_9p_requests_total{type=\"walk\"}";
                assertTrue(s.value(walkP99) > 0, "walks were timed");
                long walked = s.metric(walks);
                var reset = http.send(java.net.http.HttpRequest.newBuilder(base.resolve("/reset-latency"))
                        .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, reset.statusCode());
                assertTrue(reset.body().startsWith("started "), reset.body());
                assertEquals(0.0, s.value(walkP99), "no walk since");
                keep.walk(1, 3, "F");
                assertTrue(s.value(walkP99) > 0, "the walk since");
                assertEquals(walked + 1, s.metric(walks));
            }
        }
        byte[] onDisk = Files.readAllBytes(dir.resolve("image.raw"));
        for (int i = 0; i < 4096; i++) assertEquals((byte) 0xab, onDisk[(1 << 20) + i]);
        assertArrayEquals(f, Files.readAllBytes(share.resolve("F")));
    }

    /** DESIGN.md's example data: share/F, 1 MiB of random bytes, and image.raw, 4 MiB holding F at 1 MiB. */
    private static byte[][] fileAndImage(Path dir, long seed) throws java.io.IOException {
        Path share = Files.createDirectories(dir.resolve("share"));
        byte[] f = new byte[1 << 20];
        new java.util.Random(seed).nextBytes(f);
        Files.write(share.resolve("F"), f);
        byte[] img = new byte[4 << 20];
        new java.util.Random(seed + 1).nextBytes(img);
        System.arraycopy(f, 0, img, 1 << 20, f.length);
        Files.write(dir.resolve("image.raw"), img);
        return new byte[][] {f, img};
    }
}
