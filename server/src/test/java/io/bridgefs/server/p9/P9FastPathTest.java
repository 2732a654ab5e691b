package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;
import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Codec;
import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.config.P9Security;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.bridgefs.server.net.ServerIdentity;
import io.bridgefs.server.posix.Credentials;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Requests that cannot block are answered on the network thread (issue 11): a read whose pages are all
 * resident and a clunk of a fid holding nothing but its descriptor never reach the executor; a read that
 * misses and a clunk of an open file do. The executor here runs nothing until told to.
 */
class P9FastPathTest {
    /** An executor that only queues: what it holds has not run. */
    static final class HeldExecutor extends AbstractExecutorService {
        final ArrayDeque<Runnable> queued = new ArrayDeque<>();
        public void execute(Runnable r) { queued.add(r); }
        void runAll() { while (!queued.isEmpty()) queued.poll().run(); }
        /** 9P requests queued (a directory's read-ahead is queued too, and is no request). */
        long requests() { return queued.stream().filter(r -> r instanceof io.bridgefs.server.posix.ServerThreads.UserRequest).count(); }
        public void shutdown() {}
        public List<Runnable> shutdownNow() { return List.of(); }
        public boolean isShutdown() { return false; }
        public boolean isTerminated() { return false; }
        public boolean awaitTermination(long t, TimeUnit u) { return true; }
    }

    final HeldExecutor executor = new HeldExecutor();
    EmbeddedChannel ch;
    int tag = 1;
    PageCache cache;
    P9ServerContext ctx;
    P9Session session;

    /** A session over {@code root} (export "s", 1 MiB cache, this test's executor), versioned, root attached as fid 0. */
    void attach(Path root) throws Exception {
        attach(root, P9Security.NONE, 0);
    }

    /**
     * {@link #attach(Path)} over a directory "d" holding a 10-byte file "f" (both in the dentry cache, so
     * walks to them are answered on the network thread), with "d" walked to fid 1.
     */
    void attachDirWithFile(Path root) throws Exception {
        Files.createDirectories(root.resolve("d"));
        Files.write(root.resolve("d/f"), new byte[10]);
        attach(root);
        Files.exists(root.resolve("d/f"));
        fastWalk(0, 1, "d");
    }

    /** {@link #attach(Path)}, attaching as {@code uid} to an export under {@code security}. */
    void attach(Path root, P9Security security, int uid) throws Exception {
        P9Export e = new P9Export("s", root.toRealPath(), false, -1, -1, false, new IoMetrics(new MetricRegistry(), "9p", "s" + System.nanoTime()),
                security, false, List.of());
        cache = new PageCache(1 << 20, CacheMode.WRITEBACK);
        ctx = new P9ServerContext(List.of(e), executor, cache, 1 << 20, 4);
        P9FrameDecoder decoder = new P9FrameDecoder(8192);
        ch = new EmbeddedChannel();
        ch.pipeline().addLast(ServerIdentity.NAME, ServerIdentity.BUT_REQUESTS)       // as Transport puts it for P9Listener
                .addLast("9p-decoder", decoder).addLast("9p-session", session = new P9Session(ctx, decoder));
        assertInstanceOf(Rversion.class, call(new Tversion(P9.NOTAG, 65536, P9.VERSION)));
        assertInstanceOf(Rattach.class, call(new Tattach(tag++, 0, P9.NOFID, uid == 0 ? "root" : "u" + uid, "s", uid)));
    }

    /**
     * This test's executor runs requests on the test thread, which a passthrough request leaves acting as
     * its user (as it leaves an I/O thread): the server again for whatever runs next, also after a failure.
     */
    @AfterEach
    void serverAgain() {
        io.bridgefs.server.posix.Credentials.serverAgain();
    }

    /** Clunks fid 0, ends the connection, and checks it left no fid and no pinned page behind. */
    void detachAndCheck() throws Exception {
        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 0)));
        ch.finishAndReleaseAll();
        assertEquals(0, ctx.fids());
        cache.quiesce();      // background read-ahead holds pins while it runs
        assertEquals(0, cache.snapshot().pinnedPages());
        ctx.releaseAll();
    }

    void send(P9Message m) {
        ByteBuf b = Unpooled.buffer();
        P9Codec.encode(m, b);
        ch.writeInbound(b);
        ch.runPendingTasks();
    }

    /** The next reply, or null if none was written. */
    P9Message reply() throws Exception {
        ByteBuf b = ch.readOutbound();
        if (b == null) return null;
        try {
            int size = b.readIntLE();
            int type = b.readUnsignedByte();
            int t = b.readUnsignedShortLE();
            return P9Codec.decode(type, t, b.readSlice(size - 7));
        } finally {
            b.release();
        }
    }

    /** Sends, lets the executor run, returns the reply. */
    P9Message call(P9Message m) throws Exception {
        send(m);
        executor.runAll();
        ch.runPendingTasks();
        return reply();
    }

    @Test
    void residentReadsAndIdleClunksNeverReachTheExecutor(@TempDir Path root) throws Exception {
        byte[] data = new byte[12_000];
        Arrays.fill(data, (byte) 7);
        Files.write(root.resolve("f"), data);
        attach(root);
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 1, List.of("f"))));
        assertInstanceOf(Rlopen.class, call(new Tlopen(tag++, 1, P9.O_RDONLY)));

        // a miss: nothing is answered until the executor runs it
        send(new Tread(tag++, 1, 0, 8192));
        assertNull(reply(), "a read that misses waits for the executor");
        assertEquals(1, executor.requests());
        executor.runAll();
        ch.runPendingTasks();
        assertEquals(8192, ((Rread) reply()).data().readableBytes());
        cache.quiesce();

        // resident now: answered at once, the executor untouched
        send(new Tread(tag++, 1, 4096, 4096));
        assertEquals(0, executor.requests(), "a read of resident pages never reaches the executor");
        Rread r = (Rread) reply();
        assertNotNull(r, "answered on the network thread");
        byte[] got = new byte[r.data().readableBytes()];
        r.data().readBytes(got);
        assertArrayEquals(Arrays.copyOfRange(data, 4096, 8192), got);

        // an idle walked fid is clunked at once; the open one goes through the executor (it closes a file)
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 2, List.of("f"))));
        send(new Tclunk(tag++, 2));
        assertEquals(0, executor.requests());
        assertInstanceOf(Rclunk.class, reply());
        assertInstanceOf(Rclunk.class, viaExecutor(new Tclunk(tag++, 1), "clunking an open file waits for the executor"));
        detachAndCheck();
    }

    @Test
    void getattrIsAnsweredAtOnceUnlessOnlyAWriteBackOrRevalidationCanTell(@TempDir Path root) throws Exception {
        Files.write(root.resolve("f"), new byte[5000]);
        attach(root);
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 1, List.of("f"))));

        // this test's temporary directory is on a local file system: fstat of an open inode cannot wait
        send(new Tgetattr(tag++, 1, P9.GETATTR_BASIC));
        assertEquals(0, executor.requests(), "a getattr of an uncached file never reaches the executor");
        Rgetattr a = (Rgetattr) reply();
        assertEquals(5000, a.size());

        // dirty pages: only a write-back makes the host's size and mtime current, so the executor answers
        assertInstanceOf(Rlopen.class, call(new Tlopen(tag++, 1, P9.O_RDWR)));
        assertInstanceOf(Rwrite.class, call(new Twrite(tag++, 1, 6000, Unpooled.wrappedBuffer(new byte[100]))));
        send(new Tgetattr(tag++, 1, P9.GETATTR_BASIC));
        assertNull(reply(), "a getattr of a dirty file waits for the executor");
        executor.runAll();
        ch.runPendingTasks();
        Rgetattr slow = (Rgetattr) reply();
        assertEquals(6100, slow.size());

        // written back and unchanged on the host since: at once again, with the same qid version
        send(new Tgetattr(tag++, 1, P9.GETATTR_BASIC));
        assertEquals(0, executor.requests());
        Rgetattr fast = (Rgetattr) reply();
        assertEquals(6100, fast.size());
        assertEquals(slow.qid(), fast.qid(), "fast and slow paths report the same version");

        // changed by another host process: the executor revalidates, and the version moves
        Files.write(root.resolve("f"), new byte[7000]);
        send(new Tgetattr(tag++, 1, P9.GETATTR_BASIC));
        assertNull(reply(), "a file changed on the host is revalidated by the executor");
        executor.runAll();
        ch.runPendingTasks();
        Rgetattr changed = (Rgetattr) reply();
        assertEquals(7000, changed.size());
        assertNotEquals(fast.qid().version(), changed.qid().version());

        // an unknown fid is the executor's to refuse
        send(new Tgetattr(tag++, 99, P9.GETATTR_BASIC));
        assertNull(reply());
        executor.runAll();
        ch.runPendingTasks();
        assertEquals(P9.EBADF, ((Rlerror) reply()).ecode());

        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 1)));
        detachAndCheck();
    }

    @Test
    void writesThatNeedNoReadAreAnsweredAtOnceAndOnesIntoAPageNotInTheCacheAreNot(@TempDir Path root) throws Exception {
        Files.write(root.resolve("f"), new byte[8192]);
        attach(root);
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 1, List.of("f"))));
        assertInstanceOf(Rlopen.class, call(new Tlopen(tag++, 1, P9.O_RDWR)));

        // not resident yet: the executor fills the page around the write
        send(new Twrite(tag++, 1, 100, Unpooled.wrappedBuffer(new byte[] {1, 2, 3})));
        assertNull(reply(), "a write into a page not in the cache waits for the executor");
        executor.runAll();
        ch.runPendingTasks();
        assertEquals(3, ((Rwrite) reply()).count());
        cache.quiesce();

        // resident now (read-ahead may have brought the second page too: read it to be sure)
        assertInstanceOf(Rread.class, call(new Tread(tag++, 1, 4096, 4096)));
        send(new Twrite(tag++, 1, 4000, Unpooled.wrappedBuffer(new byte[200])));
        assertEquals(0, executor.requests(), "a write into resident pages never reaches the executor");
        assertEquals(200, ((Rwrite) reply()).count());

        // past the end of the file: a resident page and a new one past the host file's end, no read needed
        send(new Twrite(tag++, 1, 8190, Unpooled.wrappedBuffer(new byte[] {9, 9, 9, 9})));
        assertEquals(0, executor.requests(), "a write that grows the file into new frames never reaches the executor");
        assertEquals(4, ((Rwrite) reply()).count());
        // a new file written from start to end in unaligned pieces: all at once
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 2, List.of())));
        assertInstanceOf(Rlcreate.class, call(new Tlcreate(tag++, 2, "g", P9.O_RDWR, 0644, 0)));
        byte[] g = new byte[5 * 4096 + 77];
        new java.util.Random(5).nextBytes(g);
        for (int at = 0; at < g.length; at += 3001) {
            int n = Math.min(3001, g.length - at);
            send(new Twrite(tag++, 2, at, Unpooled.wrappedBuffer(g, at, n)));
            assertEquals(0, executor.requests(), "writing a new file needs no read");
            assertEquals(n, ((Rwrite) reply()).count());
        }
        assertEquals(9L, ctx.requests.fastSnapshot().get("write"));

        assertInstanceOf(Rfsync.class, call(new Tfsync(tag++, 1, 0)));
        assertInstanceOf(Rfsync.class, call(new Tfsync(tag++, 2, 0)));
        byte[] host = Files.readAllBytes(root.resolve("f"));
        assertEquals(8194, host.length);
        assertArrayEquals(new byte[] {1, 2, 3}, Arrays.copyOfRange(host, 100, 103));
        assertEquals(9, host[8193]);
        assertArrayEquals(g, Files.readAllBytes(root.resolve("g")));
        for (int fid : new int[] {1, 2}) assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, fid)));
        detachAndCheck();
    }

    @Test
    void walksOfCachedNamesAreAnsweredAtOnceAndEverythingElseByTheExecutor(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("d/e"));
        Files.write(root.resolve("d/e/f"), new byte[10]);
        Files.createSymbolicLink(root.resolve("d/link"), Path.of("e"));
        attach(root);
        Files.readAllBytes(root.resolve("d/e/f"));          // every name on the way is in the kernel's dentry cache

        send(new Twalk(tag++, 0, 1, List.of("d", "e", "f")));
        assertEquals(0, executor.requests(), "a walk of cached names never reaches the executor");
        Rwalk fast = (Rwalk) reply();
        assertEquals(3, fast.qids().size());
        assertEquals(1L, ctx.requests.fastSnapshot().get("walk"), "counted as answered on the network thread");

        // the same walk by the executor (a walk onto its own fid always goes there): the same qids
        assertInstanceOf(Rwalk.class, call(new Twalk(tag++, 0, 2, List.of())));
        send(new Twalk(tag++, 2, 2, List.of("d", "e", "f")));
        assertNull(reply(), "a walk replacing its own fid waits for the executor");
        executor.runAll();
        ch.runPendingTasks();
        assertEquals(fast.qids(), ((Rwalk) reply()).qids(), "fast and slow walks give the same qids");

        // the walked fid is a working fid: its attributes are the file's
        assertEquals(10, ((Rgetattr) call(new Tgetattr(tag++, 1, P9.GETATTR_BASIC))).size());

        // a missing name, "..", a walk through a symlink or a file: the executor answers, as before
        for (List<String> names : List.of(List.of("d", "nope"), List.of("d", ".."), List.of("d", "link", "f"), List.of("d", "e", "f", "g"))) {
            send(new Twalk(tag++, 0, 3, names));
            assertNull(reply(), names + " waits for the executor");
            executor.runAll();
            ch.runPendingTasks();
            P9Message r = reply();
            if (names.get(1).equals("..")) {
                assertEquals(2, ((Rwalk) r).qids().size());
                assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 3)));
            } else if (names.get(1).equals("nope")) {
                assertEquals(1, ((Rwalk) r).qids().size(), "partial walk: the qids of the names found");
            } else {
                assertTrue(r instanceof Rwalk w && w.qids().size() < names.size() || r instanceof Rlerror, names + ": " + r);
            }
        }
        // a newfid in use is refused by the executor, not bound twice
        send(new Twalk(tag++, 0, 1, List.of("d")));
        assertNull(reply());
        executor.runAll();
        ch.runPendingTasks();
        assertEquals(P9.EBADF, ((Rlerror) reply()).ecode());
        assertEquals(1L, ctx.requests.fastSnapshot().get("walk"), "only the first walk was answered on the network thread");

        for (int fid : new int[] {1, 2}) assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, fid)));
        detachAndCheck();
    }

    @Test
    void aWalkUnderMappedGoesToTheExecutor(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("d"));
        attach(root, P9Security.MAPPED, 0);
        send(new Twalk(tag++, 0, 1, List.of("d")));
        assertNull(reply(), "mapped attributes are xattrs: the executor walks");
        executor.runAll();
        ch.runPendingTasks();
        assertInstanceOf(Rwalk.class, reply());
        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 1)));
        detachAndCheck();
    }

    /**
     * Passthrough as uid 1000: a walk it may make is answered at once with its credentials (which the
     * network thread keeps), one it may not (no search permission) is the executor's to refuse, and the
     * thread is the server again once the connection ends. Needs a root server (CI runs as root).
     */
    @Test
    void aWalkUnderPassthroughChecksTheUsersPermissionsOnTheNetworkThread(@TempDir Path root) throws Exception {
        if (!io.bridgefs.server.posix.SwitchesUsers.orSay("P9FastPathTest: passthrough as uid 1000")) return;
        var open = java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x");
        Files.setPosixFilePermissions(root, open);
        Files.setPosixFilePermissions(Files.createDirectories(root.resolve("d")), open);
        Files.write(root.resolve("d/f"), new byte[3]);
        Path secret = Files.createDirectories(root.resolve("secret"));
        Files.setPosixFilePermissions(secret, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        Files.write(secret.resolve("x"), new byte[1]);
        attach(root, P9Security.PASSTHROUGH, 1000);

        try {
            send(new Twalk(tag++, 0, 1, List.of("d", "f")));
            assertEquals(0, executor.requests(), "a walk uid 1000 may make is answered at once");
            assertEquals(2, ((Rwalk) reply()).qids().size());
            assertEquals(1000, Credentials.fsuid(), "the network thread (this one) keeps the walk's user");

            send(new Twalk(tag++, 0, 2, List.of("secret", "x")));
            assertNull(reply(), "no search permission in secret: the executor walks, as uid 1000");
            executor.runAll();
            ch.runPendingTasks();
            P9Message refused = reply();
            assertTrue(refused instanceof Rwalk w && w.qids().size() == 1, "uid 1000 gets no further than secret: " + refused);
            assertEquals(1L, ctx.requests.fastSnapshot().get("walk"));

            assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 1)));
            detachAndCheck();
            // the connection's end made the thread root again: it may create a file in secret
            assertEquals(0, Credentials.fsuid());
            Files.write(secret.resolve("made-after"), new byte[1]);
        } finally {
            Credentials.serverAgain();      // this thread runs the next tests
        }
    }

    /**
     * Users taking turns on one network thread (one connection, three attaches: uid 1000, uid 1001, root),
     * as an attacker would arrange them: each walk runs as its own user whoever walked before. uid 1000's
     * own 0700 directory is searched at once, and 1001 right after it is refused (the thread switched to
     * 1001 first); root's 0700 directory is searched by root at once and refused to 1000 right after.
     */
    @Test
    void usersTakingTurnsOnTheNetworkThreadEachWalkAsThemselves(@TempDir Path root) throws Exception {
        if (!io.bridgefs.server.posix.SwitchesUsers.orSay("P9FastPathTest: users taking turns")) return;
        attachThreeUsers(root);
        try {
            for (int round = 0; round < 3; round++) {
                assertEquals(2, fastWalk(0, 1, "mine", "f").qids().size(), "1000 searches its own directory");
                assertEquals(1000, Credentials.fsuid());
                assertEquals(1, slowWalk(10, 11, "mine", "f").qids().size(), "1001 right after 1000: no search permission in mine");
                assertEquals(2, fastWalk(0, 2, "mine", "f").qids().size(), "1000 again");
                assertEquals(2, fastWalk(20, 21, "rootonly", "g").qids().size(), "root searches its own directory");
                assertEquals(0, Credentials.fsuid(), "root's walk runs as the server");
                assertEquals(1, slowWalk(0, 3, "rootonly", "g").qids().size(), "1000 right after root: no search permission");
                for (int fid : new int[] {1, 2, 21}) assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, fid)));
            }
            assertEquals(9L, ctx.requests.fastSnapshot().get("walk"), "three walks a round answered on the network thread");
            fastWalk(0, 1, "mine", "f");
            assertEquals(1000, Credentials.fsuid());
            detachAndCheck();
            assertEquals(0, Credentials.fsuid(), "the connection's end makes the thread the server again");
        } finally {
            Credentials.serverAgain();
        }
    }

    /**
     * Tlopen of a directory for reading is answered on the network thread ("." is in the dentry cache);
     * the directory is then read as usual. A second open of the same fid, a file's open, and a directory
     * opened for writing or with O_TRUNC are the executor's, with the executor's answers.
     */
    @Test
    void directoriesOpenedForReadingAreAnsweredAtOnceAndOtherOpensByTheExecutor(@TempDir Path root) throws Exception {
        attachDirWithFile(root);
        send(new Tlopen(tag++, 1, P9.O_RDONLY | P9.O_DIRECTORY));
        assertEquals(0, executor.requests(), "a directory's open for reading never reaches the executor");
        assertInstanceOf(Rlopen.class, reply());
        assertEquals(1L, ctx.requests.fastSnapshot().get("lopen"), "counted as answered on the network thread");
        Rreaddir listing = (Rreaddir) call(new Treaddir(tag++, 1, 0, 8192));
        try {
            assertTrue(listing.data().toString(java.nio.charset.StandardCharsets.ISO_8859_1).contains("f"), "the opened directory reads");
            assertTrue(listing.data().readableBytes() > 0);
        } finally {
            listing.release();
        }
        assertEquals(P9.EBADF, slowOpen(1, P9.O_RDONLY), "already open: the executor refuses it");
        fastWalk(0, 2, "d", "f");
        assertEquals(0, slowOpen(2, P9.O_RDONLY), "a file's open goes through the shared cache: the executor's");
        fastWalk(0, 3, "d");
        assertEquals(P9.EISDIR, slowOpen(3, P9.O_RDWR), "a directory for writing");
        assertEquals(P9.EISDIR, slowOpen(3, P9.O_WRONLY));
        assertEquals(0, slowOpen(3, P9.O_RDONLY | P9.O_TRUNC), "O_TRUNC: the executor decides (on a directory it is ignored)");
        assertEquals(1L, ctx.requests.fastSnapshot().get("lopen"));
        for (int fid : new int[] {1, 3}) {
            send(new Tclunk(tag++, fid));
            assertEquals(0, executor.requests(), "an open directory's clunk closes its descriptor at once");
            assertInstanceOf(Rclunk.class, reply());
        }
        assertInstanceOf(Rclunk.class, viaExecutor(new Tclunk(tag++, 2), "an open file's clunk is the executor's (its last close may write back)"));
        assertEquals(0, ctx.opensInUse(), "every open's descriptor went back to the budget");
        detachAndCheck();
    }

    /**
     * Passthrough: a directory's open runs as the fid's user on the network thread, whoever opened one
     * just before. uid 1000 opens its own 0700 directory at once; root's 0700 directory, which uid 1000
     * may walk to but not read, is opened by root at once and refused to uid 1000 right after (the
     * executor answers EACCES), and 1001 is refused 1000's. Needs a root server (CI runs as root).
     */
    @Test
    void usersTakingTurnsOpeningDirectoriesOnTheNetworkThreadEachOpenAsThemselves(@TempDir Path root) throws Exception {
        if (!io.bridgefs.server.posix.SwitchesUsers.orSay("P9FastPathTest: users taking turns opening directories")) return;
        attachThreeUsers(root);
        try {
            for (int round = 0; round < 3; round++) {
                fastWalk(0, 1, "mine");
                fastWalk(10, 11, "mine");
                fastWalk(20, 21, "rootonly");
                fastWalk(0, 2, "rootonly");
                fastOpen(1);
                assertEquals(1000, Credentials.fsuid());
                assertEquals(13, slowOpen(11, P9.O_RDONLY), "1001 right after 1000: EACCES");
                fastOpen(21);
                assertEquals(0, Credentials.fsuid(), "root's open runs as the server");
                assertEquals(13, slowOpen(2, P9.O_RDONLY), "1000 right after root: EACCES");
                for (int fid : new int[] {1, 2, 11, 21}) assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, fid)));
            }
            assertEquals(6L, ctx.requests.fastSnapshot().get("lopen"), "two opens a round answered on the network thread");
            detachAndCheck();
        } finally {
            Credentials.serverAgain();
        }
    }

    /**
     * A fid taken out of the table while a request still uses it (a Treaddir running on an I/O thread,
     * here held as the fast path holds it) keeps its descriptors until that request ends: Tclunk, a walk
     * onto the fid, Tremove. Closed at once, the descriptor's number would be reused by the next open in
     * the server, and the running getdents64 would read that file's directory instead.
     */
    @Test
    void aFidLetGoWhileARequestUsesItKeepsItsDescriptorsUntilThatRequestEnds(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("d/e"));
        Files.createDirectories(root.resolve("gone"));
        attach(root);
        P9Ops ops = session.ops();
        Files.exists(root.resolve("d/e"));
        Files.exists(root.resolve("gone"));
        fastWalk(0, 1, "d");
        fastWalk(0, 2, "d");
        fastWalk(0, 3, "gone");
        for (int fid : new int[] {1, 2, 3}) fastOpen(fid);
        List<P9Message> letGo = List.of(new Tclunk(tag++, 1), new Twalk(tag++, 2, 2, List.of("e")), new Tremove(tag++, 3));
        for (P9Message m : letGo) {
            int fid = m instanceof Tclunk c ? c.fid() : m instanceof Twalk w ? w.fid() : ((Tremove) m).fid();
            Fid f = ops.openFidNow(fid);              // a request that uses it is running
            int dirFd = f.dirFd;
            int opens = ctx.opensInUse();
            P9Message r = viaExecutor(m, m + " is the executor's while the fid is in use");
            assertFalse(r instanceof Rlerror, m + ": " + r);
            assertEquals(dirFd, f.dirFd, m + ": the running request's descriptor stays");
            assertTrue(Files.isDirectory(Path.of("/proc/self/fd/" + dirFd)), m + ": and stays open");
            assertEquals(opens, ctx.opensInUse());
            ops.doneFast(f);                          // the request ends: now it goes
            assertEquals(-1, f.dirFd, m.toString());
            assertEquals(opens - 1, ctx.opensInUse(), m.toString());
        }
        assertFalse(Files.exists(root.resolve("gone")), "removed");
        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 2)));
        detachAndCheck();
    }

    /**
     * A directory opened on the network thread is read ahead by the I/O pool: its listing, and the empty
     * Treaddir that ends it, are answered on the network thread, with the entries the executor reads. A
     * directory larger than the read-ahead gives its first entries at once and the rest by the executor,
     * none twice. A Treaddir before the read-ahead ran, a rewind, and a clunk before it ran are the
     * executor's; the read-ahead's budget is back to 0 in the end.
     */
    @Test
    void aDirectoryOpenedAtOnceIsReadAheadAndListedAtOnce(@TempDir Path root) throws Exception {
        Path small = Files.createDirectories(root.resolve("small"));
        for (int i = 0; i < 50; i++) Files.createFile(small.resolve("f" + i));
        Path big = Files.createDirectories(root.resolve("big"));
        for (int i = 0; i < 1000; i++) Files.createFile(big.resolve("file-number-" + i));
        attach(root);
        Files.exists(small);
        Files.exists(big);

        fastWalk(0, 1, "small");
        fastOpen(1);
        assertEquals(1, executor.queued.size(), "the read-ahead is queued");
        executor.runAll();
        assertEquals(DirAhead.SIZE, ctx.aheadBytesHeld());
        List<String> names = new java.util.ArrayList<>();
        long end = fastReaddir(1, 0, 8192, names);
        assertEquals(52, names.size(), "every entry, . and .. too, in one reply: " + names);
        assertEquals(0, fastReaddir(1, end, 8192, names), "the end of the listing, at once");
        assertEquals(52, names.size());
        List<String> again = new java.util.ArrayList<>();
        entries((Rreaddir) viaExecutor(new Treaddir(tag++, 1, 0, 8192), "a rewind reads the directory again"), again);
        assertEquals(names.stream().sorted().toList(), again.stream().sorted().toList(), "the executor's entries are the same");
        assertEquals(0, ctx.aheadBytesHeld(), "a rewind lets the read-ahead go");

        fastWalk(0, 2, "big");
        fastOpen(2);
        executor.runAll();
        List<String> all = new java.util.ArrayList<>();
        long at = fastReaddir(2, 0, 65536, all);
        assertTrue(all.size() > 100 && all.size() < 1002, "the first " + DirAhead.SIZE + " bytes of entries: " + all.size());
        while (true) {
            int before = all.size();
            at = entries((Rreaddir) viaExecutor(new Treaddir(tag++, 2, at, 65536), "past the read-ahead: the executor"), all);
            if (all.size() == before) break;
        }
        assertEquals(1002, all.size());
        assertEquals(1002, new java.util.HashSet<>(all).size(), "none twice");

        fastWalk(0, 3, "small");
        fastOpen(3);
        List<String> early = new java.util.ArrayList<>();
        entries((Rreaddir) viaExecutor(new Treaddir(tag++, 3, 0, 8192), "the read-ahead has not run: the executor reads"), early);
        assertEquals(52, early.size());

        fastWalk(0, 4, "small");
        fastOpen(4);
        assertInstanceOf(Rclunk.class, viaExecutor(new Tclunk(tag++, 4), "the read-ahead still uses it: the executor clunks"));
        for (int fid : new int[] {1, 2, 3}) assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, fid)));
        assertEquals(0, ctx.aheadBytesHeld(), "every read-ahead let go");
        assertEquals(0, ctx.opensInUse());
        detachAndCheck();
    }

    /** A Treaddir answered on the network thread: its names are added to {@code names}; the last entry's offset. */
    long fastReaddir(int fid, long offset, int count, List<String> names) throws Exception {
        send(new Treaddir(tag++, fid, offset, count));
        assertEquals(0, executor.requests(), "readdir of fid " + fid + " at " + offset + " answered at once");
        return entries((Rreaddir) reply(), names);
    }

    /** Adds the names in a Rreaddir to {@code names} and releases it: the last entry's offset (0 if none). */
    static long entries(Rreaddir r, List<String> names) {
        ByteBuf d = r.data();
        long last = 0;
        try {
            while (d.isReadable()) {
                d.skipBytes(13);
                last = d.readLongLE();
                d.skipBytes(1);
                names.add(d.readCharSequence(d.readUnsignedShortLE(), java.nio.charset.StandardCharsets.UTF_8).toString());
            }
        } finally {
            r.release();
        }
        return last;
    }

    /**
     * Two Tlopens of one fid racing on two threads: while the first holds its descriptors (here taken as
     * the executor's open takes them), the second is refused EBADF, on the network thread's path and the
     * executor's, instead of setting a second descriptor or cached file over the first's, which nothing
     * would close. Once the first gives up, the fid opens.
     */
    @Test
    void aSecondOpenWhileTheFirstHoldsItsDescriptorsIsRefused(@TempDir Path root) throws Exception {
        attachDirWithFile(root);
        fastWalk(0, 2, "d", "f");
        P9Ops ops = session.ops();
        for (int fid : new int[] {1, 2}) {
            Fid f = ops.fidNow(fid);
            ops.holdOpen(f, 1);                     // the first open, running on another I/O thread
            assertEquals(P9.EBADF, slowOpen(fid, P9.O_RDONLY), "fid " + fid + ": the second open is refused");
            assertEquals(-1, f.dirFd);
            assertNull(f.file);
            ops.openFailed(f);                      // the first gives up
            ops.doneFast(f);
        }
        assertEquals(0, ctx.opensInUse());
        fastOpen(1);
        assertEquals(0, slowOpen(2, P9.O_RDONLY));
        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 1)));
        assertInstanceOf(Rclunk.class, call(new Tclunk(tag++, 2)));
        assertEquals(0, ctx.opensInUse());
        detachAndCheck();
    }

    /** A directory's Tlopen for reading answered on the network thread. */
    void fastOpen(int fid) throws Exception {
        send(new Tlopen(tag++, fid, P9.O_RDONLY));
        assertEquals(0, executor.requests(), "the open of fid " + fid + " answered at once");
        assertInstanceOf(Rlopen.class, reply());
    }

    /** A Tlopen the network thread declines: 0 if the executor opened it, else its errno. */
    int slowOpen(int fid, int flags) throws Exception {
        P9Message r = viaExecutor(new Tlopen(tag++, fid, flags), "the open of fid " + fid + " is the executor's");
        if (r instanceof Rlerror e) return e.ecode();
        assertInstanceOf(Rlopen.class, r);
        return 0;
    }

    /**
     * Passthrough over {@code root} (0755) holding {@code mine} (uid 1000's, 0700, with a file f) and
     * {@code rootonly} (root's, 0700, with a file g), their names in the kernel's dentry cache; attached
     * as uid 1000 (fid 0), uid 1001 (fid 10) and root (fid 20) on one connection.
     */
    void attachThreeUsers(Path root) throws Exception {
        var perms = (java.util.function.Function<String, java.util.Set<java.nio.file.attribute.PosixFilePermission>>)
                java.nio.file.attribute.PosixFilePermissions::fromString;
        Files.setPosixFilePermissions(root, perms.apply("rwxr-xr-x"));
        Path mine = Files.createDirectories(root.resolve("mine"));
        Files.write(mine.resolve("f"), new byte[1]);
        Files.setAttribute(mine, "unix:uid", 1000);
        Files.setPosixFilePermissions(mine, perms.apply("rwx------"));
        Path rootOnly = Files.createDirectories(root.resolve("rootonly"));
        Files.write(rootOnly.resolve("g"), new byte[1]);
        Files.setPosixFilePermissions(rootOnly, perms.apply("rwx------"));
        Files.exists(mine.resolve("f"));
        Files.exists(rootOnly.resolve("g"));
        attach(root, P9Security.PASSTHROUGH, 1000);
        assertInstanceOf(Rattach.class, call(new Tattach(tag++, 10, P9.NOFID, "u1001", "s", 1001)));
        assertInstanceOf(Rattach.class, call(new Tattach(tag++, 20, P9.NOFID, "root", "s", 0)));
    }

    /** A walk answered on the network thread (fails the test if it reaches the executor). */
    Rwalk fastWalk(int fid, int newfid, String... names) throws Exception {
        send(new Twalk(tag++, fid, newfid, List.of(names)));
        assertEquals(0, executor.requests(), List.of(names) + " from fid " + fid + " answered at once");
        return (Rwalk) reply();
    }

    /** A walk the network thread declines: the executor answers it. */
    Rwalk slowWalk(int fid, int newfid, String... names) throws Exception {
        return (Rwalk) viaExecutor(new Twalk(tag++, fid, newfid, List.of(names)), List.of(names) + " from fid " + fid + " is the executor's");
    }

    /** Sends a request the network thread must not answer ({@code why} if it does), runs the executor: the reply. */
    P9Message viaExecutor(P9Message m, String why) throws Exception {
        send(m);
        assertNull(reply(), why);
        executor.runAll();
        ch.runPendingTasks();
        return reply();
    }
}
