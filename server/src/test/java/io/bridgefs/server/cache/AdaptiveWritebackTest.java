package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * {@code --dirty-background auto} ({@link Flusher}'s class notes): pages the background flusher wrote
 * that are written again raise the share it keeps dirty, so a writer rewriting a region that fits the
 * cache stops paying for write-back its next writes undo; pages the eviction policy frees, and writers
 * reaching the dirty limit, take the share back down to a quarter.
 */
class AdaptiveWritebackTest {
    static final int P = PageCache.PAGE_SIZE;
    static final int FRAMES = 8192;                             // a quarter: 2048; dirty limit 6144
    static final int FLOOR = FRAMES / 4, CEILING = FRAMES * 3 / 4 - FRAMES / 10;

    /** A cache of {@link #FRAMES} pages with the default shares: background auto, dirty limit 75%. */
    static PageCache autoCache() {
        return new PageCache((long) FRAMES * P, CacheMode.WRITEBACK, DedupMode.OFF, PageCache.AUTO, 75);
    }

    @Test
    void pagesWrittenAgainAfterTheFlusherWroteThemRaiseTheShareItKeepsDirty() throws Exception {
        PageCache cache = autoCache();
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(9, 1), store, false);
        assertEquals((long) FLOOR * P, cache.snapshot().dirtyBackgroundBytes(), "auto starts at a quarter");
        write(f, 0, 3000, 1);
        cache.startBackgroundWriteback(PageCache.FLUSHER_NICE, 0);
        awaitDirtyAtMost(cache, FLOOR);
        Thread.sleep(200);
        assertEquals((3000L - Flusher.CHUNK_PAGES) * P, cache.snapshot().dirtyBytes(), "one chunk (the lowest pages) written back");
        assertEquals(0, cache.snapshot().writebackRewrittenBytes());

        write(f, 0, Flusher.CHUNK_PAGES, 2);                    // every page the flusher wrote, written again
        Thread.sleep(300);                                      // time for the flusher to run, which it must not
        CacheStats s = cache.snapshot();
        assertEquals((long) Flusher.CHUNK_PAGES * P, s.writebackRewrittenBytes(), "pages the flusher wrote, written again");
        assertEquals((long) CEILING * P, s.dirtyBackgroundBytes(), "raised to a tenth of the cache below the dirty limit");
        assertEquals(3000L * P, s.dirtyBytes(), "nothing written back under the raised share");

        f.flush();                                              // a FLUSH still writes everything
        assertEquals(0, cache.snapshot().dirtyBytes());
        ByteBuffer held = ByteBuffer.wrap(store.contents());
        for (int i = 0; i < 3000; i++) assertEquals(i < Flusher.CHUNK_PAGES ? 2 : 1, held.getInt(i * P), "page " + i);
        f.close();
        cache.close();
    }

    @Test
    void aFixedShareDoesNotMove() throws Exception {
        PageCache cache = new PageCache((long) FRAMES * P, CacheMode.WRITEBACK, DedupMode.OFF, 25, 75);
        CachedFile f = oneChunkWrittenBack(cache, 2, new MemStore(0));
        write(f, 0, Flusher.CHUNK_PAGES, 2);
        awaitDirtyAtMost(cache, FLOOR);                         // written back again: the share stayed a quarter
        assertEquals((long) FLOOR * P, cache.snapshot().dirtyBackgroundBytes());
        assertEquals((long) Flusher.CHUNK_PAGES * P, cache.snapshot().writebackRewrittenBytes(), "counted all the same");
        f.close();
        cache.close();
    }

    @Test
    void aWriterStreamingThroughMoreThanTheCacheTakesTheShareBackToAQuarter() throws Exception {
        PageCache cache = autoCache();
        MemStore store = new MemStore(0);
        CachedFile f = oneChunkWrittenBack(cache, 3, store);
        write(f, 0, Flusher.CHUNK_PAGES, 2);
        assertEquals((long) CEILING * P, cache.snapshot().dirtyBackgroundBytes());
        long evictions = cache.snapshot().evictions();
        write(f, 3000, 3 * FRAMES, 3);                          // three cache sizes of new pages
        CacheStats s = cache.snapshot();
        assertTrue(s.evictions() - evictions > FRAMES, "pages were evicted: " + (s.evictions() - evictions));
        assertEquals((long) FLOOR * P, s.dirtyBackgroundBytes(), "back to a quarter");
        f.flush();
        ByteBuffer held = ByteBuffer.wrap(store.contents());
        for (int i = 0; i < 3000 + 3 * FRAMES; i++) {
            assertEquals(i < Flusher.CHUNK_PAGES ? 2 : i < 3000 ? 1 : 3, held.getInt(i * P), "page " + i);
        }
        f.close();
        cache.close();
    }

    @Test
    void evictionsLowerTheShareOneEach() throws Exception {
        PageCache cache = autoCache();
        CachedFile f = oneChunkWrittenBack(cache, 4, new MemStore(0));
        write(f, 0, 1024, 2);                                   // half of what the flusher wrote, written again
        assertEquals((long) CEILING * P, cache.snapshot().dirtyBackgroundBytes());
        // a reader of another file (no writer waits, no write-back): 1000 pages more than the free frames
        long free = FRAMES - cache.snapshot().residentPages();
        CachedFile other = readAnother(cache, 5, free + 1000);
        CacheStats s = cache.snapshot();
        assertTrue(s.evictions() >= 1000, "evictions: " + s.evictions());
        assertEquals(CEILING - s.evictions(), s.dirtyBackgroundBytes() / P, "one page lower per page evicted");
        assertEquals(3000L - Flusher.CHUNK_PAGES + 1024, s.dirtyBytes() / P, "dirty pages are not evicted");
        other.close();
        f.close();
        cache.close();
    }

    /** A share lowered by evictions under what is dirty wakes the flusher, though nothing is written meanwhile. */
    @Test
    void readersEvictingTakeTheShareDownAndTheFlusherWritesBackWithoutAnotherWrite() throws Exception {
        PageCache cache = autoCache();
        CachedFile f = oneChunkWrittenBack(cache, 6, new MemStore(0));
        write(f, 0, Flusher.CHUNK_PAGES, 2);
        write(f, 3000, 1200, 1);                                // 4200 dirty, under the raised share
        Thread.sleep(200);
        assertEquals(4200L * P, cache.snapshot().dirtyBytes(), "nothing written back under the raised share");
        CachedFile other = readAnother(cache, 7, 2 * FRAMES);
        assertEquals((long) FLOOR * P, cache.snapshot().dirtyBackgroundBytes(), "evictions took the share back to a quarter");
        awaitDirtyAtMost(cache, FLOOR);                         // no write since: the evictions woke the flusher
        other.close();
        f.close();
        cache.close();
    }

    /** A file of {@code cache} with 3000 pages written and the flusher's first chunk (its lowest 2048 pages) written back. */
    private static CachedFile oneChunkWrittenBack(PageCache cache, int id, MemStore store) throws Exception {
        CachedFile f = cache.open(new FileKey(9, id), store, false);
        write(f, 0, 3000, 1);
        cache.startBackgroundWriteback(PageCache.FLUSHER_NICE, 0);
        awaitDirtyAtMost(cache, FLOOR);
        return f;
    }

    /** Another file of two cache sizes, its first {@code pages} read one by one (no writer waits, nothing written back). */
    private static CachedFile readAnother(PageCache cache, int id, long pages) throws Exception {
        CachedFile other = cache.open(new FileKey(9, id), new MemStore(2L * FRAMES * P), false);
        ByteBuffer b = ByteBuffer.allocate(P);
        for (int i = 0; i < pages; i++) other.read(IoPath.NINEP, (long) i * P, b.clear());
        return other;
    }

    private static void write(CachedFile f, int from, int pages, int value) throws Exception {
        for (int i = from; i < from + pages; i++) {
            ByteBuffer page = ByteBuffer.allocate(P);
            page.putInt(0, value);
            f.write(IoPath.NBD, (long) i * P, new ByteBuffer[] {page}, false);
        }
    }

    private static void awaitDirtyAtMost(PageCache cache, int pages) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (cache.snapshot().dirtyBytes() > (long) pages * P && System.nanoTime() < deadline) Thread.sleep(5);
        assertTrue(cache.snapshot().dirtyBytes() <= (long) pages * P, "the flusher took the cache under " + pages + " dirty pages");
    }
}
