package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import io.bridgefs.protocol.p9.Qid;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/** 9P2000.L session semantics and the export boundary, over a raw socket against the real server. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class P9ProtocolIT {
    @TempDir
    static Path dir;
    static Path share, ro, outside;
    BridgefsProcess server;
    int port;

    @BeforeAll
    void start() throws Exception {
        share = Files.createDirectories(dir.resolve("share"));
        ro = Files.createDirectories(dir.resolve("ro"));
        outside = Files.createDirectories(dir.resolve("outside"));
        Files.writeString(outside.resolve("secret"), "OUTSIDE");
        Files.writeString(ro.resolve("file"), "read only");
        Files.createDirectories(share.resolve("d"));
        Files.writeString(share.resolve("d/inside"), "INSIDE");
        Files.createSymbolicLink(share.resolve("toroot"), Path.of("/"));
        Files.createSymbolicLink(share.resolve("up"), Path.of("../outside"));
        port = BridgefsProcess.freePort();
        Files.createDirectories(dir.resolve("sq"));
        Files.createDirectories(dir.resolve("devs"));
        server = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=share",
                "--9p-export", "ro=ro,ro", "--9p-export", "sq=sq,squash=1234:5678", "--9p-export", "devs=devs,devices", "--9p-msize", "64k",
                // room in all for one connection's 65,536 fids (past half of --max-fids a connection gets its share only)
                "--max-fids", "262144");
    }

    @AfterAll
    void stop() throws Exception {
        assertEquals(0, server.stop());
    }

    RawP9Client client(String aname) throws Exception {
        RawP9Client c = new RawP9Client(port);
        c.attach(65536, aname, 1);
        return c;
    }

    @Test
    void versionMsizeAndOversizedFrames() throws Exception {
        try (RawP9Client c = new RawP9Client(port)) {
            Rversion v = c.ok(new Tversion(P9.NOTAG, 1 << 24, "9P2000.u"), Rversion.class);
            assertEquals("unknown", v.version());
            v = c.ok(new Tversion(P9.NOTAG, 1 << 24, P9.VERSION), Rversion.class);
            assertEquals(65536, v.msize(), "msize capped at --9p-msize");
            c.ok(new Tattach(c.tag(), 1, P9.NOFID, "", "share", 0), Rattach.class);
            assertEquals(P9.EMSGSIZE, c.error(new Twrite(c.tag(), 1, 0, Unpooled.wrappedBuffer(new byte[100_000]))));
            c.ok(new Tgetattr(c.tag(), 1, P9.GETATTR_BASIC), Rgetattr.class);   // still in step
        }
    }

    @Test
    void requestsAreCountedByType() throws Exception {
        String[] types = {"version", "attach", "walk", "getattr", "clunk"};
        long[] before = new long[types.length];
        for (int i = 0; i < types.length; i++) before[i] = count(types[i]);
        try (RawP9Client c = client("share")) {             // version + attach
            c.walk(1, 2, "d", "inside");
            for (int i = 0; i < 3; i++) c.ok(new Tgetattr(c.tag(), 2, P9.GETATTR_BASIC), Rgetattr.class);
            c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
        }
        long[] expected = {1, 1, 1, 3, 1};
        for (int i = 0; i < types.length; i++) assertEquals(expected[i], count(types[i]) - before[i], types[i] + " requests");
    }

    long count(String type) throws Exception {
        for (String line : server.http("/metrics").split("\n")) {
            if (line.startsWith("bridgefs_9p_requests_total{type=\"" + type + "\"} ")) return Long.parseLong(line.substring(line.lastIndexOf(' ') + 1));
        }
        return 0;
    }

    @Test
    void walksCloneLimitsAndFidReuse() throws Exception {
        try (RawP9Client c = client("share")) {
            Rwalk clone = c.walk(1, 2);
            assertTrue(clone.qids().isEmpty());
            List<String> many = new ArrayList<>();
            for (int i = 0; i < 17; i++) many.add("d");
            assertEquals(P9.EINVAL, c.error(new Twalk(c.tag(), 1, 3, many)), "more than 16 names");
            Rwalk partial = c.ok(new Twalk(c.tag(), 1, 3, List.of("d", "nope", "x")), Rwalk.class);
            assertEquals(1, partial.qids().size(), "partial walk returns the qids walked");
            assertEquals(P9.EBADF, c.error(new Tclunk(c.tag(), 3)), "newfid not bound after a partial walk");
            assertEquals(P9.ENOENT, c.error(new Twalk(c.tag(), 1, 3, List.of("nope"))));
            assertEquals(P9.EBADF, c.error(new Twalk(c.tag(), 1, 2, List.of("d"))), "newfid in use");
            c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
            c.walk(1, 2, "d", "inside");                       // fid 2 reused after clunk
            c.ok(new Tlopen(c.tag(), 2, P9.O_RDONLY), Rlopen.class);
            assertEquals("INSIDE", new String(c.readAll(2, 4096), StandardCharsets.UTF_8));
            assertEquals(P9.EBADF, c.error(new Tread(c.tag(), 99, 0, 10)));
            c.ok(new Tflush(c.tag(), 12345), Rflush.class);   // nothing in flight: answered at once
        }
    }

    @Test
    void theExportRootIsAHardBoundary() throws Exception {
        try (RawP9Client c = client("share")) {
            Qid root = c.ok(new Tgetattr(c.tag(), 1, P9.GETATTR_BASIC), Rgetattr.class).qid();
            Rwalk up = c.walk(1, 2, "..", "..", "..");
            assertEquals(root.path(), up.qids().get(2).path(), "'..' at the root stays at the root");
            assertStopsAtSymlink(c, "toroot", "etc");
            assertStopsAtSymlink(c, "up", "secret");
            c.walk(1, 4, "toroot");
            assertEquals(P9.ELOOP, c.error(new Tlopen(c.tag(), 4, P9.O_RDONLY)), "a symlink is never opened");
            assertEquals("/", c.ok(new Treadlink(c.tag(), 4), Rreadlink.class).target());
            // a guest-planted symlink: stored, never followed
            c.ok(new Tsymlink(c.tag(), 1, "planted", "/etc", 0), Rsymlink.class);
            assertStopsAtSymlink(c, "planted", "passwd");
            for (String bad : List.of("a/b", ".", "..", "")) {
                c.walk(1, 6);
                assertEquals(P9.EINVAL, c.error(new Tlcreate(c.tag(), 6, bad, P9.O_RDWR, 0644, 0)), "name '" + bad + "'");
                assertEquals(P9.EINVAL, c.error(new Tmkdir(c.tag(), 1, bad, 0755, 0)));
                c.ok(new Tclunk(c.tag(), 6), Rclunk.class);
            }
            assertEquals(P9.EPERM, c.error(new Tmknod(c.tag(), 1, "dev", 0020644, 1, 3, 0)), "device nodes refused");
            c.ok(new Tmknod(c.tag(), 1, "fifo", 0010644, 0, 0, 0), Rmknod.class);
            c.walk(1, 7, "fifo");
            assertEquals(P9.EPERM, c.error(new Tlopen(c.tag(), 7, P9.O_RDONLY)), "FIFOs are never opened on the host");
            assertTrue(Files.exists(share.resolve("fifo")));
        }
        assertEquals("OUTSIDE", Files.readString(outside.resolve("secret")));
    }

    /** A walk through a symlink stops at the link itself (a partial walk); the newfid is not bound. */
    static void assertStopsAtSymlink(RawP9Client c, String link, String next) throws Exception {
        Rwalk w = c.ok(new Twalk(c.tag(), 1, 40, List.of(link, next)), Rwalk.class);
        assertEquals(1, w.qids().size(), "symlinks are never followed: " + link);
        assertEquals(Qid.QTSYMLINK, w.qids().get(0).type());
        assertEquals(P9.EBADF, c.error(new Tclunk(c.tag(), 40)));
    }

    @Test
    void aSymlinkSwappedInDuringWalksNeverLeadsOutside() throws Exception {
        long insideIno = ((Number) Files.getAttribute(share.resolve("d/inside"), "unix:ino")).longValue();
        Path d = share.resolve("d");
        Path parked = dir.resolve("parked");
        var stop = new java.util.concurrent.atomic.AtomicBoolean();
        Thread swapper = new Thread(() -> {
            try {
                while (!stop.get()) {
                    Files.move(d, parked);
                    Files.createSymbolicLink(d, Path.of("../outside"));
                    Files.delete(d);
                    Files.move(parked, d);
                }
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        int ok = 0;
        try (RawP9Client c = client("share")) {
            swapper.start();
            for (int i = 0; i < 400; i++) {
                var r = c.rpc(new Twalk(c.tag(), 1, 2, List.of("d", "inside")));
                if (r instanceof Rwalk w && w.qids().size() == 2) {
                    assertEquals(insideIno, w.qids().get(1).path(), "a walk that succeeds lands inside the export");
                    c.ok(new Tlopen(c.tag(), 2, P9.O_RDONLY), Rlopen.class);
                    assertEquals("INSIDE", new String(c.readAll(2, 100), StandardCharsets.UTF_8));
                    c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
                    ok++;
                }
            }
        } finally {
            stop.set(true);
            swapper.join();
        }
        assertTrue(ok > 0, "some walks succeeded between swaps");
        assertEquals("OUTSIDE", Files.readString(outside.resolve("secret")));
    }

    @Test
    void setattrTimesStatfsSocketsAndSquashedOwnership() throws Exception {
        try (RawP9Client c = client("share")) {
            c.walk(1, 2);
            c.ok(new Tlcreate(c.tag(), 2, "timed", P9.O_RDWR, 0600, 0), Rlcreate.class);
            c.ok(new Tsetattr(c.tag(), 2, P9.SETATTR_MTIME | P9.SETATTR_MTIME_SET | P9.SETATTR_ATIME | P9.SETATTR_ATIME_SET | P9.SETATTR_MODE,
                    0640, 0, 0, 0, 981_173_106L, 0, 981_173_106L, 500_000_000L), Rsetattr.class);
            var mtime = Files.getLastModifiedTime(share.resolve("timed"));
            assertEquals(981_173_106_500L, mtime.toMillis(), "mtime set exactly");
            assertEquals("rw-r-----", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(share.resolve("timed"))));
            Rgetattr g = c.ok(new Tgetattr(c.tag(), 2, P9.GETATTR_BASIC), Rgetattr.class);
            assertEquals(981_173_106L, g.mtimeSec());
            assertEquals(500_000_000L, g.mtimeNsec());
            c.ok(new Tsetattr(c.tag(), 2, P9.SETATTR_MTIME, 0, 0, 0, 0, 0, 0, 0, 0), Rsetattr.class);   // "now"
            assertTrue(Files.getLastModifiedTime(share.resolve("timed")).toMillis() > System.currentTimeMillis() - 60_000);
            Rstatfs fs = c.ok(new Tstatfs(c.tag(), 1), Rstatfs.class);
            assertTrue(fs.bsize() > 0 && fs.blocks() > 0 && fs.namelen() == 255, fs.toString());
            c.ok(new Tmknod(c.tag(), 1, "sock", 0140644, 0, 0, 0), Rmknod.class);
            assertTrue(Files.exists(share.resolve("sock"), java.nio.file.LinkOption.NOFOLLOW_LINKS));
        }
        try (RawP9Client c = client("sq")) {
            c.ok(new Tmkdir(c.tag(), 1, "mine", 0755, 0), Rmkdir.class);
            assertEquals(1234, ((Number) Files.getAttribute(dir.resolve("sq/mine"), "unix:uid")).intValue());
            assertEquals(5678, ((Number) Files.getAttribute(dir.resolve("sq/mine"), "unix:gid")).intValue());
        }
    }

    @Test
    void changesByOtherHostProcessesAreSeen() throws Exception {
        try (RawP9Client c = client("share")) {
            c.walk(1, 2);
            c.ok(new Tlcreate(c.tag(), 2, "hostedit", P9.O_RDWR, 0644, 0), Rlcreate.class);
            c.write(2, 0, "one");
            c.ok(new Tfsync(c.tag(), 2, 0), Rfsync.class);
            c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
            c.walk(1, 3, "hostedit");
            c.ok(new Tlopen(c.tag(), 3, P9.O_RDONLY), Rlopen.class);
            assertEquals("one", new String(c.readAll(3, 100), StandardCharsets.UTF_8));   // now cached
            c.ok(new Tclunk(c.tag(), 3), Rclunk.class);
            Thread.sleep(20);
            Files.writeString(share.resolve("hostedit"), "two, from the host");
            c.walk(1, 4, "hostedit");
            assertEquals(18, c.ok(new Tgetattr(c.tag(), 4, P9.GETATTR_BASIC), Rgetattr.class).size());
            c.ok(new Tlopen(c.tag(), 4, P9.O_RDONLY), Rlopen.class);
            assertEquals("two, from the host", new String(c.readAll(4, 100), StandardCharsets.UTF_8), "no stale cached bytes");
        }
    }

    @Test
    void fidsAreLimitedWithAnErrorNotAnExhaustedServer() throws Exception {
        // a cache=loose client holds a fid per cached dentry: far more fids than the server may hold
        // descriptors (about half its descriptor limit); idle fids lose their descriptor and get it back on use
        try (RawP9Client c = client("share")) {
            int bound = 1;      // the attach fid
            int firstError = -1;
            for (int fid = 100; fid < 100 + 70_000; fid++) {
                var r = c.rpc(new Twalk(c.tag(), 1, fid, List.of("d", "inside")));
                if (r instanceof Rlerror e) {
                    assertEquals(P9.EMFILE, e.ecode());
                    firstError = fid;
                    break;
                }
                bound++;
            }
            assertEquals(65_536, bound, "the per-connection fid limit, reached with an error");
            long fds;
            try (var l = Files.list(Path.of("/proc/" + server.process.pid() + "/fd"))) {
                fds = l.count();
            }
            assertTrue(fds < 12_000, "the server holds " + fds + " descriptors for " + bound + " fids");
            Rgetattr g = c.ok(new Tgetattr(c.tag(), 100, P9.GETATTR_BASIC), Rgetattr.class);   // reclaimed long ago
            assertEquals(Files.getAttribute(share.resolve("d/inside"), "unix:ino"), g.qid().path());
            c.ok(new Tclunk(c.tag(), 100), Rclunk.class);
            c.walk(1, 100);                                   // room again after a clunk
            assertTrue(firstError > 0);
        }
        try (RawP9Client other = client("share")) {
            other.walk(1, 2, "d", "inside");                  // and the server serves everyone else
        }
    }

    @Test
    void deviceNodesOnlyWhereTheExportAllowsThemAndNeverOpened() throws Exception {
        try (RawP9Client c = client("devs")) {
            c.ok(new Tmknod(c.tag(), 1, "null", 0020666, 1, 3, 0), Rmknod.class);
            String st = Tools.run(java.time.Duration.ofSeconds(10), "stat", "-c", "%F %t %T", dir.resolve("devs/null").toString()).ok("stat").out().trim();
            assertEquals("character special file 1 3", st);
            c.walk(1, 2, "null");
            assertEquals(P9.EPERM, c.error(new Tlopen(c.tag(), 2, P9.O_RDWR)), "a device is never opened on the host");
        }
    }

    @Test
    void readOnlyExportAnswersErofs() throws Exception {
        try (RawP9Client c = client("ro")) {
            c.walk(1, 2);
            assertEquals(P9.EROFS, c.error(new Tlcreate(c.tag(), 2, "new", P9.O_RDWR, 0644, 0)));
            assertEquals(P9.EROFS, c.error(new Tmkdir(c.tag(), 1, "dir", 0755, 0)));
            assertEquals(P9.EROFS, c.error(new Tunlinkat(c.tag(), 1, "file", 0)));
            c.walk(1, 3, "file");
            assertEquals(P9.EROFS, c.error(new Tsetattr(c.tag(), 3, P9.SETATTR_MODE, 0777, 0, 0, 0, 0, 0, 0, 0)));
            assertEquals(P9.EROFS, c.error(new Tlopen(c.tag(), 3, P9.O_RDWR)));
            c.ok(new Tlopen(c.tag(), 3, P9.O_RDONLY), Rlopen.class);
            assertEquals("read only", new String(c.readAll(3, 100), StandardCharsets.UTF_8));
        }
        assertEquals("read only", Files.readString(ro.resolve("file")));
    }

    @Test
    void readdirCookiesResumeWithoutLossOrRepeats() throws Exception {
        Path big = Files.createDirectories(share.resolve("entries"));
        for (int i = 0; i < 700; i++) Files.writeString(big.resolve("entry-" + i), "");
        try (RawP9Client c = client("share")) {
            c.walk(1, 2, "entries");
            c.ok(new Tlopen(c.tag(), 2, P9.O_RDONLY | P9.O_DIRECTORY), Rlopen.class);
            Set<String> names = new HashSet<>();
            int batches = 0;
            long offset = 0;
            while (true) {
                Rreaddir r = c.ok(new Treaddir(c.tag(), 2, offset, 300), Rreaddir.class);
                ByteBuf b = r.data();
                if (!b.isReadable()) break;
                batches++;
                while (b.isReadable()) {
                    b.skipBytes(Qid.SIZE);
                    offset = b.readLongLE();
                    b.readByte();
                    int n = b.readUnsignedShortLE();
                    String name = b.toString(b.readerIndex(), n, StandardCharsets.UTF_8);
                    b.skipBytes(n);
                    assertTrue(names.add(name), "entry repeated at a batch boundary: " + name);
                }
                if (batches == 20) Files.writeString(big.resolve("zz-added-while-listing"), "");   // the directory changes
            }
            assertTrue(batches > 20, "small batches: " + batches);
            for (int i = 0; i < 700; i++) assertTrue(names.contains("entry-" + i), "entry-" + i + " lost");
        }
    }

    @Test
    void openUnlinkXattrsAndLocksAcrossClients() throws Exception {
        try (RawP9Client a = client("share"); RawP9Client b = client("share")) {
            a.walk(1, 2);
            a.ok(new Tlcreate(a.tag(), 2, "locked", P9.O_RDWR, 0644, 0), Rlcreate.class);
            a.write(2, 0, "data");
            b.walk(1, 2, "locked");
            b.ok(new Tlopen(b.tag(), 2, P9.O_RDWR), Rlopen.class);
            assertEquals(P9.LOCK_SUCCESS, a.ok(new Tlock(a.tag(), 2, P9.LOCK_TYPE_WRLCK, 0, 0, 0, 11, "guest-a"), Rlock.class).status());
            assertEquals(P9.LOCK_BLOCKED, b.ok(new Tlock(b.tag(), 2, P9.LOCK_TYPE_RDLCK, 0, 0, 10, 22, "guest-b"), Rlock.class).status());
            Rgetlock holder = b.ok(new Tgetlock(b.tag(), 2, P9.LOCK_TYPE_WRLCK, 0, 0, 22, "guest-b"), Rgetlock.class);
            assertEquals(P9.LOCK_TYPE_WRLCK, holder.type());
            assertEquals("guest-a", holder.clientId());
            assertEquals(11, holder.procId());
            assertEquals(P9.LOCK_SUCCESS, a.ok(new Tlock(a.tag(), 2, P9.LOCK_TYPE_UNLCK, 0, 0, 0, 11, "guest-a"), Rlock.class).status());
            assertEquals(P9.LOCK_SUCCESS, b.ok(new Tlock(b.tag(), 2, P9.LOCK_TYPE_RDLCK, 0, 0, 10, 22, "guest-b"), Rlock.class).status());

            // xattrs
            a.walk(1, 3, "locked");
            a.ok(new Txattrcreate(a.tag(), 3, "user.bridgefs", 5, 0), Rxattrcreate.class);
            a.write(3, 0, "value");
            a.ok(new Tclunk(a.tag(), 3), Rclunk.class);
            a.walk(1, 3, "locked");
            assertEquals(5, a.ok(new Txattrwalk(a.tag(), 3, 4, "user.bridgefs"), Rxattrwalk.class).size());
            assertEquals("value", new String(a.readAll(4, 100), StandardCharsets.UTF_8));
            assertEquals(P9.ENODATA, a.error(new Txattrwalk(a.tag(), 3, 5, "security.capability")));
            var view = Files.getFileAttributeView(share.resolve("locked"), java.nio.file.attribute.UserDefinedFileAttributeView.class);
            assertTrue(view.list().contains("bridgefs"), "the xattr is on the host file");

            // open-unlink: the open fid keeps working
            a.ok(new Tunlinkat(a.tag(), 1, "locked", 0), Runlinkat.class);
            assertFalse(Files.exists(share.resolve("locked")));
            a.write(2, 4, "-more");
            assertEquals("data-more", new String(a.readAll(2, 100), StandardCharsets.UTF_8));
            Rgetattr g = a.ok(new Tgetattr(a.tag(), 2, P9.GETATTR_BASIC), Rgetattr.class);
            assertEquals(9, g.size());
            assertEquals(0, g.nlink());
            a.ok(new Tfsync(a.tag(), 2, 0), Rfsync.class);
        }
    }
}
