package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** QEMU's own tools (qemu-img, qemu-io) against bridgefs, with the bytes checked on the host too. */
class QemuToolsIT {
    static final long MiB = 1 << 20;

    static Tools.Result qemuIo(String uri, String... cmds) throws Exception {
        List<String> c = new java.util.ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (String x : cmds) {
            c.add("-c");
            c.add(x);
        }
        c.add(uri);
        return Tools.run(null, Duration.ofSeconds(60), c);
    }

    static byte[] hostBytes(Path file, long offset, int length) throws Exception {
        try (FileChannel ch = FileChannel.open(file)) {
            ByteBuffer b = ByteBuffer.allocate(length);
            ch.read(b, offset);
            return b.array();
        }
    }

    @Test
    void qemuIoPatternsDiscardZeroAndFlush(@TempDir Path dir) throws Exception {
        Tools.require("qemu-io");
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 8L << 30, 3);     // 8 GiB: offsets above 2^32
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "disk=disk.img", "--writeback-interval", "0")) {
            String u = s.uri("disk");
            Tools.Result r = qemuIo(u,
                    "write -P 0xa5 0 1M", "write -P 0x5a 5G 2M", "write -P 0x11 4095 3",
                    "read -P 0xa5 4098 1044478", "read -P 0x11 4095 3", "read -P 0x5a 5G 2M",
                    "discard 5G 1M", "read -P 0 5G 1M", "read -P 0x5a 5121M 1M",
                    "write -z 512k 128k", "read -P 0 512k 128k",
                    "write -z -u 2M 1M", "read -P 0 2M 1M",
                    "flush").ok("qemu-io");
            assertFalse(r.out().contains("Pattern verification failed"), r.out());
            // after the flush the host file holds the same bytes
            byte[] at0 = hostBytes(img, 0, 4095);
            for (byte b : at0) assertEquals((byte) 0xa5, b);
            assertArrayEquals(new byte[] {0x11, 0x11, 0x11}, hostBytes(img, 4095, 3));
            byte[] at5g = hostBytes(img, (5L << 30) + MiB, 4096);
            for (byte b : at5g) assertEquals((byte) 0x5a, b);
            assertArrayEquals(new byte[4096], hostBytes(img, 5L << 30, 4096), "discarded range reads as zeros");
            assertTrue(Tools.allocated(img) < 64 * MiB, "discard and write -z punched holes in the host file");

            assertTrue(s.metric("bridgefs_write_ops_total{path=\"nbd\",export=\"disk\"}") >= 3);
            assertTrue(s.metric("bridgefs_flush_ops_total{path=\"nbd\",export=\"disk\"}") >= 1);
            assertTrue(s.metric("bridgefs_trim_ops_total{path=\"nbd\",export=\"disk\"}") >= 1);
            assertTrue(s.metric("bridgefs_cache_hits_total{path=\"nbd\"}") > 0);
            assertTrue(s.http("/stats").contains("\"cache_hits\""));
        }
    }

    @Test
    void qemuImgInfoConvertCompare(@TempDir Path dir) throws Exception {
        Tools.require("qemu-img");
        Path src = Tools.sparseImage(dir.resolve("src.img"), 256 * MiB, 4, 0, 3 * MiB, 100 * MiB, 17 * MiB, 255 * MiB, MiB);
        Tools.sparseImage(dir.resolve("dst.img"), 256 * MiB, 5, 50 * MiB, 5 * MiB);   // stale data that must be overwritten
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "dst=dst.img", "--nbd-export", "src=src.img,ro")) {
            String info = Tools.run(Duration.ofSeconds(30), "qemu-img", "info", "--output=json", s.uri("dst")).ok("qemu-img info").out();
            assertTrue(info.replace(" ", "").contains("\"virtual-size\":268435456"), info);
            Tools.run(Duration.ofSeconds(120), "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src.toString(), s.uri("dst"))
                    .ok("qemu-img convert to NBD");
            Tools.run(Duration.ofSeconds(120), "qemu-img", "compare", "-f", "raw", "-F", "raw", src.toString(), s.uri("dst"))
                    .ok("qemu-img compare file vs NBD");
            Tools.run(Duration.ofSeconds(120), "qemu-img", "compare", "-f", "raw", "-F", "raw", s.uri("src"), s.uri("dst"))
                    .ok("qemu-img compare NBD vs NBD");
            Path out = dir.resolve("out.qcow2");
            Tools.run(Duration.ofSeconds(120), "qemu-img", "convert", "-f", "raw", "-O", "qcow2", s.uri("src"), out.toString())
                    .ok("qemu-img convert from NBD");
            Tools.run(Duration.ofSeconds(120), "qemu-img", "compare", "-f", "raw", "-F", "qcow2", src.toString(), out.toString())
                    .ok("qemu-img compare converted copy");
            Tools.Result ro = qemuIo(s.uri("src"), "write -P 1 0 4k");
            // qemu sees NBD_FLAG_READ_ONLY and refuses to open the export for writing
            assertNotEquals(0, ro.exit(), "write to a read-only export must fail: " + ro);
            assertTrue((ro.out() + ro.err()).matches("(?s).*(Permission denied|Operation not permitted|read-only).*"), ro.toString());
        }
        Tools.run(Duration.ofSeconds(60), "cmp", src.toString(), dir.resolve("dst.img").toString()).ok("host files identical after stop");
    }
}
