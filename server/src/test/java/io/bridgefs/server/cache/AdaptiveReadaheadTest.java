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
