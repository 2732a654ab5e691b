package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import io.bridgefs.protocol.p9.Qid;
import io.netty.buffer.Unpooled;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * security=mapped on the wire (issue 9): what the guest sets lives in QEMU's user.virtfs.* xattrs, the
 * host holds plain 0600/0700 files of the server's user, the server's xattrs are hidden and refused,
 * the tree reads the same after a restart; the server run as an ordinary user (setpriv) and dropped to
 * one with --user; exports limited to some hosts.
 */
class P9MappedIT {
    static final int S_IFREG = 0100000, S_IFDIR = 0040000, S_IFLNK = 0120000, S_IFCHR = 0020000, S_IFIFO = 0010000, S_IFSOCK = 0140000;

    @TempDir
    Path dir;

    static RawP9Client attach(int port, String aname, int uid) throws Exception {
        RawP9Client c = new RawP9Client(port);
        c.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
        c.ok(new Tattach(c.tag(), 1, P9.NOFID, "u" + uid, aname, uid), Rattach.class);
        return c;
    }

    static Rgetattr getattr(RawP9Client c, String name) throws Exception {
        c.walk(1, 9, name);
        try {
            return c.ok(new Tgetattr(c.tag(), 9, P9.GETATTR_BASIC), Rgetattr.class);
        } finally {
            c.ok(new Tclunk(c.tag(), 9), Rclunk.class);
        }
    }

    static String xattr(Path p, String name) throws Exception {
        UserDefinedFileAttributeView v = Files.getFileAttributeView(p, UserDefinedFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
        if (!v.list().contains(name)) return null;
        ByteBuffer b = ByteBuffer.allocate(v.size(name));
        v.read(name, b);
        b.flip().order(ByteOrder.LITTLE_ENDIAN);
        return b.remaining() == 8 ? Long.toString(b.getLong()) : Integer.toOctalString(b.getInt());
    }

    static int hostMode(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
    }

    static int hostUid(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS);
    }

    /** What a client sees of each name: type and mode, owner, device, size. */
    static Map<String, String> view(RawP9Client c, List<String> names) throws Exception {
        Map<String, String> m = new LinkedHashMap<>();
        for (String n : names) {
            Rgetattr a = getattr(c, n);
            m.put(n, Integer.toOctalString(a.mode()) + " " + a.uid() + ":" + a.gid() + " rdev=" + a.rdev() + " size=" + a.size());
        }
        return m;
    }

    static void create(RawP9Client c, String name, int mode, int gid) throws Exception {
        c.walk(1, 2);
        c.ok(new Tlcreate(c.tag(), 2, name, P9.O_RDWR, mode, gid), Rlcreate.class);
        c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
    }

    @Test
    void theGuestsViewLivesInXattrsAndSurvivesARestart() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        int port = BridgefsProcess.freePort();
        String[] args = {"--9p-listen", "127.0.0.1:" + port, "--9p-export", "m=" + share + ",security=mapped"};
        List<String> names = List.of("suid", "cdev", "fifo", "link", "dir");
        Map<String, String> before;
        int server = BackingErrorsIT.root() ? 0 : -1;
        try (BridgefsProcess s = BridgefsProcess.start(dir, args)) {
            assertTrue(s.stdout.toString().contains("security=mapped"), s.stdout.toString());
            try (RawP9Client c = attach(port, "m", 0)) {
                create(c, "suid", 04755, 0);
                Rgetattr a = getattr(c, "suid");
                assertEquals(S_IFREG | 04755, a.mode(), "the guest sees the mode it set");
                assertEquals(0600, hostMode(share.resolve("suid")) & 07777, "on the host: a 0600 file, no setuid bit");
                assertEquals("104755", xattr(share.resolve("suid"), "virtfs.mode"));
                if (server >= 0) assertEquals(server, hostUid(share.resolve("suid")));
                // chown: only the guest's view changes
                c.walk(1, 3, "suid");
                c.ok(new Tsetattr(c.tag(), 3, P9.SETATTR_UID | P9.SETATTR_GID, 0, 1000, 1000, 0, 0, 0, 0, 0), Rsetattr.class);
                c.ok(new Tclunk(c.tag(), 3), Rclunk.class);
                a = getattr(c, "suid");
                assertEquals(1000, a.uid());
                assertEquals(1000, a.gid());
                assertEquals("1750", xattr(share.resolve("suid"), "virtfs.uid"));   // 1000 in octal
                if (server >= 0) assertEquals(server, hostUid(share.resolve("suid")), "the host file stays the server's");

                c.ok(new Tmknod(c.tag(), 1, "cdev", S_IFCHR | 0644, 1, 3, 0), Rmknod.class);
                a = getattr(c, "cdev");
                assertEquals(S_IFCHR | 0644, a.mode());
                assertEquals(0x103, a.rdev(), "makedev(1, 3)");
                assertTrue(Files.isRegularFile(share.resolve("cdev"), LinkOption.NOFOLLOW_LINKS), "a device node is a plain file on the host");
                assertEquals(0600, hostMode(share.resolve("cdev")) & 07777);
                c.ok(new Tmknod(c.tag(), 1, "fifo", S_IFIFO | 0640, 0, 0, 0), Rmknod.class);
                assertTrue(Files.isRegularFile(share.resolve("fifo"), LinkOption.NOFOLLOW_LINKS));
                c.ok(new Tmknod(c.tag(), 1, "sock", S_IFSOCK | 0755, 0, 0, 0), Rmknod.class);
                assertEquals(S_IFSOCK | 0755, getattr(c, "sock").mode(), "a socket in the guest's view");
                assertTrue(Files.isRegularFile(share.resolve("sock"), LinkOption.NOFOLLOW_LINKS), "a plain file on the host");
                c.walk(1, 4, "cdev");
                assertEquals(P9.EPERM, c.error(new Tlopen(c.tag(), 4, P9.O_RDONLY)), "a mapped device is never opened as a file");
                c.ok(new Tclunk(c.tag(), 4), Rclunk.class);

                c.ok(new Tsymlink(c.tag(), 1, "link", "some/target", 0), Rsymlink.class);
                assertTrue(Files.isRegularFile(share.resolve("link"), LinkOption.NOFOLLOW_LINKS), "a symlink is a file holding its target");
                assertEquals("some/target", Files.readString(share.resolve("link")));
                Rwalk w = c.walk(1, 5, "link");
                assertEquals(Qid.QTSYMLINK, w.qids().get(0).type());
                assertEquals("some/target", c.ok(new Treadlink(c.tag(), 5), Rreadlink.class).target());
                c.ok(new Tclunk(c.tag(), 5), Rclunk.class);

                c.ok(new Tmkdir(c.tag(), 1, "dir", 02775, 1000), Rmkdir.class);
                a = getattr(c, "dir");
                assertEquals(S_IFDIR | 02775, a.mode());
                assertEquals(1000, a.gid());
                assertEquals(0700, hostMode(share.resolve("dir")) & 07777);

                // xattrs: the server's own are hidden and refused; other namespaces would act on the host file
                c.walk(1, 6, "suid");
                assertEquals(P9.EACCES, c.error(new Txattrcreate(c.tag(), 6, "user.virtfs.uid", 4, 0)));
                assertEquals(P9.EOPNOTSUPP, c.error(new Txattrcreate(c.tag(), 6, "trusted.x", 1, 0)));
                assertEquals(P9.EOPNOTSUPP, c.error(new Txattrcreate(c.tag(), 6, "security.capability", 20, 0)));
                c.ok(new Txattrcreate(c.tag(), 6, "user.note", 5, 0), Rxattrcreate.class);
                c.ok(new Twrite(c.tag(), 6, 0, Unpooled.wrappedBuffer("hello".getBytes(StandardCharsets.UTF_8))), Rwrite.class);
                c.ok(new Tclunk(c.tag(), 6), Rclunk.class);
                c.walk(1, 7, "suid");
                long n = c.ok(new Txattrwalk(c.tag(), 7, 8, ""), Rxattrwalk.class).size();
                String list = new String(c.readAll(8, 4096), StandardCharsets.UTF_8);
                assertEquals(n, list.length());
                assertTrue(list.contains("user.note"), list);
                assertFalse(list.contains("virtfs"), "the server's xattrs are hidden: " + list);
                c.ok(new Tclunk(c.tag(), 8), Rclunk.class);
                assertEquals(P9.ENODATA, c.error(new Txattrwalk(c.tag(), 7, 8, "user.virtfs.mode")));
                c.ok(new Tclunk(c.tag(), 7), Rclunk.class);
                before = view(c, names);
            }
            // a write by a non-root guest user clears setuid in the guest's view
            try (RawP9Client u = attach(port, "m", 1000)) {
                u.walk(1, 2, "suid");
                u.ok(new Tlopen(u.tag(), 2, P9.O_WRONLY), Rlopen.class);
                u.write(2, 0, "data");
                u.ok(new Tclunk(u.tag(), 2), Rclunk.class);
                assertEquals(S_IFREG | 0755, getattr(u, "suid").mode());
                before = view(u, names);
            }
            assertEquals(0, s.stop());
        }
        try (BridgefsProcess s = BridgefsProcess.start(dir, args); RawP9Client c = attach(port, "m", 0)) {
            assertEquals(before, view(c, names), "the tree reads back identically after a restart");
            c.close();
            assertEquals(0, s.stop());
        }
    }

    @Test
    void exportsServedOnlyToSomeHosts() throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        Path disk = dir.resolve("disk.img");
        Tools.sparseImage(disk, 1 << 20, 1);
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "far=" + share + ",security=mapped,hosts=10.9.9.0/24:[fd00::]/8",
                "--9p-export", "near=" + share + ",security=mapped,hosts=127.0.0.0/8",
                "--nbd-export", "fardisk=" + disk + ",hosts=10.9.9.9", "--nbd-export", "disk=" + disk)) {
            try (RawP9Client c = new RawP9Client(port)) {
                c.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                assertEquals(P9.EACCES, c.error(new Tattach(c.tag(), 1, P9.NOFID, "root", "far", 0)), "not served to 127.0.0.1");
                c.ok(new Tattach(c.tag(), 1, P9.NOFID, "root", "near", 0), Rattach.class);
            }
            Tools.require("nbdinfo");
            Tools.Result list = Tools.run(Duration.ofSeconds(20), "nbdinfo", "--list", "nbd://127.0.0.1:" + s.nbdPort);
            list.ok("nbdinfo --list");
            assertTrue(list.out().contains("export=\"disk\""), list.out());
            assertFalse(list.out().contains("fardisk"), "an export for other hosts is not even listed:\n" + list.out());
            Tools.Result far = Tools.run(Duration.ofSeconds(20), "nbdinfo", s.uri("fardisk"));
            assertNotEquals(0, far.exit(), "nbdinfo of an export not served to this host must fail");
            Tools.run(Duration.ofSeconds(20), "nbdinfo", s.uri("disk")).ok("nbdinfo of the open export");
            assertTrue(s.log().contains("is not served to this host"), s.log());
            assertEquals(0, s.stop());
        }
    }

    /** /proc/PID/status fields of the server: "Uid", "CapEff", ... */
    static String status(BridgefsProcess s, String field) throws Exception {
        for (String l : Files.readAllLines(Path.of("/proc/" + s.process.pid() + "/status"))) {
            if (l.startsWith(field + ":")) return l.substring(field.length() + 1).trim();
        }
        return null;
    }

    @Test
    void anOrdinaryUserServesAMappedExport() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "needs root to start the server as another user (CI runs as root)");
        Tools.require("setpriv", "diodls", "diodcat");
        Path share = nobodysDirectory("share");
        int port = BridgefsProcess.freePort();
        // passthrough cannot work without privilege: refused at start, in one line
        Tools.Result refused = Tools.run(dir, Duration.ofSeconds(60), BridgefsProcess.command(
                List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"), copyJar(),
                "serve", "--9p-listen", "127.0.0.1:" + port, "--9p-export", "p=" + share + ",security=passthrough"));
        assertEquals(1, refused.exit(), refused.out() + refused.err());
        List<String> lines = refused.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), "one clear line: " + refused.err());
        assertTrue(lines.get(0).contains("security=passthrough needs root"), lines.get(0));

        try (BridgefsProcess s = BridgefsProcess.startAsUser(dir, 65534, 65534, "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "m=" + share + ",security=mapped")) {
            assertEquals("65534\t65534\t65534\t65534", status(s, "Uid"));
            assertEquals("0000000000000000", status(s, "CapEff"));
            try (RawP9Client c = attach(port, "m", 0)) {
                create(c, "owned-by-root-in-guest", 04755, 0);
                c.ok(new Tmknod(c.tag(), 1, "null", S_IFCHR | 0666, 1, 3, 0), Rmknod.class);
                c.walk(1, 2, "owned-by-root-in-guest");
                c.ok(new Tlopen(c.tag(), 2, P9.O_WRONLY), Rlopen.class);
                c.write(2, 0, "written by a guest root\n");
                c.ok(new Tfsync(c.tag(), 2, 0), Rfsync.class);
                c.ok(new Tclunk(c.tag(), 2), Rclunk.class);
                Rgetattr a = getattr(c, "owned-by-root-in-guest");
                assertEquals(0, a.uid());
                assertEquals(S_IFREG | 04755, a.mode());
                assertEquals(S_IFCHR | 0666, getattr(c, "null").mode());
            }
            assertEquals(65534, hostUid(share.resolve("owned-by-root-in-guest")));
            assertEquals(0600, hostMode(share.resolve("owned-by-root-in-guest")) & 07777);
            assertEquals(65534, hostUid(share.resolve("null")));
            // diod's own clients against the unprivileged server
            Tools.Result ls = Tools.run(Duration.ofSeconds(20), "diodls", "-s", "127.0.0.1:" + port, "-a", "m", "/");
            ls.ok("diodls");
            assertTrue(ls.out().contains("owned-by-root-in-guest") && ls.out().contains("null"), ls.out());
            Tools.Result cat = Tools.run(Duration.ofSeconds(20), "diodcat", "-s", "127.0.0.1:" + port, "-a", "m", "owned-by-root-in-guest");
            cat.ok("diodcat");
            assertEquals("written by a guest root\n", cat.out());
            assertEquals(0, s.stop());
        }
    }

    /** A directory {@code name} owned by nobody below the test directory, which every user may now traverse. */
    Path nobodysDirectory(String name) throws Exception {
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path d = Files.createDirectories(dir.resolve(name));
        Tools.run(Duration.ofSeconds(5), "chown", "65534:65534", d.toString()).ok("chown");
        return d;
    }

    Path copyJar() throws Exception {
        Path jar = dir.resolve("bridgefs.jar");
        if (!Files.exists(jar)) Files.copy(BridgefsProcess.jar(), jar);
        return jar;
    }

    @Test
    void dropsToAUserKeepingOnlyWhatTheModelsNeed() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "--user needs root (CI runs as root)");
        Path mapped = nobodysDirectory("mapped");
        Path shared = Files.createDirectories(dir.resolve("shared"));
        Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
        Files.writeString(shared.resolve("secret"), "root only");
        Files.setPosixFilePermissions(shared.resolve("secret"), PosixFilePermissions.fromString("rw-------"));
        Path jar = copyJar();
        int port = BridgefsProcess.freePort();
        // mapped only: no capability at all
        try (BridgefsProcess s = BridgefsProcess.start(List.of(), jar, dir, "--user", "nobody", "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "m=" + mapped + ",security=mapped")) {
            assertEquals("65534\t65534\t65534\t65534", status(s, "Uid"));
            assertEquals("0000000000000000", status(s, "CapEff"));
            assertEquals("0000000000000000", status(s, "CapPrm"));
            assertTrue(s.stdout.toString().contains("capabilities: none"), s.stdout.toString());
            try (RawP9Client c = attach(port, "m", 0)) {
                create(c, "f", 0644, 0);
            }
            assertEquals(65534, hostUid(mapped.resolve("f")));
            assertEquals(0, s.stop());
        }
        // passthrough: CAP_SETUID/SETGID and the file capabilities, and still only what each user may do
        try (BridgefsProcess s = BridgefsProcess.start(List.of(), jar, dir, "--user", "nobody", "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "p=" + shared + ",security=passthrough")) {
            assertEquals("65534\t65534\t65534\t65534", status(s, "Uid"));
            long eff = Long.parseLong(status(s, "CapEff"), 16);
            assertEquals(0xdfL, eff, "CAP_CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID SETGID SETUID, nothing else: " + Long.toHexString(eff));
            try (RawP9Client u = attach(port, "p", 1000)) {
                u.walk(1, 2, "secret");
                assertEquals(P9.EACCES, u.error(new Tlopen(u.tag(), 2, P9.O_RDONLY)), "uid 1000 must not read a 0600 root file");
                u.ok(new Tclunk(u.tag(), 2), Rclunk.class);
                create(u, "mine", 0644, 1000);
            }
            assertEquals(1000, hostUid(shared.resolve("mine")));
            try (RawP9Client r = attach(port, "p", 0)) {
                r.walk(1, 2, "secret");
                r.ok(new Tlopen(r.tag(), 2, P9.O_RDONLY), Rlopen.class);
                assertEquals("root only", new String(r.readAll(2, 4096), StandardCharsets.UTF_8));
                r.ok(new Tclunk(r.tag(), 2), Rclunk.class);
                create(r, "roots", 0600, 0);
            }
            assertEquals(0, hostUid(shared.resolve("roots")), "guest root acts as root (root=allow) through the kept capabilities");
            assertEquals(0, s.stop());
        }
    }

    /** A free TCP port below 1024 on loopback (only root may bind it). */
    static int freeLowPort() throws Exception {
        for (int p = 1023; p > 600; p--) {
            try (java.net.ServerSocket ss = new java.net.ServerSocket(p, 1, java.net.InetAddress.getLoopbackAddress())) {
                return p;
            } catch (java.io.IOException busy) {
                // taken: the next one
            }
        }
        throw new AssertionError("no free port below 1024");
    }

    @Test
    void bindsAndOpensAsRootThenServesAsTheUser() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "--user needs root (CI runs as root)");
        Tools.require("nbdinfo", "nbdcopy", "qemu-io");
        Path priv = Files.createDirectories(dir.resolve("private"));
        Files.setPosixFilePermissions(priv, PosixFilePermissions.fromString("rwx------"));
        Path img = priv.resolve("disk.img");
        Tools.sparseImage(img, 4 << 20, 11, 0, 4 << 20);
        Files.setPosixFilePermissions(img, PosixFilePermissions.fromString("rw-------"));
        byte[] before = Files.readAllBytes(img);
        Path mapped = nobodysDirectory("mapped");
        int low = freeLowPort();
        try (BridgefsProcess s = BridgefsProcess.start(List.of(), copyJar(), dir, "--user", "nobody", "--nbd-listen", "127.0.0.1:" + low,
                "--nbd-export", "d=" + img, "--9p-listen", "127.0.0.1:" + BridgefsProcess.freePort(), "--9p-export", "m=" + mapped + ",security=mapped")) {
            assertEquals("65534\t65534\t65534\t65534", status(s, "Uid"));
            assertEquals("0000000000000000", status(s, "CapPrm"), "a port below 1024 and a root-only image, yet no capability kept");
            String uri = "nbd://127.0.0.1:" + low + "/d";
            Tools.Result info = Tools.run(Duration.ofSeconds(20), "nbdinfo", "--size", uri);
            info.ok("nbdinfo");
            assertEquals(String.valueOf(4 << 20), info.out().trim());
            Path copy = dir.resolve("copy.img");
            Tools.run(Duration.ofSeconds(60), "nbdcopy", uri, copy.toString()).ok("nbdcopy out");
            assertArrayEquals(before, Files.readAllBytes(copy), "the root-only image read through the inherited descriptor");
            Tools.run(Duration.ofSeconds(60), "qemu-io", "-f", "raw", "-c", "write -P 0x5a 4096 4096", "-c", "flush", uri).ok("qemu-io write");
            byte[] after = Files.readAllBytes(img);
            for (int i = 4096; i < 8192; i++) assertEquals(0x5a, after[i] & 0xff, "written through the inherited descriptor at " + i);
            assertEquals(0, hostUid(img), "the image stays root's");
            assertEquals(0, s.stop());
        }
    }
}
