package io.bridgefs.server.p9;

import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A client that caches every dentry (cache=loose) holds more fids than the server may hold descriptors:
 * descriptors of idle fids are reclaimed and reopened by path, checked to be the same inode.
 */
class P9FidReclaimTest {
    int tag = 1;

    Object call(P9Ops ops, io.bridgefs.protocol.p9.P9Message m) throws IOException {
        try {
            return ops.handle(m, ByteBufAllocator.DEFAULT);
        } catch (P9Error e) {
            return new Rlerror(m.tag(), e.errno);
        }
    }

    @Test
    void manyMoreFidsThanDescriptors(@TempDir Path root) throws Exception {
        for (int i = 0; i < 200; i++) Files.writeString(root.resolve("f" + i), "file " + i);
        P9ServerContext ctx = context(root, 16);
        P9Ops ops = new P9Ops(ctx, this);
        ops.msize = 65536;
        assertInstanceOf(Rattach.class, call(ops, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        long openBefore = openDescriptors();
        for (int i = 0; i < 200; i++) {
            assertInstanceOf(Rwalk.class, call(ops, new Twalk(tag++, 0, 1000 + i, List.of("f" + i))), "walk " + i);
        }
        assertTrue(openDescriptors() - openBefore <= 16, "descriptors held stay within the budget: " + (openDescriptors() - openBefore));
        // every fid still refers to its own file
        for (int i = 0; i < 200; i += 7) {
            Rgetattr g = (Rgetattr) call(ops, new Tgetattr(tag++, 1000 + i, P9.GETATTR_BASIC));
            assertEquals(Files.getAttribute(root.resolve("f" + i), "unix:ino"), g.qid().path(), "fid of f" + i);
        }
        // an opened fid is never reclaimed; reading it after many other walks still works
        assertInstanceOf(Rlopen.class, call(ops, new Tlopen(tag++, 1003, P9.O_RDONLY)));
        for (int i = 0; i < 200; i++) call(ops, new Tgetattr(tag++, 1000 + i, P9.GETATTR_BASIC));
        io.netty.buffer.ByteBuf r = (io.netty.buffer.ByteBuf) call(ops, new Tread(tag++, 1003, 0, 100));   // an encoded Rread
        assertEquals("file 3", r.toString(11, r.getIntLE(7), java.nio.charset.StandardCharsets.UTF_8));
        r.release();
        // a reclaimed fid whose file was replaced by another one is stale, never the new file
        for (int i = 0; i < 200; i++) call(ops, new Tgetattr(tag++, 1000 + i, P9.GETATTR_BASIC));
        call(ops, new Tgetattr(tag++, 1050, P9.GETATTR_BASIC));       // 1050 is recent now; push it out again
        for (int i = 100; i < 200; i++) call(ops, new Tgetattr(tag++, 1000 + i, P9.GETATTR_BASIC));
        Files.delete(root.resolve("f50"));
        Files.writeString(root.resolve("f50"), "a different file");
        Object stale = call(ops, new Tgetattr(tag++, 1050, P9.GETATTR_BASIC));
        assertInstanceOf(Rlerror.class, stale);
        assertEquals(P9.ESTALE, ((Rlerror) stale).ecode());
        ops.clunkAll();
        ctx.releaseAll();          // the files kept open for the cache (f3 was opened), and the export root's descriptor
        assertEquals(openBefore - 2, openDescriptors(), "clunking every fid and releasing the context closes every descriptor (the attach fid's and the context's root)");
    }

    @Test
    void aReclaimedFidBelowARenamedDirectoryReopensTheRightFile(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("d/sub"));
        Files.writeString(root.resolve("d/sub/f"), "inside");
        for (int i = 0; i < 40; i++) Files.writeString(root.resolve("g" + i), "g");
        P9ServerContext ctx = context(root, 8);
        P9Ops ops = new P9Ops(ctx, this);
        ops.msize = 65536;
        assertInstanceOf(Rattach.class, call(ops, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        assertInstanceOf(Rwalk.class, call(ops, new Twalk(tag++, 0, 1, List.of("d", "sub", "f"))));
        assertInstanceOf(Rwalk.class, call(ops, new Twalk(tag++, 0, 2, List.of("d", "sub"))));
        // the directory is renamed by this connection
        assertInstanceOf(Rrenameat.class, call(ops, new Trenameat(tag++, 0, "d", 0, "e")));
        // push fids 1 and 2 out of their descriptors
        for (int i = 0; i < 40; i++) call(ops, new Twalk(tag++, 0, 100 + i, List.of("g" + i)));
        Object g = call(ops, new Tgetattr(tag++, 1, P9.GETATTR_BASIC));
        assertInstanceOf(Rgetattr.class, g, "a reclaimed fid below a renamed directory reopens by its new path");
        assertEquals(Files.getAttribute(root.resolve("e/sub/f"), "unix:ino"), ((Rgetattr) g).qid().path());
        // ".." from below the renamed directory leads to its new name
        Object up = call(ops, new Twalk(tag++, 2, 3, List.of("..")));
        assertInstanceOf(Rwalk.class, up);
        assertEquals(Files.getAttribute(root.resolve("e"), "unix:ino"), ((Rwalk) up).qids().get(0).path());
        ops.close();
        ctx.releaseAll();
    }

    /**
     * One connection's idle fids hold the whole descriptor budget (a guest with cache=loose, or a hostile
     * client): another connection below its share still attaches and walks, its descriptors given up by
     * the first, and the first's fids still lead to their files. Without the fair share every request of
     * the second needing a descriptor was refused with EMFILE.
     */
    @Test
    void oneConnectionsIdleFidsDoNotStarveAnother(@TempDir Path root) throws Exception {
        for (int i = 0; i < 100; i++) Files.writeString(root.resolve("f" + i), "file " + i);
        P9ServerContext ctx = context(root, 16);
        P9Ops hog = new P9Ops(ctx, "hog");
        P9Ops other = new P9Ops(ctx, "other");
        hog.msize = other.msize = 65536;
        assertInstanceOf(Rattach.class, call(hog, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        for (int i = 0; i < 100; i++) assertInstanceOf(Rwalk.class, call(hog, new Twalk(tag++, 0, 1000 + i, List.of("f" + i))));
        assertEquals(16, hog.descriptorsHeld(), "the first connection holds the whole budget");
        assertInstanceOf(Rattach.class, call(other, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)), "the second may attach");
        for (int i = 0; i < 30; i++) {
            assertInstanceOf(Rwalk.class, call(other, new Twalk(tag++, 0, 1000 + i, List.of("f" + (99 - i)))), "the second's walk " + i);
        }
        assertEquals(8, other.descriptorsHeld(), "the second holds its share, reclaiming its own past it");
        assertEquals(8, hog.descriptorsHeld(), "the first gave up what it held above its share");
        for (int i = 0; i < 100; i += 9) {
            Rgetattr g = (Rgetattr) call(hog, new Tgetattr(tag++, 1000 + i, P9.GETATTR_BASIC));
            assertEquals(Files.getAttribute(root.resolve("f" + i), "unix:ino"), g.qid().path(), "the first's fid of f" + i);
        }
        hog.close();
        other.close();
        ctx.releaseAll();
    }

    /**
     * An open holds descriptors of its own (a file's two, a directory's one), counted in a budget of
     * opens: a connection opening every file stops at its share once half is in use (EMFILE), so the
     * process's descriptor table never fills, and another connection still attaches, walks and opens.
     */
    @Test
    void opensCountInTheBudgetAndStopAtAConnectionsShare(@TempDir Path root) throws Exception {
        for (int i = 0; i < 100; i++) Files.writeString(root.resolve("f" + i), "file " + i);
        P9ServerContext ctx = context(root, 1000).withOpenBudget(60);
        P9Ops hog = new P9Ops(ctx, "hog");
        hog.msize = 65536;
        long before = openDescriptors();
        assertInstanceOf(Rattach.class, call(hog, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        int opened = 0;
        for (int i = 0; i < 100; i++) {
            assertInstanceOf(Rwalk.class, call(hog, new Twalk(tag++, 0, 1000 + i, List.of("f" + i))));
            Object r = call(hog, new Tlopen(tag++, 1000 + i, P9.O_RDONLY));
            if (r instanceof Rlerror e) {
                assertEquals(P9.EMFILE, e.ecode());
                break;
            }
            opened++;
        }
        assertEquals(15, opened, "a file's open takes two of the budget: its share of 60 (30) is 15 opens");
        assertTrue(openDescriptors() - before <= 60 + 16 + 8 * 2, "descriptors " + (openDescriptors() - before) + " (60 for opens, 16 fids, 8 files retained)");
        P9Ops other = new P9Ops(ctx, "other");
        other.msize = 65536;
        assertInstanceOf(Rattach.class, call(other, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        assertInstanceOf(Rwalk.class, call(other, new Twalk(tag++, 0, 1, List.of("f99"))));
        assertInstanceOf(Rlopen.class, call(other, new Tlopen(tag++, 1, P9.O_RDONLY)), "the other connection opens");
        io.netty.buffer.ByteBuf r = (io.netty.buffer.ByteBuf) call(other, new Tread(tag++, 1, 0, 100));
        assertEquals("file 99", r.toString(11, r.getIntLE(7), java.nio.charset.StandardCharsets.UTF_8));
        r.release();
        hog.close();
        other.close();
        ctx.releaseAll();
    }

    /**
     * Fids take heap and a connection may have 65,536: all connections together have at most --max-fids.
     * Past half of it a connection holding more than its share (the limit over the connections and one)
     * gets no more (EMFILE), so a client that walks without end leaves room for another; what a
     * connection held is given back when it ends.
     */
    @Test
    void theFidLimitOfAllConnectionsLeavesEachItsShare(@TempDir Path root) throws Exception {
        Files.writeString(root.resolve("f"), "x");
        P9ServerContext ctx = context(root, 1000).withFidLimit(100);
        P9Ops hog = new P9Ops(ctx, "hog");
        P9Ops other = new P9Ops(ctx, "other");
        hog.msize = other.msize = 65536;
        assertInstanceOf(Rattach.class, call(hog, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        int hogs = 1;
        while (call(hog, new Twalk(tag++, 0, 1000 + hogs, List.of("f"))) instanceof Rwalk) hogs++;
        assertEquals(50, hogs, "the first connection stops at half the limit, past its share (100 over 2 connections and one)");
        Object refused = call(hog, new Twalk(tag++, 0, 5000, List.of("f")));
        assertEquals(P9.EMFILE, ((Rlerror) refused).ecode());
        assertInstanceOf(Rattach.class, call(other, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)), "the second still may");
        int others = 1;
        while (call(other, new Twalk(tag++, 0, 1000 + others, List.of("f"))) instanceof Rwalk) others++;
        assertEquals(33, others, "the second gets its share (100 / 3)");
        assertEquals(83, ctx.fidTotal());
        P9Ops third = new P9Ops(ctx, "third");
        third.msize = 65536;
        assertInstanceOf(Rattach.class, call(third, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)), "a third still finds room");
        third.close();
        assertInstanceOf(Rclunk.class, call(hog, new Tclunk(tag++, 1001)));
        assertEquals(82, ctx.fidTotal(), "a clunk gives its fid back");
        hog.close();
        assertEquals(33, ctx.fidTotal(), "the end of a connection gives back all of its fids");
        other.close();
        assertEquals(0, ctx.fidTotal());
        ctx.releaseAll();
    }

    /** The heap sizing gives a fid {@link io.bridgefs.server.config.Limits#FID_HEAP_BYTES}: a fid with a path five names deep takes less. */
    @Test
    void aFidTakesNoMoreHeapThanTheSizingGivesIt(@TempDir Path root) throws Exception {
        Path deep = Files.createDirectories(root.resolve("usr/share/doc/some-package"));
        Files.writeString(deep.resolve("changelog.Debian.gz"), "x");
        P9ServerContext ctx = context(root, 1 << 20).withFidLimit(1 << 20);
        P9Ops ops = new P9Ops(ctx, this);
        ops.msize = 65536;
        assertInstanceOf(Rattach.class, call(ops, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        int n = 4000;
        call(ops, new Twalk(tag++, 0, 1, List.of("usr", "share", "doc", "some-package", "changelog.Debian.gz")));
        long before = io.bridgefs.server.HeapProbe.usedHeapAfterGc();
        for (int i = 0; i < n; i++) {
            // names decoded afresh for each walk, as from the wire
            List<String> names = java.util.stream.Stream.of("usr", "share", "doc", "some-package", "changelog.Debian.gz").map(String::new).toList();
            Twalk w = new Twalk(tag++ & 0x7fff, 0, 100 + i, names);
            assertInstanceOf(Rwalk.class, call(ops, w));
        }
        long perFid = (io.bridgefs.server.HeapProbe.usedHeapAfterGc() - before) / n;
        System.out.println("heap per fid five names deep: " + perFid + " bytes");
        assertTrue(perFid <= io.bridgefs.server.config.Limits.FID_HEAP_BYTES, "a fid takes " + perFid + " bytes");
        ops.close();
        ctx.releaseAll();
    }

    /**
     * An xattr fid holds up to 64 KiB (a value read, or a write declared before its data comes): all of
     * them together hold at most {@link P9ServerContext#XATTR_BUDGET}; past it Txattrcreate is refused
     * with ENOMEM before anything is allocated, and clunks and a connection's end give the bytes back.
     */
    @Test
    void xattrBuffersOfAllFidsAreBounded(@TempDir Path root) throws Exception {
        Files.writeString(root.resolve("f"), "x");
        P9ServerContext ctx = context(root, 1 << 16);
        P9Ops ops = new P9Ops(ctx, this);
        ops.msize = 65536;
        assertInstanceOf(Rattach.class, call(ops, new Tattach(tag++, 0, P9.NOFID, "", "r", 0)));
        int fits = (int) (P9ServerContext.XATTR_BUDGET / P9Ops.MAX_XATTR);
        for (int i = 0; i <= fits; i++) {
            assertInstanceOf(Rwalk.class, call(ops, new Twalk(tag++ & 0x7fff, 0, 100 + i, List.of("f"))));
            Object r = call(ops, new Txattrcreate(tag++ & 0x7fff, 100 + i, "user.big", P9Ops.MAX_XATTR, 0));
            if (i < fits) assertInstanceOf(Rxattrcreate.class, r, "xattr " + i);
            else assertEquals(P9.ENOMEM, ((Rlerror) r).ecode(), "past the budget");
        }
        assertEquals(P9ServerContext.XATTR_BUDGET, ctx.xattrBytesHeld());
        assertInstanceOf(Rlerror.class, call(ops, new Tclunk(tag++ & 0x7fff, 100)), "a clunk commits it: no data was written (EINVAL)");
        assertEquals(P9ServerContext.XATTR_BUDGET - P9Ops.MAX_XATTR, ctx.xattrBytesHeld(), "the clunk gave its bytes back");
        assertInstanceOf(Rxattrcreate.class, call(ops, new Txattrcreate(tag++ & 0x7fff, 100 + fits, "user.big", P9Ops.MAX_XATTR, 0)));
        ops.close();
        assertEquals(0, ctx.xattrBytesHeld(), "the end of the connection gives back every xattr buffer");
        ctx.releaseAll();
    }

    /** A server context with one export "r" of {@code root} and a descriptor budget of {@code budget}. */
    static P9ServerContext context(Path root, int budget) {
        P9Export e = new P9Export("r", root, false, -1, -1, false, new IoMetrics(new MetricRegistry(), "9p", "r" + System.nanoTime()));
        return new P9ServerContext(List.of(e), Executors.newSingleThreadExecutor(), new PageCache(1 << 20, CacheMode.WRITEBACK), 1 << 20, 8)
                .withDescriptorBudget(budget);
    }

    static long openDescriptors() throws IOException {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }
}
