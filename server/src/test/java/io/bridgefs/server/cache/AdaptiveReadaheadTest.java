package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * Read-ahead that pays for itself: auto grows its window while what it read ahead is read, shrinks it
 * when read-ahead pages are evicted unread, and the counters say how much was read ahead and wasted.
 */
class AdaptiveReadaheadTest {
    static final int P = PageCache.PAGE_SIZE;

    static void readSequentially(CachedFile f, long from, int requests, int bytes) throws Exception {
        for (int i = 0; i < requests; i++) f.read(IoPath.NBD, from + (long) i * bytes, ByteBuffer.allocateDirect(bytes));
    }

    static Void readAt(CachedFile f, long offset, int bytes) throws Exception {
        f.read(IoPath.NBD, offset, ByteBuffer.allocateDirect(bytes));
        return null;
    }

    @Test
    void autoGrowsWhileItsPagesAreRead() throws Exception {
        PageCache cache = new PageCache(4096L * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 1), new MemStore(64L << 20), false);
        f.readahead(Readahead.auto(true));
        assertEquals(8, f.readaheadWindow());
        readSequentially(f, 0, 400, 16 * 1024);
        cache.quiesce();
        assertTrue(f.readaheadWindow() >= 256, "a sequential reader reads everything read ahead: the window grows to " + f.readaheadWindow());
        CacheStats s = cache.snapshot();
        assertTrue(s.readaheadBytes() > 0);
        assertEquals(0, s.readaheadUnusedBytes(), "nothing read ahead was wasted");
        assertEquals(0, s.pinnedPages());
    }

    @Test
    void autoShrinksWhenItsPagesAreEvictedUnread() throws Exception {
        // a small cache and readers that take two sequential pages each, far apart: whatever is read
        // ahead is evicted before anybody reads it
        PageCache cache = new PageCache(64L * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 2), new MemStore(256L << 20), false);
        f.readahead(new Readahead(64, 64, true));
        for (int i = 0; i < 300; i++) {
            long at = (long) i * 97 * 1024 * 1024 % (250L << 20) / P * P;
            f.read(IoPath.NBD, at, ByteBuffer.allocateDirect(P));
            f.read(IoPath.NBD, at + P, ByteBuffer.allocateDirect(P));
        }
        cache.quiesce();
        CacheStats s = cache.snapshot();
        assertTrue(s.readaheadUnusedBytes() > 0, "read-ahead evicted unread is counted");
        assertTrue(f.readaheadWindow() < 8, "the window shrank to " + f.readaheadWindow());
        long wastedAtSmallWindow = s.readaheadUnusedBytes();
        assertTrue(wastedAtSmallWindow < 300L * 64 * P / 4, "auto wastes far less than a fixed window would: " + wastedAtSmallWindow);
    }

    @Test
    void randomReadsIntoAFillingCacheReadNothingAhead() throws Exception {
        // every fourth page read first (shuffled), then, after reads elsewhere in the file, each page
        // after one of those (shuffled): each of these follows a resident page with absent ones after
        // it, but no recent read request ended there, so none of them is a stream to read ahead for
        PageCache cache = new PageCache(8192L * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 5), new MemStore(4096L * P), false);
        f.readahead(Readahead.auto(true));
        java.util.List<Integer> first = new java.util.ArrayList<>(), next = new java.util.ArrayList<>();
        for (int i = 0; i < 2048; i += 4) {
            first.add(i);
            next.add(i + 1);
        }
        java.util.Random rnd = new java.util.Random(7);
        java.util.Collections.shuffle(first, rnd);
        java.util.Collections.shuffle(next, rnd);
        for (int pg : first) f.read(IoPath.NBD, (long) pg * P, ByteBuffer.allocateDirect(P));
        for (int i = 0; i < 40; i++) f.read(IoPath.NBD, (3000L + 2 * i) * P, ByteBuffer.allocateDirect(P));
        for (int pg : next) {
            PinnedRange r = f.pin(IoPath.NBD, (long) pg * P, P);     // NBD's zero-copy read
            assertNotNull(r);
            r.release();
        }
        cache.quiesce();
        CacheStats s = cache.snapshot();
        assertEquals(0, s.readaheadBytes(), "random reads read nothing ahead");
        assertEquals((1024L + 40) * P, s.cachedBytes(), "only the pages read are cached");
        assertEquals(0, s.pinnedPages());
    }

    @Test
    void interleavedSequentialReadersBothReadAhead() throws Exception {
        // two streams through one file, their requests alternating (as two guests or two nbdcopy
        // connections): each still finds where its own last request ended
        PageCache cache = new PageCache(4096L * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 6), new MemStore(64L << 20), false);
        f.readahead(Readahead.auto(true));
        long a = 0, b = 32L << 20;
        for (int i = 0; i < 200; i++) {
            f.read(IoPath.NBD, a, ByteBuffer.allocateDirect(16 * 1024));
            f.read(IoPath.NBD, b, ByteBuffer.allocateDirect(16 * 1024));
            a += 16 * 1024;
            b += 16 * 1024;
        }
        cache.quiesce();
        CacheStats s = cache.snapshot();
        long requested = 2L * 200 * 16 * 1024;
        assertTrue(s.readaheadBytes() > requested / 2, "most of both streams was read ahead: " + s.readaheadBytes());
        assertEquals(0, s.pinnedPages());
    }

    @Test
    void noReadAheadForAClientThatQueuesItsNextRequestAhead() throws Exception {
        // a request arrives for the pages after one still being read for the client (a deep queue, as
        // nbdcopy's): the client reads ahead itself. The same request after the reply does read ahead.
        PageCache cache = new PageCache(4096L * P, CacheMode.WRITEBACK);
        MemStore store = new MemStore(8L << 20);
        CachedFile f = cache.open(new FileKey(1, 7), store, false);
        f.readahead(Readahead.auto(true));
        int req = 16 * 1024;
        store.readGate = new java.util.concurrent.CountDownLatch(1);
        var pool = java.util.concurrent.Executors.newFixedThreadPool(2);
        try {
            var first = pool.submit(() -> readAt(f, req, req));
            assertTrue(store.readsAtGate.tryAcquire(5, java.util.concurrent.TimeUnit.SECONDS), "the first request's read is in flight");
            var second = pool.submit(() -> readAt(f, 2L * req, req));
            assertTrue(store.readsAtGate.tryAcquire(5, java.util.concurrent.TimeUnit.SECONDS), "the second request's read is in flight");
            store.readGate.countDown();
            first.get(5, java.util.concurrent.TimeUnit.SECONDS);
            second.get(5, java.util.concurrent.TimeUnit.SECONDS);
        } finally {
            store.readGate = null;
            pool.shutdownNow();
        }
        cache.quiesce();
        assertEquals(0, cache.snapshot().readaheadBytes(), "the client queued ahead: nothing read ahead for it");
        f.read(IoPath.NBD, 3L * req, ByteBuffer.allocateDirect(req));
        cache.quiesce();
        assertTrue(cache.snapshot().readaheadBytes() > 0, "a request sent after the reply to the one before is read ahead for");
        assertEquals(0, cache.snapshot().pinnedPages());
    }

    @Test
    void offReadsNothingAheadAndFixedNeverChanges() throws Exception {
        PageCache cache = new PageCache(4096L * P, CacheMode.WRITEBACK);
        CachedFile off = cache.open(new FileKey(1, 3), new MemStore(8L << 20), false);
        off.readahead(Readahead.parse("off", true));
        readSequentially(off, 0, 100, 16 * 1024);
        cache.quiesce();
        assertEquals(0, cache.snapshot().readaheadBytes());
        CachedFile fixed = cache.open(new FileKey(1, 4), new MemStore(8L << 20), false);
        fixed.readahead(Readahead.parse("64k", true));
        readSequentially(fixed, 0, 100, 16 * 1024);
        cache.quiesce();
        assertEquals(16, fixed.readaheadWindow());
        assertTrue(cache.snapshot().readaheadBytes() > 0);
        assertThrows(IllegalArgumentException.class, () -> Readahead.parse("3m", true));
        assertEquals("auto", Readahead.parse("auto", false).toString());
    }
}
