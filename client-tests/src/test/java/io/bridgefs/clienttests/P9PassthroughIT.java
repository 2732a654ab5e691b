package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.P9Message.*;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code security=passthrough} (part of issue 9): each request runs with the attaching user's fsuid,
 * fsgid and groups, so the host's permission checks apply — tried on the wire as uid 1000 and as root,
 * with and without {@code root=squash}.
 */
class P9PassthroughIT {
    @TempDir
    Path dir;

    static int owner(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:uid", java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    /**
     * {@code dir/share}, writable by everyone, holding {@code secret} (0600, root's: "root only") and
     * {@code rootdir} (0755, root's); {@code dir} traversable by everyone.
     */
    static Path shareWithRootSecret(Path dir) throws Exception {
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setPosixFilePermissions(share, PosixFilePermissions.fromString("rwxrwxrwx"));
        Files.writeString(share.resolve("secret"), "root only");
        Files.setPosixFilePermissions(share.resolve("secret"), PosixFilePermissions.fromString("rw-------"));
        Files.setPosixFilePermissions(Files.createDirectories(share.resolve("rootdir")), PosixFilePermissions.fromString("rwxr-xr-x"));
        return share;
    }

    RawP9Client attach(int port, int uid) throws Exception {
        RawP9Client c = new RawP9Client(port);
        c.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
        c.ok(new Tattach(c.tag(), 1, P9.NOFID, "u" + uid, "share", uid), Rattach.class);
        return c;
    }

    @Test
    void requestsRunAsTheAttachingUser() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = shareWithRootSecret(dir);
        Files.writeString(share.resolve("readable"), "anyone may read");
        Files.setPosixFilePermissions(share.resolve("readable"), PosixFilePermissions.fromString("rw-r--r--"));
        Path rootDir = share.resolve("rootdir");
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "share=" + share + ",security=passthrough", "--9p-export", "squashed=" + share + ",security=passthrough,root=squash")) {
            assertTrue(s.stdout.toString().contains("security=passthrough"), s.stdout.toString());
            try (RawP9Client u = attach(port, 1000)) {
                // a 0600 root file: uid 1000 may walk to it but not open it
                u.walk(1, 2, "secret");
                assertEquals(13, u.error(new Tlopen(u.tag(), 2, P9.O_RDONLY)), "EACCES reading a 0600 root file");
                // a 0644 root file: read yes, write no, truncate no
                u.walk(1, 3, "readable");
                assertEquals(13, u.error(new Tlopen(u.tag(), 3, P9.O_RDWR)), "EACCES writing a 0644 root file");
                u.ok(new Tlopen(u.tag(), 3, P9.O_RDONLY), Rlopen.class);
                assertEquals("anyone may read", new String(u.readAll(3, 4096)));
                assertEquals(13, u.error(new Tsetattr(u.tag(), 3, P9.SETATTR_SIZE, 0, 0, 0, 0, 0, 0, 0, 0)), "EACCES truncating it");
                assertEquals(1, u.error(new Tsetattr(u.tag(), 3, P9.SETATTR_MODE, 0777, 0, 0, 0, 0, 0, 0, 0)), "EPERM chmod of another's file");
                // creating in a root 0755 directory is refused; in the 0777 one the file is the user's
                u.walk(1, 4, "rootdir");
                assertEquals(13, u.error(new Tlcreate(u.tag(), 4, "x", P9.O_RDWR, 0644, 1000)));
                u.walk(1, 5);
                u.ok(new Tlcreate(u.tag(), 5, "mine", P9.O_RDWR, 0644, 1000), Rlcreate.class);
                u.write(5, 0, "by 1000");
                u.ok(new Tfsync(u.tag(), 5, 0), Rfsync.class);      // write-back cache: make it reach the host file
                u.ok(new Tmkdir(u.tag(), 1, "mydir", 0755, 1000), Rmkdir.class);
            }
            assertEquals(1000, owner(share.resolve("mine")), "created as the attaching user");
            assertEquals(1000, owner(share.resolve("mydir")));
            assertEquals("by 1000", Files.readString(share.resolve("mine")));
            // guest root: allowed as root on 'share', squashed to nobody on 'squashed'
            try (RawP9Client r = attach(port, 0)) {
                r.walk(1, 2, "secret");
                r.ok(new Tlopen(r.tag(), 2, P9.O_RDONLY), Rlopen.class);
                assertEquals("root only", new String(r.readAll(2, 4096)));
            }
            try (RawP9Client r = new RawP9Client(port)) {
                r.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                r.ok(new Tattach(r.tag(), 1, P9.NOFID, "root", "squashed", 0), Rattach.class);
                r.walk(1, 2, "secret");
                assertEquals(13, r.error(new Tlopen(r.tag(), 2, P9.O_RDONLY)), "root squashed: EACCES on a 0600 root file");
                r.walk(1, 3);
                r.ok(new Tlcreate(r.tag(), 3, "fromroot", P9.O_RDWR, 0644, 0), Rlcreate.class);
            }
            assertEquals(65534, owner(share.resolve("fromroot")), "root=squash: created as nobody");
            assertEquals(0, s.stop());
        }
    }

    /**
     * Users taking turns on one I/O thread, which keeps the last 9P request's user for the next (a
     * switch there and back is eight system calls and two capsets): with {@code --io-threads 1} every
     * request the network thread does not answer runs on the same thread. 1001 right after 1000 may not
     * open 1000's 0600 file; root right after 1001 creates in its 0700 directory, the file root's; 1000
     * right after root may not; and an NBD TRIM right after 1000's request runs as the server: the
     * setuid image keeps its bit (a hole punched by an unprivileged writer clears it, as a write does).
     */
    @Test
    void usersTakingTurnsOnOneIoThreadEachAsThemselvesAndNbdAsTheServer() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Tools.require("qemu-io");
        Path share = shareWithRootSecret(dir);
        Path privateFile = Files.writeString(share.resolve("private1000"), "1000's");
        Files.setAttribute(privateFile, "unix:uid", 1000);
        Files.setPosixFilePermissions(privateFile, PosixFilePermissions.fromString("rw-------"));
        Path rootOnly = Files.createDirectories(share.resolve("rootonly"));
        Files.setPosixFilePermissions(rootOnly, PosixFilePermissions.fromString("rwx------"));
        Path disk = dir.resolve("setuid.img");
        Files.write(disk, new byte[1 << 20]);
        Files.setAttribute(disk, "unix:mode", 04755);
        int port = BridgefsProcess.freePort();
        int rounds = 20;
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share + ",security=passthrough",
                "--nbd-export", "disk=" + disk, "--io-threads", "1")) {
            try (RawP9Client c = new RawP9Client(port)) {
                c.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                int[] uids = {1000, 1001, 0};
                for (int i = 0; i < 3; i++) c.ok(new Tattach(c.tag(), 1 + i, P9.NOFID, "u" + uids[i], "share", uids[i]), Rattach.class);
                for (int round = 0; round < rounds; round++) {
                    c.walk(1, 10, "private1000");
                    c.ok(new Tlopen(c.tag(), 10, P9.O_RDONLY), Rlopen.class);             // 1000: its own file
                    c.walk(2, 11, "private1000");
                    assertEquals(13, c.error(new Tlopen(c.tag(), 11, P9.O_RDONLY)), "1001 right after 1000: EACCES");
                    c.walk(3, 12, "rootonly");
                    c.ok(new Tlcreate(c.tag(), 12, "r" + round, P9.O_RDWR, 0644, 0), Rlcreate.class);   // root right after 1001
                    c.walk(1, 13, "rootonly");
                    assertEquals(13, c.error(new Tlcreate(c.tag(), 13, "u" + round, P9.O_RDWR, 0644, 1000)), "1000 right after root: EACCES");
                    for (int fid = 10; fid <= 13; fid++) c.ok(new Tclunk(c.tag(), fid), Rclunk.class);
                }
                c.walk(1, 10, "private1000");
                c.ok(new Tlopen(c.tag(), 10, P9.O_RDONLY), Rlopen.class);                 // the I/O thread left as 1000
                QemuToolsIT.qemuIo(s.uri("disk"), "discard 0 64k", "flush").ok("qemu-io");
            }
            for (int round = 0; round < rounds; round++) {
                assertEquals(0, Files.getAttribute(rootOnly.resolve("r" + round), "unix:uid"), "root's file");
                assertFalse(Files.exists(rootOnly.resolve("u" + round)));
            }
            assertEquals(04755, (Integer) Files.getAttribute(disk, "unix:mode") & 07777, "the TRIM punched its hole as the server");
            assertTrue(s.metric("bridgefs_trim_ops_total{path=\"nbd\",export=\"disk\"}") >= 1);
            assertEquals(0, s.stop());
        }
    }

    /**
     * The two requests that act on a fid while taking it out of the table, Tremove and the Tclunk that
     * sets an xattr made by Txattrcreate, are the fid's user's too, as every other request is: uid 1000
     * may not remove a root file from a root 0755 directory, nor set a user.* xattr on a root 0644 file
     * or a trusted.* one (CAP_SYS_ADMIN) on its own; a squashed root neither. Done as the server, all
     * of them succeeded (the jar before this test: the file removed).
     */
    @Test
    void removeAndTheClunkThatSetsAnXattrAreTheUsers() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = shareWithRootSecret(dir);
        Path rootFile = Files.writeString(share.resolve("rootdir").resolve("keep"), "root's");
        Path readable = Files.writeString(share.resolve("readable"), "root's, 0644");
        Files.setPosixFilePermissions(readable, PosixFilePermissions.fromString("rw-r--r--"));
        python("import os, sys; os.setxattr(sys.argv[1], 'trusted.secret', b'root only')", readable);
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "share=" + share + ",security=passthrough", "--9p-export", "squashed=" + share + ",security=passthrough,root=squash")) {
            try (RawP9Client u = attach(port, 1000); RawP9Client q = new RawP9Client(port)) {
                q.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                q.ok(new Tattach(q.tag(), 1, P9.NOFID, "root", "squashed", 0), Rattach.class);
                for (RawP9Client c : List.of(u, q)) {
                    c.walk(1, 2, "rootdir", "keep");
                    assertEquals(13, c.error(new Tremove(c.tag(), 2)), "EACCES removing a root file from a root 0755 directory");
                    assertTrue(Files.exists(rootFile), "still there");
                    assertEquals(13, setXattr(c, "readable", "user.mark"), "EACCES: a user.* xattr on a file it may not write");
                    assertEquals(1, setXattr(c, "readable", "trusted.mark"), "EPERM: trusted.* needs CAP_SYS_ADMIN");
                    c.walk(1, 8, "readable");
                    assertEquals(61, c.error(new Txattrwalk(c.tag(), 8, 9, "trusted.secret")), "ENODATA: trusted.* is not the user's to read");
                    c.ok(new Tclunk(c.tag(), 8), Rclunk.class);
                }
                u.walk(1, 5);
                u.ok(new Tlcreate(u.tag(), 5, "own", P9.O_RDWR, 0644, 1000), Rlcreate.class);
                u.ok(new Tclunk(u.tag(), 5), Rclunk.class);
                assertEquals(0, setXattr(u, "own", "user.mark"), "on its own file: set");
                assertEquals(1, setXattr(u, "own", "trusted.mark"), "EPERM even on its own file");
                u.walk(1, 6, "own");
                u.ok(new Tremove(u.tag(), 6), Rremove.class);
                assertFalse(Files.exists(share.resolve("own")), "its own file in the 0777 share: removed");
            }
            try (RawP9Client r = attach(port, 0)) {       // root (not squashed) reads it: the refusal above was the user's
                r.walk(1, 8, "readable");
                assertEquals(9, r.ok(new Txattrwalk(r.tag(), 8, 9, "trusted.secret"), Rxattrwalk.class).size());
            }
            assertTrue(Files.exists(rootFile));
            assertEquals(List.of("trusted.secret"), xattrs(readable), "none set on the root file but the one the test put there");
            assertEquals(0, s.stop());
        }
    }

    /** Txattrcreate on a fresh fid for {@code name}, one byte written, Tclunk: 0, or the errno of the step that failed. */
    static int setXattr(RawP9Client c, String name, String attr) throws Exception {
        c.walk(1, 7, name);
        P9Message m = c.rpc(new Txattrcreate(c.tag(), 7, attr, 1, 0));
        if (m instanceof Rlerror e) {
            c.ok(new Tclunk(c.tag(), 7), Rclunk.class);
            return e.ecode();
        }
        c.write(7, 0, "x");
        return c.rpc(new Tclunk(c.tag(), 7)) instanceof Rlerror e ? e.ecode() : 0;
    }

    /** The names of a host file's xattrs that start with one of {@code prefixes} (user. and trusted. if none; listxattr as root). */
    static List<String> xattrs(Path p, String... prefixes) throws Exception {
        List<String> wanted = prefixes.length == 0 ? List.of("user.", "trusted.") : List.of(prefixes);
        String out = python("import os, sys; print(*os.listxattr(sys.argv[1]), sep='\\n')", p);
        return out.lines().filter(l -> wanted.stream().anyMatch(l::startsWith)).toList();
    }

    /** Runs a python3 program (test.sh installs python3) on {@code p} as root: its output. */
    static String python(String program, Path p) throws Exception {
        Process pr = new ProcessBuilder("python3", "-c", program, p.toString()).redirectErrorStream(true).start();
        String out = new String(pr.getInputStream().readAllBytes());
        assertEquals(0, pr.waitFor(), out);
        return out;
    }

    /**
     * Users taking turns on the server's network threads, as an attacker would arrange them (issue 11: a
     * walk answered there leaves its user's credentials on the thread for that user's next walk): one
     * connection attached as uid 1000, uid 1001 and root, and three connections of one user each (of
     * the two network threads, two of the three share one). Each walk gets its own user's permissions
     * whoever walked just before it on that thread: 1000's 0700 directory is searched by 1000 only,
     * root's by root only; and most of the walks that succeed were answered on the network thread, so
     * that is the path tried.
     */
    @Test
    void usersTakingTurnsEachWalkWithTheirOwnPermissions() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = shareWithRootSecret(dir);
        Path mine = Files.createDirectories(share.resolve("mine"));
        Files.writeString(mine.resolve("f"), "1000's");
        Files.setAttribute(mine, "unix:uid", 1000);
        Files.setPosixFilePermissions(mine, PosixFilePermissions.fromString("rwx------"));
        Path rootOnly = Files.createDirectories(share.resolve("rootonly"));
        Files.writeString(rootOnly.resolve("g"), "root's");
        Files.setPosixFilePermissions(rootOnly, PosixFilePermissions.fromString("rwx------"));
        int port = BridgefsProcess.freePort();
        int rounds = 100;
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share + ",security=passthrough")) {
            try (RawP9Client one = new RawP9Client(port); RawP9Client a = attach(port, 1000); RawP9Client b = attach(port, 1001);
                    RawP9Client r = attach(port, 0)) {
                one.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                int[] uids = {1000, 1001, 0};
                for (int i = 0; i < 3; i++) one.ok(new Tattach(one.tag(), 1 + i, P9.NOFID, "u" + uids[i], "share", uids[i]), Rattach.class);
                for (int round = 0; round < rounds; round++) {
                    // one connection, users in turn: 1000, 1001, root, 1000
                    searches(one, 1, "mine", "f");
                    refused(one, 2, "mine", "f");
                    searches(one, 3, "rootonly", "g");
                    refused(one, 1, "rootonly", "g");
                    // a connection per user, in the same turns
                    searches(a, 1, "mine", "f");
                    refused(b, 1, "mine", "f");
                    searches(r, 1, "rootonly", "g");
                    refused(a, 1, "rootonly", "g");
                }
                // a lookup the user may make, then another user's open of what it found: still the host's checks
                one.walk(1, 20, "mine", "f");
                one.ok(new Tlopen(one.tag(), 20, P9.O_RDONLY), Rlopen.class);
                assertEquals("1000's", new String(one.readAll(20, 4096)));
                one.walk(2, 21, "secret");
                assertEquals(13, one.error(new Tlopen(one.tag(), 21, P9.O_RDONLY)), "1001 right after 1000: EACCES on a 0600 root file");
            }
            long fast = s.metric("bridgefs_9p_requests_fast_total{type=\"walk\"}");
            assertTrue(fast >= rounds * 4 / 2, "most of the " + rounds * 4 + " walks that succeed answered on the network thread: " + fast);
            assertEquals(0, s.stop());
        }
    }

    /**
     * The I/O threads start as the server, whoever's request started them. A pool's worker is started by
     * the thread that submits to it, and Linux gives a new thread its creator's credentials: here the
     * network thread has just answered uid 1000's walk (keeping 1000's credentials) when it hands root's
     * create to the executor, which starts a new I/O thread for it (64 of them, so each round starts one).
     * Root's creates in its 0700 directory must all succeed, each file root's: an I/O thread that inherited
     * uid 1000 fails them with EACCES (the jar before this test: the first round).
     */
    @Test
    void rootsRequestsRightAfterAUsersWalkRunAsRootOnNewIoThreads() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = shareWithRootSecret(dir);
        Path mine = Files.createDirectories(share.resolve("mine"));
        Files.setAttribute(mine, "unix:uid", 1000);
        Path rootOnly = Files.createDirectories(share.resolve("rootonly"));
        Files.setPosixFilePermissions(rootOnly, PosixFilePermissions.fromString("rwx------"));
        int port = BridgefsProcess.freePort();
        int rounds = 40;
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share + ",security=passthrough",
                "--io-threads", "64")) {
            try (RawP9Client c = new RawP9Client(port)) {
                c.ok(new Tversion(P9.NOTAG, 8192, P9.VERSION), Rversion.class);
                c.ok(new Tattach(c.tag(), 1, P9.NOFID, "root", "share", 0), Rattach.class);
                c.ok(new Tattach(c.tag(), 2, P9.NOFID, "u1000", "share", 1000), Rattach.class);
                searches(c, 2, "mine");              // from now on in the kernel's dentry cache: answered on the network thread
                c.walk(1, 10, "rootonly");
                for (int round = 0; round < rounds; round++) {
                    c.walk(10, 11);                  // root's fid for the create (a clone)
                    searches(c, 2, "mine");          // 1000's walk: the network thread now holds uid 1000
                    c.ok(new Tlcreate(c.tag(), 11, "made-" + round, P9.O_RDWR, 0644, 0), Rlcreate.class);
                    c.ok(new Tclunk(c.tag(), 11), Rclunk.class);
                }
            }
            for (int round = 0; round < rounds; round++) {
                assertEquals(0, Files.getAttribute(rootOnly.resolve("made-" + round), "unix:uid"), "made by root's request: root's file");
            }
            long fast = s.metric("bridgefs_9p_requests_fast_total{type=\"walk\"}");
            assertTrue(fast >= rounds, "1000's walks answered on the network thread (so it held 1000): " + fast);
            assertEquals(0, s.stop());
        }
    }

    /**
     * Write-back is the server's work whoever's request does it: root writes into a setuid root program
     * (the cache holds the pages dirty), then uid 1000, who may only read it, fsyncs it; the pages reach
     * the host file and its setuid bit stays (written back as uid 1000, the kernel would clear it, as it
     * does for an unprivileged writer).
     */
    @Test
    void aUsersFsyncWritesAnothersPagesBackAsTheServer() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = shareWithRootSecret(dir);
        Path tool = share.resolve("tool");
        Files.write(tool, new byte[8192]);
        Files.setAttribute(tool, "unix:mode", 04755);
        int port = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "share=" + share + ",security=passthrough",
                "--writeback-interval", "0")) {
            try (RawP9Client r = attach(port, 0); RawP9Client u = attach(port, 1000)) {
                r.walk(1, 2, "tool");
                r.ok(new Tlopen(r.tag(), 2, P9.O_RDWR), Rlopen.class);
                r.write(2, 4096, "patched by root");
                u.walk(1, 2, "tool");
                u.ok(new Tlopen(u.tag(), 2, P9.O_RDONLY), Rlopen.class);
                u.ok(new Tfsync(u.tag(), 2, 0), Rfsync.class);
                assertEquals("patched by root", new String(Files.readAllBytes(tool), 4096, 15), "on the host after 1000's fsync");
            }
            assertEquals(04755, (Integer) Files.getAttribute(tool, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS) & 07777,
                    "setuid kept: the pages were written back as the server");
            assertEquals(0, s.stop());
        }
    }

    /** A walk from {@code fid} to {@code names} that succeeds, and the clunk of what it made. */
    static void searches(RawP9Client c, int fid, String... names) throws Exception {
        assertEquals(names.length, c.walk(fid, 99, names).qids().size());
        c.ok(new Tclunk(c.tag(), 99), Rclunk.class);
    }

    /** A walk from {@code fid} that gets no further than the directory it may not search. */
    static void refused(RawP9Client c, int fid, String... names) throws Exception {
        P9Message m = c.rpc(new Twalk(c.tag(), fid, 98, List.of(names)));
        assertTrue(m instanceof Rwalk w && w.qids().size() == names.length - 1 || m instanceof Rlerror e && e.ecode() == 13,
                "no search permission in " + names[0] + " for fid " + fid + ": " + m);
    }
}
