package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** nbdcopy (single and multi-connection) and fio's nbd engine with verification. */
class NbdCopyAndFioIT {
    static final long MiB = 1 << 20;
    static final long GiB = 1L << 30;

    @Test
    void nbdcopyOneGiBSparseInAndOut(@TempDir Path dir) throws Exception {
        Tools.require("nbdcopy");
        Path src = Tools.sparseImage(dir.resolve("src.img"), GiB, 11, 0, 16 * MiB, 300 * MiB, 32 * MiB, GiB - 8 * MiB, 8 * MiB);
        String want = Tools.sha256(src);
        Tools.sparseImage(dir.resolve("target.img"), GiB, 12, 600 * MiB, 64 * MiB);   // stale data to be zeroed
        Tools.sparseImage(dir.resolve("target4.img"), GiB, 13);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "t=target.img", "--nbd-export", "t4=target4.img", "--cache-size", "128m")) {
            Tools.run(Duration.ofSeconds(300), "nbdcopy", "--progress", src.toString(), s.uri("t")).ok("nbdcopy in");
            Tools.run(Duration.ofSeconds(300), "nbdcopy", "-C", "4", src.toString(), s.uri("t4")).ok("nbdcopy -C 4 in");
            Path out = dir.resolve("out.img");
            Path out4 = dir.resolve("out4.img");
            Tools.run(Duration.ofSeconds(300), "nbdcopy", s.uri("t"), out.toString()).ok("nbdcopy out");
            Tools.run(Duration.ofSeconds(300), "nbdcopy", "-C", "4", s.uri("t4"), out4.toString()).ok("nbdcopy -C 4 out");
            assertEquals(want, Tools.sha256(out), "1 GiB copied in and out through NBD");
            assertEquals(want, Tools.sha256(out4), "1 GiB copied in and out with 4 connections");
            Tools.run(Duration.ofSeconds(120), "nbdcopy", s.uri("t"), "null:").ok("nbdcopy to null:");
        }
        assertEquals(want, Tools.sha256(dir.resolve("target.img")), "host image after stop");
        assertEquals(want, Tools.sha256(dir.resolve("target4.img")), "host image (multi-conn) after stop");
        assertTrue(Tools.allocated(dir.resolve("target.img")) < 200 * MiB, "zeroed ranges became holes");
    }

    @Test
    void fioRandomWriteVerifiedWithCrc32c(@TempDir Path dir) throws Exception {
        Tools.require("fio");
        Tools.sparseImage(dir.resolve("fio.img"), 256 * MiB, 21);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "fio=fio.img", "--cache-size", "32m")) {
            Tools.Result r = Tools.run(Duration.ofSeconds(300), "fio", "--name=verify", "--ioengine=nbd", "--uri=" + s.uri("fio"),
                    "--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=128m", "--verify=crc32c", "--do_verify=1",
                    "--verify_fatal=1", "--randrepeat=0", "--verify_state_save=0").ok("fio randwrite + verify");
            assertTrue(r.out().contains("err= 0"), r.out());
            assertFalse(r.out().contains("verify: bad"), r.out());
            Tools.Result mixed = Tools.run(Duration.ofSeconds(300), "fio", "--name=mixed", "--ioengine=nbd", "--uri=" + s.uri("fio"),
                    "--rw=randrw", "--bs=4k-256k", "--iodepth=16", "--size=64m", "--verify=crc32c", "--do_verify=1",
                    "--verify_fatal=1", "--offset=128m", "--verify_state_save=0").ok("fio mixed sizes + verify");
            assertTrue(mixed.out().contains("err= 0"), mixed.out());
            assertEquals(0, s.metric("bridgefs_io_errors_total{path=\"nbd\",export=\"fio\"}"));
        }
    }

    /**
     * Cold random reads at queue depth 32 are read from disk in batches (one io_submit for many, see
     * ReadBatch): fio writes a verifiable pattern into the image file, then reads it all back through
     * a freshly started bridgefs whose cache holds a quarter of it, checking every block.
     */
    @Test
    void fioColdRandomReadsInBatchesVerified(@TempDir Path dir) throws Exception {
        Tools.require("fio");
        Path img = dir.resolve("cold.img");
        Tools.sparseImage(img, 64 * MiB, 22);
        String[] job = {"--name=cold", "--rw=randwrite", "--bs=4k", "--size=64m", "--randseed=7", "--verify=crc32c", "--verify_state_save=0"};
        Tools.Result w = Tools.run(Duration.ofSeconds(300), concat(new String[] {"fio", "--filename=" + img, "--ioengine=psync", "--do_verify=0", "--end_fsync=1"}, job))
                .ok("fio writes the pattern into the image file");
        assertTrue(w.out().contains("err= 0"), w.out());
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "cold=cold.img", "--cache-size", "16m")) {
            Tools.Result r = Tools.run(Duration.ofSeconds(300), concat(new String[] {"fio", "--ioengine=nbd", "--uri=" + s.uri("cold"),
                    "--iodepth=32", "--verify_only", "--verify_fatal=1"}, job)).ok("fio reads and verifies it through bridgefs");
            assertTrue(r.out().contains("err= 0"), r.out());
            assertFalse(r.out().contains("verify: bad"), r.out());
            String labels = "{path=\"nbd\",export=\"cold\"}";
            assertEquals(0, s.metric("bridgefs_io_errors_total" + labels));
            double batched = s.metric("bridgefs_batched_reads_total" + labels), reads = s.metric("bridgefs_read_ops_total" + labels);
            assertTrue(batched > reads / 4, "most cold reads were read in batches: " + batched + " of " + reads);
        }
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
