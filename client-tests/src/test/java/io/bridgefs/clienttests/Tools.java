package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs real client programs. A missing program fails the test loudly: the test command installs them. */
final class Tools {
    private Tools() {}

    /** Debian package of each client program. */
    static final Map<String, String> PACKAGES = Map.ofEntries(
            Map.entry("nbdinfo", "libnbd-bin"), Map.entry("nbdcopy", "libnbd-bin"),
            Map.entry("qemu-img", "qemu-utils"), Map.entry("qemu-io", "qemu-utils"), Map.entry("qemu-nbd", "qemu-utils"),
            Map.entry("qemu-system-x86_64", "qemu-system-x86"), Map.entry("fio", "fio"), Map.entry("nbdkit", "nbdkit"),
            Map.entry("mkfs.ext4", "e2fsprogs"), Map.entry("e2fsck", "e2fsprogs"), Map.entry("debugfs", "e2fsprogs"),
            Map.entry("busybox", "busybox-static"), Map.entry("cpio", "cpio"),
            Map.entry("gcc", "gcc + libc6-dev"), Map.entry("diodls", "diod"), Map.entry("diodcat", "diod"), Map.entry("diodload", "diod"),
            Map.entry("diod", "diod"));

    record Result(int exit, String out, String err) {
        Result ok(String what) {
            assertEquals(0, exit, what + " failed (exit " + exit + ")\nstdout:\n" + out + "\nstderr:\n" + err);
            return this;
        }
    }

    static void require(String... programs) {
        for (String p : programs) {
            boolean found = false;
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                if (Files.isExecutable(Path.of(dir, p))) found = true;
            }
            for (String dir : List.of("/usr/sbin", "/sbin", "/bin")) {
                if (Files.isExecutable(Path.of(dir, p))) found = true;
            }
            if (!found) {
                fail("required client program '" + p + "' is not installed (Debian package " + PACKAGES.getOrDefault(p, "?")
                        + "). The test command ./test.sh installs it with apt-get when run as root.");
            }
        }
    }

    static Result run(Duration timeout, String... cmd) throws IOException, InterruptedException {
        return run(null, timeout, List.of(cmd));
    }

    static Result run(Path dir, Duration timeout, List<String> cmd) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        if (dir != null) pb.directory(dir.toFile());
        pb.environment().put("PATH", pb.environment().getOrDefault("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin");
        Path out = Files.createTempFile("bridgefs-out", ".txt");
        Path err = Files.createTempFile("bridgefs-err", ".txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        Process p = pb.start();
        if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail(String.join(" ", cmd) + " did not finish in " + timeout + "\nstdout:\n" + tail(out) + "\nstderr:\n" + tail(err));
        }
        Result r = new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8), Files.readString(err, StandardCharsets.UTF_8));
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
        return r;
    }

    private static String tail(Path p) throws IOException {
        String s = Files.readString(p, StandardCharsets.ISO_8859_1);
        return s.length() > 4000 ? s.substring(s.length() - 4000) : s;
    }

    static String sha256(Path file) throws IOException {
        try (var in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A sparse file of {@code size} bytes with random data in the given (offset, length) regions. */
    static Path sparseImage(Path file, long size, long seed, long... regions) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.WRITE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
            java.util.Random r = new java.util.Random(seed);
            for (int i = 0; i + 1 < regions.length; i += 2) {
                byte[] data = new byte[(int) regions[i + 1]];
                r.nextBytes(data);
                ch.write(java.nio.ByteBuffer.wrap(data), regions[i]);
            }
            ch.truncate(size);
        }
        try (var raf = new java.io.RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size);
        }
        return file;
    }

    /** Allocated bytes of a file on the host (st_blocks * 512). */
    static long allocated(Path file) throws IOException, InterruptedException {
        return Long.parseLong(run(Duration.ofSeconds(10), "stat", "-c", "%b", file.toString()).ok("stat").out().trim()) * 512;
    }
}
