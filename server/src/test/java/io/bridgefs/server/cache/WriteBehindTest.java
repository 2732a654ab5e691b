package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * Write-behind ({@link Flusher}'s class notes): a file written sequentially into new pages is written
 * back behind its writer once {@code --write-behind} of it is dirty, far below the background share;
 * random writes, and a writer going over pages the cache holds, are left to the thresholds.
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
        assertNotNull(f.streamEnds);
        f.close();
        assertNull(f.streamEnds, "a closed file kept for its pages keeps no write streams");
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

    /** Four writers each streaming through its own region, their writes interleaved (nbdcopy's connections): four streams. */
    @Test
    void severalStreamsAtOnceAreEachFollowed() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 7), new MemStore(0), false);
        for (int i = 0; i < 512; i += 16) {
            for (int region = 0; region < 4; region++) write(f, region * 8192 + i, 16, 16, 1);   // 32 MiB apart
        }
        awaitDirtyBelow(cache, 256);
        f.close();
        cache.close();
    }

    @Test
    void randomWritesAreLeftToTheThresholds() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 3), new MemStore(0), false);
        writeShuffled(f, 0, 2048, 1, 11);
        Thread.sleep(300);                                      // time for the flusher to run, which it must not
        assertEquals(0, cache.snapshot().writebackBytes(), "no stream: nothing written back below the background share");
        assertEquals(2048L * P, cache.snapshot().dirtyBytes());
        f.close();
        cache.close();
    }

    /** A stream written behind and ended stays in its slot: random writes elsewhere in the file must not start write-behind through it. */
    @Test
    void randomWritesAfterAStreamAreLeftToTheThresholds() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 8), new MemStore(0), false);
        streamWrittenBehind(cache, f);
        long before = cache.snapshot().writebackBytes(), dirty = cache.snapshot().dirtyBytes();
        writeShuffled(f, 4096, 1024, 2, 12);                    // 8 MiB past the stream's end, 4 MiB wide
        Thread.sleep(300);                                      // time for the flusher to run, which it must not
        assertEquals(before, cache.snapshot().writebackBytes(), "nothing written behind random writes");
        assertEquals(dirty + 1024L * P, cache.snapshot().dirtyBytes());
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

    /** A sequential writer going over pages the cache holds (a rewrite) makes no stream: the thresholds are left to it. */
    @Test
    void rewritingCachedPagesInOrderIsLeftToTheThresholds() throws Exception {
        PageCache cache = cache(BEHIND);
        CachedFile f = cache.open(new FileKey(9, 5), new MemStore(0), false);
        streamWrittenBehind(cache, f);
        f.flush();                                              // every page cached and clean
        long before = cache.snapshot().writebackBytes();
        write(f, 0, 2048, 64, 2);
        Thread.sleep(300);                                      // time for the flusher to run, which it must not
        assertEquals(before, cache.snapshot().writebackBytes(), "nothing written behind a rewrite");
        assertEquals(2048L * P, cache.snapshot().dirtyBytes());
        write(f, 2048, 2048, 64, 3);                            // new pages after it: a stream again
        awaitDirtyBelow(cache, 2048 + 256);
        f.close();
        cache.close();
    }

    /**
     * A writer streaming through a file twice the cache's size (frames evicted and reused under the
     * flusher's passes: its pages are new again each time round) while another rewrites random pages of
     * it (the two in turn), write-behind at 64 pages: after a FLUSH the store holds every page's last
     * write, and the cache's bookkeeping checks out.
     */
    @Test
    void writingBehindAStreamThatIsRewrittenLosesNoWrite() throws Exception {
        int frames = 1024, pages = 2048;
        PageCache cache = new PageCache((long) frames * P, CacheMode.WRITEBACK, DedupMode.OFF, 25, 75);
        cache.startBackgroundWriteback(0, 64L * P);
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(9, 6), store, false);
        int[] last = new int[pages];
        java.util.List<Throwable> failures = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
        long until = System.nanoTime() + 1_500_000_000L;
        Thread streamer = new Thread(() -> {
            try {
                for (int version = 1, page = 0; System.nanoTime() < until; page = (page + 16) % pages, version++) {
                    ByteBuffer b = ByteBuffer.allocate(16 * P);
                    for (int k = 0; k < 16; k++) b.putInt(k * P, version).putInt(k * P + P - 4, page + k);
                    synchronized (last) {          // the two writers in turn, so the last write is known; the flusher races both
                        f.write(IoPath.NBD, (long) page * P, new ByteBuffer[] {b}, false);
                        for (int k = 0; k < 16; k++) last[page + k] = version;
                    }
                }
            } catch (Throwable t) {
                failures.add(t);
            }
        });
        Thread rewriter = new Thread(() -> {
            java.util.Random r = new java.util.Random(3);
            try {
                for (int version = 1; System.nanoTime() < until; version++) {
                    int page = r.nextInt(pages);
                    ByteBuffer b = ByteBuffer.allocate(P);
                    b.putInt(0, -version).putInt(P - 4, page);
                    synchronized (last) {
                        f.write(IoPath.NBD, (long) page * P, new ByteBuffer[] {b}, false);
                        last[page] = -version;
                    }
                }
            } catch (Throwable t) {
                failures.add(t);
            }
        });
        streamer.start();
        rewriter.start();
        streamer.join();
        rewriter.join();
        assertEquals(java.util.List.of(), failures);
        f.flush();
        assertEquals(java.util.List.of(), cache.verify());
        ConcurrentWritebackTest.assertLastWrites(store, last);
        assertTrue(cache.snapshot().writebackBytes() > 0);
        f.close();
        cache.close();
    }

    /** Writes 8 MiB from page 0 in 256 KiB writes, waits until it is written behind and the flusher has ended the write-behind. */
    private static void streamWrittenBehind(PageCache cache, CachedFile f) throws Exception {
        write(f, 0, 2048, 64, 1);
        awaitDirtyBelow(cache, 256);
        Thread.sleep(100);                                      // the flusher sees that and ends the write-behind
    }

    /** One-page writes of {@code value} to pages [from, from + pages) in an order shuffled by {@code seed}. */
    private static void writeShuffled(CachedFile f, int from, int pages, int value, long seed) throws Exception {
        java.util.List<Integer> order = new java.util.ArrayList<>();
        for (int i = 0; i < pages; i++) order.add(from + i);
        java.util.Collections.shuffle(order, new java.util.Random(seed));
        for (int page : order) write(f, page, 1, 1, value);
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
