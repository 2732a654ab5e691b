package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * Write-behind ({@link Flusher}'s class notes): a file written sequentially is written back behind its
 * writer once {@code --write-behind} of it is dirty, far below the background share; random writes, and
 * a writer rewriting what the flusher wrote, are left to the thresholds.
 */
class WriteBehindTest {
    static final int P = PageCache.PAGE_SIZE;
    static final int FRAMES = 16384;                            // 64 MiB: a quarter is 4096 pages
    static final long BEHIND = 1 << 20;                         // 256 pages

    static PageCache cache(long behind) {
        PageCache cache = new PageCache((long) FRAMES * P, CacheMode.WRITEBACK, DedupMode.OFF, PageCache.AUTO, 75);
        cache.startBackgroundWriteback(0, behind);
        return cache;
    }

    @Test
    void aSequentialWriterIsWrittenBackBehindItsWrites() throws Exception {
        PageCache cache = cache(BEHIND);
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(9, 1), store, false);
        write(f, 0, 2048, 64, 1);                               // 8 MiB in 256 KiB writes: a stream
        awaitDirtyBelow(cache, 256);
        CacheStats s = cache.snapshot();
        assertTrue(s.writebackBytes() >= (2048L - 256) * P, "written back behind the writer: " + s.writebackBytes());
        assertEquals(0, s.writebackRewrittenBytes());
        f.flush();
        ByteBuffer held = ByteBuffer.wrap(store.contents());
        for (int i = 0; i < 2048; i++) assertEquals(1, held.getInt(i * P), "page " + i);
        f.close();
        cache.close();
    }

    @Test
    void writesArrivingSlightlyOutOfOrderAreStillAStream() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 2), new MemStore(0), false);
        for (int i = 0; i < 2048; i += 128) {                  // 256 KiB writes, each pair swapped
            write(f, i + 64, 64, 64, 1);
            write(f, i, 64, 64, 1);
        }
        awaitDirtyBelow(cache, 256);
        f.close();
        cache.close();
    }

    @Test
    void randomWritesAreLeftToTheThresholds() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 3), new MemStore(0), false);
        java.util.List<Integer> order = new java.util.ArrayList<>();
        for (int i = 0; i < 2048; i++) order.add(i);
        java.util.Collections.shuffle(order, new java.util.Random(11));
        for (int page : order) write(f, page, 1, 1, 1);
        Thread.sleep(300);                                      // time for the flusher to run, which it must not
        assertEquals(0, cache.snapshot().writebackBytes(), "no stream: nothing written back below the background share");
        assertEquals(2048L * P, cache.snapshot().dirtyBytes());
        f.close();
        cache.close();
    }

    @Test
    void offWritesNothingBehind() throws Exception {
        PageCache cache = cache(0);
        CachedFile f = cache.open(new FileKey(9, 4), new MemStore(0), false);
        write(f, 0, 2048, 64, 1);
        Thread.sleep(300);
        assertEquals(0, cache.snapshot().writebackBytes());
        assertEquals(2048L * P, cache.snapshot().dirtyBytes());
        f.close();
        cache.close();
    }

    /** With auto, pages written behind and written again raise the share: write-behind stops until evictions bring it down. */
    @Test
    void aWriterRewritingWhatWasWrittenBehindStopsIt() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 5), new MemStore(0), false);
        write(f, 0, 2048, 64, 1);
        awaitDirtyBelow(cache, 256);
        write(f, 0, 512, 64, 2);                                // written behind, now written again
        CacheStats s = cache.snapshot();
        assertEquals(512L * P, s.writebackRewrittenBytes());
        assertTrue(s.dirtyBackgroundBytes() > (long) FRAMES / 4 * P, "the share rose: " + s.dirtyBackgroundBytes() / P);
        long before = s.writebackBytes();
        write(f, 2048, 2048, 64, 3);                            // a new stream
        Thread.sleep(300);
        assertEquals(before, cache.snapshot().writebackBytes(), "nothing written behind while the share is raised");
        f.flush();
        assertEquals(0, cache.snapshot().dirtyBytes());
        f.close();
        cache.close();
    }

    private static void write(CachedFile f, int from, int pages, int per, int value) throws Exception {
        for (int i = from; i < from + pages; i += per) {
            ByteBuffer b = ByteBuffer.allocate(per * P);
            for (int k = 0; k < per; k++) b.putInt(k * P, value);
            f.write(IoPath.NBD, (long) i * P, new ByteBuffer[] {b}, false);
        }
    }

    private static void awaitDirtyBelow(PageCache cache, int pages) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (cache.snapshot().dirtyBytes() >= (long) pages * P && System.nanoTime() < deadline) Thread.sleep(5);
        assertTrue(cache.snapshot().dirtyBytes() < (long) pages * P, "dirty: " + cache.snapshot().dirtyBytes() / P + " pages");
    }
}
