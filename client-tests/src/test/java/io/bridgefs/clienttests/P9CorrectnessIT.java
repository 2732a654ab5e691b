package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import io.netty.buffer.Unpooled;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The 9P correctness items pjdfstest found (issue 13), on the wire against the real jar started with
 * a umask of 022: modes are created as sent, a refused truncate leaves nothing behind, times on
 * symlinks and in nanoseconds, setuid cleared by a non-owner's write, and the export options in --help.
 */
class P9CorrectnessIT {
    @TempDir
    Path dir;

    static int mode(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 07777;
    }

    BridgefsProcess start(Path share, int port) throws Exception {
        // the server inherits the test's umask (022 as a rule) and must not apply it to what clients create
        String own = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("Umask")).findFirst().orElse("");
        assertFalse(own.endsWith("0000"), "the test needs a umask that would take bits away: " + own);
        // security=none: these cases are about the server acting for its clients (e.g. clearing setuid as the kernel would)
        return BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share + ",devices,security=none");
    }

    @Test
    void modesAreCreatedAsSentWhateverTheServersUmask() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = start(share, port); RawP9Client c = new RawP9Client(port)) {
            String umask = Tools.run(Duration.ofSeconds(5), "sh", "-c", "grep Umask /proc/" + s.process.pid() + "/status").out();
            System.out.println("server " + umask.trim() + " (0000: bridgefs clears it for its 9P exports)");
            c.attach(8192, "share", 1);
            c.ok(new Tmkdir(c.tag(), 1, "d", 0777, 0), Rmkdir.class);
            c.walk(1, 2);
            c.ok(new Tlcreate(c.tag(), 2, "suid", P9.O_RDWR, 04777, 0), Rlcreate.class);
            c.walk(1, 3);
            c.ok(new Tlcreate(c.tag(), 3, "g", P9.O_RDWR, 0620, 0), Rlcreate.class);
            c.ok(new Tmknod(c.tag(), 1, "fifo", 0010666, 0, 0, 0), Rmknod.class);
            assertEquals(0777, mode(share.resolve("d")));
            assertEquals(04777, mode(share.resolve("suid")));
            assertEquals(0620, mode(share.resolve("g")));
            assertEquals(0666, mode(share.resolve("fifo")));
            assertEquals(0, s.stop());
        }
    }

    @Test
    void aTruncateTheHostRefusesLeavesNothingBehind() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.writeString(share.resolve("f"), "twelve bytes");
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = start(share, port); RawP9Client c = new RawP9Client(port)) {
            c.attach(8192, "share", 1);
            c.walk(1, 2, "f");
            c.ok(new Tlopen(c.tag(), 2, P9.O_RDWR), Rlopen.class);
            int errno = c.error(new Tsetattr(c.tag(), 2, P9.SETATTR_SIZE, 0, 0, 0, 999_999_999_999_999L, 0, 0, 0, 0));
            assertEquals(27, errno, "EFBIG");
            assertEquals(12, c.ok(new Tgetattr(c.tag(), 2, P9.GETATTR_BASIC), Rgetattr.class).size());
            assertEquals(12, Files.size(share.resolve("f")));
            c.ok(new Tfsync(c.tag(), 2, 0), Rfsync.class);
            c.write(2, 12, "!");
            c.ok(new Tfsync(c.tag(), 2, 0), Rfsync.class);
            assertEquals("twelve bytes!", Files.readString(share.resolve("f")));
            Thread.sleep(6000);                         // a periodic write-back (every 5 s) must not retry it
            assertEquals(0, s.stop());
            assertFalse(s.log().contains("ftruncate"), s.log());
        }
    }

    @Test
    void timesOnSymlinksAndInNanoseconds() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.writeString(share.resolve("f"), "x");
        Files.createSymbolicLink(share.resolve("l"), Path.of("f"));
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = start(share, port); RawP9Client c = new RawP9Client(port)) {
            c.attach(8192, "share", 1);
            c.walk(1, 2, "f");
            c.walk(1, 3, "l");
            int both = P9.SETATTR_ATIME | P9.SETATTR_MTIME | P9.SETATTR_ATIME_SET | P9.SETATTR_MTIME_SET;
            c.ok(new Tsetattr(c.tag(), 2, both, 0, 0, 0, 0, 1_000_000_000L, 100_000_000L, 1_100_000_000L, 123_456_789L), Rsetattr.class);
            Rgetattr g = c.ok(new Tgetattr(c.tag(), 2, P9.GETATTR_BASIC), Rgetattr.class);
            assertEquals(1_100_000_000L, g.mtimeSec());
            assertEquals(123_456_789L, g.mtimeNsec(), "nanoseconds kept");
            assertEquals(100_000_000L, g.atimeNsec());
            assertEquals(Instant.ofEpochSecond(1_100_000_000L, 123_456_789L), Files.getLastModifiedTime(share.resolve("f")).toInstant());
            FileTime before = Files.getLastModifiedTime(share.resolve("f"));
            c.ok(new Tsetattr(c.tag(), 3, both, 0, 0, 0, 0, 1_200_000_000L, 5L, 1_300_000_000L, 7L), Rsetattr.class);
            assertEquals(Instant.ofEpochSecond(1_300_000_000L, 7L),
                    ((FileTime) Files.getAttribute(share.resolve("l"), "lastModifiedTime", LinkOption.NOFOLLOW_LINKS)).toInstant(),
                    "the symlink's own mtime");
            assertEquals(before, Files.getLastModifiedTime(share.resolve("f")), "its target untouched");
            Rgetattr lg = c.ok(new Tgetattr(c.tag(), 3, P9.GETATTR_BASIC), Rgetattr.class);
            assertEquals(1_300_000_000L, lg.mtimeSec());
            assertEquals(7L, lg.mtimeNsec());
            assertEquals(0, s.stop());
        }
    }

    @Test
    void aWriteByANonOwnerClearsSetuid() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = start(share, port); RawP9Client root = new RawP9Client(port); RawP9Client user = new RawP9Client(port)) {
            root.attach(8192, "share", 1);
            for (String n : List.of("a", "b", "c")) {
                root.walk(1, 2);
                root.ok(new Tlcreate(root.tag(), 2, n, P9.O_RDWR, n.equals("c") ? 02755 : 06777, 0), Rlcreate.class);
                root.ok(new Tclunk(root.tag(), 2), Rclunk.class);
            }
            // root writes: setuid stays (CAP_FSETID)
            root.walk(1, 3, "a");
            root.ok(new Tlopen(root.tag(), 3, P9.O_WRONLY), Rlopen.class);
            root.write(3, 0, "by root");
            assertEquals(06777, mode(share.resolve("a")));
            // uid 1000 writes: setuid and (group-executable) setgid go
            user.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
            user.ok(new Tattach(user.tag(), 1, P9.NOFID, "user", "share", 1000), Rattach.class);
            user.walk(1, 2, "b");
            user.ok(new Tlopen(user.tag(), 2, P9.O_WRONLY), Rlopen.class);
            user.ok(new Twrite(user.tag(), 2, 0, Unpooled.wrappedBuffer("by 1000".getBytes())), Rwrite.class);
            assertEquals(0777, mode(share.resolve("b")));
            // setgid without group execute is a mandatory-locking mark, not a privilege: it stays
            Files.setPosixFilePermissions(share.resolve("c"), java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr--"));
            Tools.run(Duration.ofSeconds(5), "chmod", "2744", share.resolve("c").toString()).ok("chmod");
            user.walk(1, 3, "c");
            user.ok(new Tlopen(user.tag(), 3, P9.O_WRONLY), Rlopen.class);
            user.ok(new Twrite(user.tag(), 3, 0, Unpooled.wrappedBuffer("x".getBytes())), Rwrite.class);
            assertEquals(02744, mode(share.resolve("c")));
            assertEquals(0, s.stop());
        }
    }

    @Test
    void serveHelpListsThe9pExportOptions() throws Exception {
        Process p = new ProcessBuilder(BridgefsProcess.command("serve", "--help")).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor());
        for (String opt : List.of("ro", "squash=UID:GID", "create", "devices")) assertTrue(out.contains(opt), opt + " in:\n" + out);
    }
}
