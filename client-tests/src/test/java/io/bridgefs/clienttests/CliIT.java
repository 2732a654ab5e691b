package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line as users meet it: help, start-up errors, the example configuration, SIGTERM. */
class CliIT {

    static Tools.Result bridgefs(Path dir, String... args) throws Exception {
        return Tools.run(dir, Duration.ofSeconds(60), BridgefsProcess.command(args));
    }

    static void oneLineError(Tools.Result r, String expect) {
        assertNotEquals(0, r.exit(), r.toString());
        String err = r.err().strip();
        assertFalse(err.contains("\tat ") || err.contains("Exception"), "no stack trace:\n" + err);
        List<String> errorLines = err.lines().filter(l -> l.startsWith("bridgefs: ")).toList();
        assertEquals(1, errorLines.size(), "exactly one error line:\n" + err);
        assertTrue(errorLines.get(0).contains(expect), err);
    }

    @Test
    void helpExplainsEveryOption(@TempDir Path dir) throws Exception {
        String help = bridgefs(dir, "serve", "--help").ok("serve --help").out();
        for (String o : List.of("--nbd-listen", "--nbd-export", "--cache-size", "--cache-mode", "--metrics-listen", "--config")) {
            assertTrue(help.contains(o), o + " missing from help:\n" + help);
        }
    }

    @Test
    void startupErrorsAreOneClearLine(@TempDir Path dir) throws Exception {
        oneLineError(bridgefs(dir, "serve", "--bogus"), "Unknown option");
        oneLineError(bridgefs(dir, "serve", "--nbd-export", "disk=missing.img"), "image not found");
        oneLineError(bridgefs(dir, "serve", "--config", "nope.conf"), "config file nope.conf not found");
        oneLineError(bridgefs(dir, "serve", "--nbd-export", "d=x.img,create=1m", "--cache-size", "lots"), "not a size");
        oneLineError(bridgefs(dir, "serve", "--nbd-export", "d=x.img,create=1m", "--cache-mode", "fast"), "unknown cache mode");
        Files.writeString(dir.resolve("bad.conf"), "nbd-export = d=x.img,create=1m\nno-such-setting = 1\n");
        oneLineError(bridgefs(dir, "serve", "--config", "bad.conf"), "unknown setting 'no-such-setting'");
        Files.createDirectories(dir.resolve("adir.conf"));
        oneLineError(bridgefs(dir, "serve", "--config", "adir.conf"), "cannot read config file adir.conf");
        int port = BridgefsProcess.freePort();
        try (var blocker = new java.net.ServerSocket(port, 1, java.net.InetAddress.getLoopbackAddress())) {
            oneLineError(bridgefs(dir, "serve", "--nbd-export", "d=x.img,create=1m", "--nbd-listen", "127.0.0.1:" + port), "cannot listen");
        }
    }

    @Test
    void exampleConfigurationServesTheDemoDisk(@TempDir Path dir) throws Exception {
        Path conf = Path.of("..", "conf", "bridgefs.conf").toAbsolutePath().normalize();
        assertTrue(Files.exists(conf));
        try (var s = BridgefsProcess.start(dir, "--config", conf.toString())) {
            assertTrue(Files.exists(dir.resolve("demo/disk.img")), "demo disk created on first run");
            String out = s.stdout.toString();
            assertTrue(out.contains("nbdinfo " + s.uri("disk")), out);
            assertTrue(out.contains("-drive file=" + s.uri("disk") + ",format=raw,if=virtio"), out);
            Tools.run(Duration.ofSeconds(30), "nbdinfo", s.uri("disk")).ok("nbdinfo on the demo disk");
            // writeback-nice = 10: background write-back yields the CPU to requests, which keep the server's
            // priority (the server inherits this JVM's nice value)
            int own = BridgefsProcess.ownNice();
            assertEquals(java.util.Set.of(Math.min(19, own + 10)), s.threadNice("bridgefs-flush", Math.min(19, own + 10)), "the background flusher's nice value");
            assertEquals(java.util.Set.of(own), s.threadNice("multiThreadIoEv", own), "the network threads' nice value");
        }
    }

    @Test
    void sigtermFinishesFlushesAndExitsZero(@TempDir Path dir) throws Exception {
        Tools.sparseImage(dir.resolve("d.img"), 16 << 20, 1);
        byte[] data = new byte[1 << 20];
        new java.util.Random(99).nextBytes(data);
        var s = BridgefsProcess.start(dir, "--nbd-export", "d=d.img", "--writeback-interval", "0", "--cache-size", "64m", "--writeback-nice", "19");
        assertEquals(java.util.Set.of(19), s.threadNice("bridgefs-flush", 19), "--writeback-nice 19: as low as a thread goes");
        try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.go("d");
            c.write(1, 4096, data);
            assertEquals(0, c.reply(0).error());
        }
        byte[] onDisk = java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve("d.img")), 4096, 4096 + data.length);
        assertFalse(java.util.Arrays.equals(data, onDisk), "writeback mode: not yet on disk before a flush");
        assertEquals(0, s.stop(), "SIGTERM exits 0");
        onDisk = java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve("d.img")), 4096, 4096 + data.length);
        assertArrayEquals(data, onDisk, "dirty pages flushed at shutdown");
        assertTrue(s.log().isEmpty() || !s.log().contains("Exception"), s.log());
        assertFalse(s.log().contains("could not tune the C allocator"), "glibc's mallopt took the server's thresholds: " + s.log());
    }

    @Test
    void unixSocketListener(@TempDir Path dir) throws Exception {
        Tools.sparseImage(dir.resolve("u.img"), 4 << 20, 1);
        Path sock = dir.resolve("nbd.sock");
        List<String> cmd = new ArrayList<>(BridgefsProcess.command("serve", "--nbd-listen", "unix:" + sock, "--nbd-export", "u=u.img"));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        try {
            for (int i = 0; i < 100 && !Files.exists(sock); i++) Thread.sleep(100);
            assertTrue(Files.exists(sock), "unix socket created");
            String size = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--size", "nbd+unix:///u?socket=" + sock).ok("nbdinfo over unix socket").out();
            assertEquals("4194304", size.trim());
        } finally {
            p.destroy();
            assertEquals(0, p.waitFor());
        }
        assertFalse(Files.exists(sock), "socket removed at exit");
    }

    @Test
    void statsCommandShowsTheLiveCounters(@TempDir Path dir) throws Exception {
        Tools.sparseImage(dir.resolve("s.img"), 4 << 20, 1, 0, 1 << 20);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "s=s.img")) {
            Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("s"), "null:").ok("nbdcopy");
            String out = bridgefs(dir, "stats", "--url", "http://127.0.0.1:" + s.metricsPort).ok("bridgefs stats").out();
            long fills = s.metric("bridgefs_cache_fills_total{path=\"nbd\"}");
            assertTrue(fills > 0);
            assertTrue(out.matches("(?s).*cache_fills\\s+" + fills + "\\s+0\\n.*"), "fills row shows the live count " + fills + ":\n" + out);
            String readBytes = io.bridgefs.server.config.Sizes.human(s.metric("bridgefs_read_bytes_total{path=\"nbd\",export=\"s\"}"));
            assertTrue(out.matches("(?s).*\\nnbd\\s+s\\s+\\d+\\s+" + java.util.regex.Pattern.quote(readBytes) + ".*"), "per-export row with " + readBytes + ":\n" + out);
            assertTrue(out.contains("residency: cached"), out);
        }
        oneLineError(bridgefs(dir, "stats", "--url", "http://127.0.0.1:" + BridgefsProcess.freePort()), "cannot read");
    }

    @Test
    void statsCommandShowsWhatMergingShares(@TempDir Path dir) throws Exception {
        // two images with the same 1 MiB of random data: the second one's 256 pages merge onto the first's
        Tools.sparseImage(dir.resolve("a.img"), 4 << 20, 7, 0, 1 << 20);
        Tools.sparseImage(dir.resolve("b.img"), 4 << 20, 7, 0, 1 << 20);
        try (var s = BridgefsProcess.start(dir, "--dedup", "merge", "--nbd-export", "a=a.img", "--nbd-export", "b=b.img")) {
            Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("a"), "null:").ok("nbdcopy a");
            Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("b"), "null:").ok("nbdcopy b");
            assertEquals(256, s.metric("bridgefs_dedup_pages_shared"));
            String out = bridgefs(dir, "stats", "--url", "http://127.0.0.1:" + s.metricsPort).ok("bridgefs stats").out();
            assertTrue(out.contains("merged (dedup merge): 256 frames shared by 256 more pages, saving 1.0 MiB"), out);
        }
    }

    /**
     * conf/bridgefs.service as systemd reads it: no complaint from systemd-analyze, a dedicated user,
     * the hardening the README promises, and a capability bound of exactly what --user keeps for a
     * passthrough export (the example configuration's default model as root).
     */
    @Test
    void theSystemdUnitIsHardenedAndVerifies() throws Exception {
        Tools.require("systemd-analyze");
        Path unit = Path.of("../conf/bridgefs.service").toAbsolutePath().normalize();
        Tools.Result r = Tools.run(Duration.ofSeconds(60), "systemd-analyze", "verify", unit.toString());
        assertEquals(0, r.exit(), r.out() + r.err());
        assertFalse((r.out() + r.err()).contains("bridgefs.service:"), "systemd complains about the unit:\n" + r.out() + r.err());
        java.util.List<String> lines = Files.readAllLines(unit);
        for (String want : java.util.List.of("User=bridgefs", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateDevices=yes")) {
            assertTrue(lines.contains(want), "the unit sets " + want);
        }
        java.util.Set<String> passthrough = java.util.Set.of("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
                "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID");
        for (String key : java.util.List.of("AmbientCapabilities=", "CapabilityBoundingSet=")) {
            String line = lines.stream().filter(l -> l.startsWith(key)).findFirst().orElseThrow();
            assertEquals(passthrough, java.util.Set.of(line.substring(key.length()).trim().split("\\s+")), key);
        }
    }
}
