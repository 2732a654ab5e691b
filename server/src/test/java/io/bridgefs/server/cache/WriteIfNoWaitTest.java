package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * {@link CachedFile#writeIfNoWait}, what a network thread does with a 9P write: it takes new frames for
 * whole pages and pages past the host file's end, grows the file, never reads; it declines a page
 * whose old content must be read first and a write the dirty limit has no room for, having read nothing.
 */
class WriteIfNoWaitTest {
    static final int P = PageCache.PAGE_SIZE;

    static ByteBuffer[] bytes(int n, int value) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) value);
        return new ByteBuffer[] {ByteBuffer.wrap(b)};
    }

    @Test
    void aNewFileIsWrittenFromStartToEndWithoutReadingAndAPartialPageOfTheHostFileIsDeclined() throws Exception {
        try (PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK)) {
            MemStore store = new MemStore(2 * P);            // two pages on the host
            CachedFile f = cache.open(new FileKey(1, 1), store, false);
            assertFalse(f.writeIfNoWait(IoPath.NINEP, 100, bytes(10, 1)), "part of a host page not in the cache: its old content needs a read");
            assertEquals(0, store.reads);
            assertEquals(0, cache.snapshot().dirtyBytes(), "declined before it wrote anything");

            assertTrue(f.writeIfNoWait(IoPath.NINEP, P, bytes(P, 2)), "a whole page: nothing to read");
            assertTrue(f.writeIfNoWait(IoPath.NINEP, 2 * P, bytes(P + 300, 3)), "past the host file's end: zeros, nothing to read");
            assertTrue(f.writeIfNoWait(IoPath.NINEP, 3 * P + 300, bytes(1000, 4)), "the partial page just written is resident");
            assertEquals(0, store.reads);
            assertEquals(3 * P + 1300, f.size(), "grown");
            f.flush();
            byte[] host = store.contents();
            assertEquals(3 * P + 1300, host.length);
            assertEquals(2, host[P]);
            assertEquals(3, host[3 * P + 299]);
            assertEquals(4, host[3 * P + 1299]);
            f.close();
        }
    }

    @Test
    void aWriteTheDirtyLimitHasNoRoomForIsDeclinedAndTheUsualWriteDoesIt() throws Exception {
        try (PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK, DedupMode.OFF, 75, 75)) {    // dirty limit: 48 pages
            MemStore store = new MemStore(0);
            CachedFile f = cache.open(new FileKey(1, 2), store, false);
            assertTrue(f.writeIfNoWait(IoPath.NINEP, 0, bytes(40 * P, 5)));
            assertFalse(f.writeIfNoWait(IoPath.NINEP, 40 * P, bytes(10 * P, 6)), "40 + 10 dirty pages are over the limit of 48");
            assertEquals(40L * P, cache.snapshot().dirtyBytes(), "declined before it wrote anything");
            f.write(IoPath.NINEP, 40 * P, bytes(10 * P, 6), false);      // the executor's write: waits for write-back as it must
            f.flush();
            byte[] host = store.contents();
            assertEquals(50 * P, host.length);
            assertEquals(5, host[40 * P - 1]);
            assertEquals(6, host[50 * P - 1]);
            f.close();
        }
    }

    @Test
    void aPageBeingReadInIsDeclinedWithoutWaitingForTheRead() throws Exception {
        try (PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK)) {
            MemStore store = new MemStore(4 * P);
            CachedFile f = cache.open(new FileKey(1, 3), store, false);
            f.readahead(Readahead.OFF);
            store.readGate = new java.util.concurrent.CountDownLatch(1);
            Thread reader = new Thread(() -> {
                try {
                    f.read(IoPath.NBD, 0, ByteBuffer.allocate(P));        // page 0: LOADING at the gate
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            reader.start();
            try {
                assertTrue(store.readsAtGate.tryAcquire(5, java.util.concurrent.TimeUnit.SECONDS), "the read is in flight");
                boolean[] wrote = new boolean[1];
                assertTimeoutPreemptively(java.time.Duration.ofSeconds(5), () -> { wrote[0] = f.writeIfNoWait(IoPath.NINEP, 0, bytes(P, 7)); },
                        "a network thread must not wait for a disk read");
                assertFalse(wrote[0], "declined: the page is being read in");
            } finally {
                store.readGate.countDown();
                reader.join(5000);
                store.readGate = null;
            }
            f.write(IoPath.NINEP, 0, bytes(P, 7), false);
            f.flush();
            assertEquals(7, store.contents()[0]);
            f.close();
        }
    }

    /** A write's buffers as they may arrive: split at arbitrary points (TCP segments). */
    static ByteBuffer[] split(int n, int value, int... cuts) {
        ByteBuffer whole = bytes(n, value)[0];
        ByteBuffer[] parts = new ByteBuffer[cuts.length + 1];
        int from = 0;
        for (int i = 0; i <= cuts.length; i++) {
            int to = i < cuts.length ? cuts[i] : n;
            parts[i] = whole.slice(from, to - from);
            from = to;
        }
        return parts;
    }

    @Test
    void wholePagesSplitAcrossBuffersAreWholeNotReadFirst() throws Exception {
        try (PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK)) {
            MemStore store = new MemStore(8 * P);
            java.util.Arrays.fill(store.data, (byte) 1);
            CachedFile f = cache.open(new FileKey(1, 4), store, false);
            assertTrue(f.writeIfNoWait(IoPath.NBD, P, split(P, 7, 1448)), "one page in two buffers: whole, nothing to read");
            f.write(IoPath.NBD, 2 * P, split(3 * P, 8, 1, 1448, P + 2896, 2 * P + 4000), false);
            assertEquals(0, store.reads, "no page of either write was read from the host");
            assertEquals(0, cache.snapshot().fills(IoPath.NBD));
            // and a partial page in pieces is still read first, its untouched bytes kept
            f.write(IoPath.NBD, 6 * P + 100, split(1000, 9, 10, 500), false);
            assertEquals(1, cache.snapshot().fills(IoPath.NBD));
            f.flush();
            byte[] host = store.contents();
            assertEquals(7, host[P]);
            assertEquals(7, host[2 * P - 1]);
            assertEquals(8, host[2 * P]);
            assertEquals(8, host[5 * P - 1]);
            assertEquals(1, host[P - 1]);
            assertEquals(1, host[6 * P + 99]);
            assertEquals(9, host[6 * P + 100]);
            assertEquals(9, host[6 * P + 1099]);
            assertEquals(1, host[6 * P + 1100]);
            f.close();
        }
    }

    /**
     * One write over every kind of page at once: resident ones, new whole ones, a partial one whose old
     * content must be read first (taken alone, between runs claimed together), new ones past the host
     * file's end (the last partial: zeros around the data). Every byte lands, one page is read, each page
     * is counted once (a hit or a miss), and the cache's counts agree with a recount from its frames.
     */
    @Test
    void aWriteOverResidentNewAndPartlyWrittenPagesTakesEachTheRightWay() throws Exception {
        try (PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK)) {
            MemStore store = new MemStore(6 * P);                    // six pages on the host, all 1s
            java.util.Arrays.fill(store.data, (byte) 1);
            CachedFile f = cache.open(new FileKey(1, 5), store, false);
            f.write(IoPath.NBD, 0, bytes(2 * P, 2), false);          // pages 0 and 1 resident
            long hits = cache.snapshot().hits(IoPath.NBD), misses = cache.snapshot().misses(IoPath.NBD);
            f.write(IoPath.NBD, 3 * P + 100, bytes(10, 3), false);   // page 3: read first, its other bytes kept
            assertEquals(1, cache.snapshot().fills(IoPath.NBD));
            // pages 0 to 9, in three buffers: 0 (partial), 1 and 3 resident, 2 and 4-5 new and whole, 6-9 past
            // the host file's end (9 partial)
            f.write(IoPath.NBD, 100, split(9 * P + 100, 4, 1448, 3 * P, 5 * P + 7), false);
            var after = cache.snapshot();
            assertEquals(1, after.fills(IoPath.NBD), "no page of the long write was read: page 3 was resident by then");
            assertEquals(hits + 3, after.hits(IoPath.NBD), "pages 0, 1 and 3 found resident");
            assertEquals(misses + 1 + 7, after.misses(IoPath.NBD), "page 3's first write, then pages 2 and 4-9 new");
            assertEquals(9 * P + 200, f.size());
            assertEquals(java.util.List.of(), cache.verify(), "the counters agree with a recount from the frames");
            // a partial page of the host in the middle of a write: its old content is read, alone
            f.write(IoPath.NBD, 20 * P, bytes(P, 6), false);         // grows the file to 21 pages, 10-19 holes
            f.flush();
            cache.dropClean();
            f.write(IoPath.NBD, 18 * P + 5, bytes(2 * P, 7), false);   // 18 and 20 now partial pages of the host
            assertEquals(3, cache.snapshot().fills(IoPath.NBD), "pages 18 and 20 read first, 19 not");
            f.flush();
            byte[] host = store.contents();
            assertEquals(2, host[99]);
            assertEquals(4, host[100]);
            assertEquals(4, host[3 * P + 99]);
            assertEquals(4, host[9 * P + 199]);
            assertEquals(0, host[9 * P + 200], "past the end of the long write, below the next one: a hole");
            assertEquals(0, host[18 * P + 4], "page 18 was read first: its bytes before the write kept (a hole's zeros)");
            assertEquals(7, host[18 * P + 5]);
            assertEquals(7, host[20 * P + 4]);
            assertEquals(6, host[20 * P + 5], "page 20 was read first: its bytes after the write kept");
            assertEquals(21 * P, host.length);
            assertEquals(java.util.List.of(), cache.verify());
            f.close();
        }
    }

    @Test
    void aWriteOfMoreThan2MiBIsLeftToTheExecutor() throws Exception {
        try (PageCache cache = new PageCache(4096 * P, CacheMode.WRITEBACK)) {
            MemStore store = new MemStore(0);
            CachedFile f = cache.open(new FileKey(1, 5), store, false);
            assertTrue(f.writeIfNoWait(IoPath.NBD, 0, bytes(PageWrites.NO_WAIT_PAGES * P, 1)), "2 MiB: on the network thread");
            assertFalse(f.writeIfNoWait(IoPath.NBD, 0, bytes(PageWrites.NO_WAIT_PAGES * P + 1, 2)), "more: one request must not hold the thread");
            ByteBuffer back = ByteBuffer.allocate(1);
            f.read(IoPath.NBD, PageWrites.NO_WAIT_PAGES * P - 1, back);
            assertEquals(1, back.get(0), "declined before it wrote anything");
            f.close();
        }
    }
}
