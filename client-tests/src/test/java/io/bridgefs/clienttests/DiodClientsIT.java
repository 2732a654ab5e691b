package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** diod's userspace 9P2000.L clients (diodls, diodcat, diodload) against bridgefs. */
class DiodClientsIT {

    @Test
    void diodlsDiodcatAndDiodload(@TempDir Path dir) throws Exception {
        Tools.require("diodls", "diodcat", "diodload");
        Path share = Files.createDirectories(dir.resolve("share/sub"));
        byte[] rand = new byte[700_000];
        new java.util.Random(3).nextBytes(rand);
        Files.write(share.resolve("rand.bin"), rand);
        Files.writeString(dir.resolve("share/hello.txt"), "hello over 9p\n");
        // diodload copies ctl:zero to ctl:null; here they are plain files of an export named ctl
        Path ctl = Files.createDirectories(dir.resolve("ctl"));
        try (var raf = new java.io.RandomAccessFile(ctl.resolve("zero").toFile(), "rw")) {
            raf.setLength(512L << 20);
        }
        Files.createFile(ctl.resolve("null"));
        int port = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=share", "--9p-export", "ctl=ctl")) {
            String srv = "127.0.0.1:" + port;
            String ls = Tools.run(Duration.ofSeconds(30), "diodls", "-s", srv, "-a", "share", "/").ok("diodls").out();
            assertTrue(ls.contains("hello.txt") && ls.contains("sub"), ls);
            // a directory far larger than the entries read ahead at its open (16 KiB): the first of them
            // come from those on the network thread, the rest from getdents64 on the executor
            Path many = Files.createDirectories(dir.resolve("share/many"));
            for (int i = 0; i < 3000; i++) Files.createFile(many.resolve("entry-" + i));
            java.util.List<String> listed = Tools.run(Duration.ofSeconds(30), "diodls", "-s", srv, "-a", "share", "/many").ok("diodls many")
                    .out().lines().filter(l -> l.startsWith("entry-")).toList();
            assertEquals(3000, listed.size(), "every entry");
            assertEquals(3000, new java.util.HashSet<>(listed).size(), "none twice");
            assertTrue(s.metric("bridgefs_9p_requests_fast_total{type=\"lopen\"}") > 0, "the directory opened on the network thread");
            assertTrue(s.metric("bridgefs_9p_requests_fast_total{type=\"readdir\"}") > 0, "its first entries from those read ahead");
            String lsl = Tools.run(Duration.ofSeconds(30), "diodls", "-l", "-s", srv, "-a", "share", "/sub").ok("diodls -l").out();
            assertTrue(lsl.contains("700000") && lsl.contains("rand.bin"), lsl);
            assertEquals("hello over 9p\n", Tools.run(Duration.ofSeconds(30), "diodcat", "-s", srv, "-a", "share", "/hello.txt").ok("diodcat").out());
            Path copy = dir.resolve("copy.bin");
            Tools.run(dir, Duration.ofSeconds(30), java.util.List.of("sh", "-c", "diodcat -s " + srv + " -a share /sub/rand.bin > " + copy)).ok("diodcat rand");
            assertArrayEquals(rand, Files.readAllBytes(copy));
            Tools.Result missing = Tools.run(Duration.ofSeconds(30), "diodcat", "-s", srv, "-a", "share", "/nope");
            assertNotEquals(0, missing.exit());
            Tools.Result load = Tools.run(Duration.ofSeconds(60), "diodload", "-s", srv, "-r", "3", "-n", "4").ok("diodload");
            assertTrue((load.out() + load.err()).matches("(?s).*\\d+ ops/s, \\d+ rMB/s, \\d+ wMB/s.*"), load.toString());
            assertTrue(s.metric("bridgefs_read_bytes_total{path=\"9p\",export=\"ctl\"}") > 0);
        }
    }
}
