package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * Threads read and write files built from a few distinct pages through a small merging cache, so
 * that fills merge, writes copy merged pages, and eviction and read-ahead run all the time. Each
 * thread writes only its own pages and checks every read of them against what it wrote; at the end
 * the counters must agree with a recount and the files on their stores must hold what was written.
 */
class MergeConcurrencyTest {
    static final int P = PageCache.PAGE_SIZE;
    static final int THREADS = 4, PAGES_PER_THREAD = 24, FILES = 2;

    @Test
    void mergingUnderConcurrentReadsWritesAndEviction() throws Exception {
        byte[][] pool = new byte[3][P];
        for (int i = 0; i < pool.length; i++) new Random(50 + i).nextBytes(pool[i]);
        PageCache cache = new PageCache(64L * P, CacheMode.WRITEBACK, DedupMode.MERGE);
        cache.startBackgroundWriteback(PageCache.FLUSHER_NICE, 0);
        int pages = THREADS * PAGES_PER_THREAD;
        MemStore[] stores = new MemStore[FILES];
        CachedFile[] files = new CachedFile[FILES];
        byte[][] expect = new byte[FILES][];
        for (int f = 0; f < FILES; f++) {
            stores[f] = new MemStore((long) pages * P);
            for (int p = 0; p < pages; p++) System.arraycopy(pool[(p + f) % pool.length], 0, stores[f].data, p * P, P);
            expect[f] = stores[f].contents();
            files[f] = cache.open(new FileKey(1, 200 + f), stores[f], false);
        }
        ExecutorService pool4 = Executors.newFixedThreadPool(THREADS);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int first = t * PAGES_PER_THREAD;
                long seed = t;
                done.add(pool4.submit(() -> {
                    Random r = new Random(seed);
                    for (int i = 0; i < 3000; i++) {
                        int f = r.nextInt(FILES);
                        int page = first + r.nextInt(PAGES_PER_THREAD);
                        IoPath path = r.nextBoolean() ? IoPath.NBD : IoPath.NINEP;
                        int op = r.nextInt(10);
                        if (op < 2) {
                            // a whole pool page (merges again later) or a few random bytes (breaks a merge)
                            byte[] data = r.nextBoolean() ? pool[r.nextInt(pool.length)].clone() : randomBytes(r, 1 + r.nextInt(100));
                            int at = data.length == P ? 0 : r.nextInt(P - data.length);
                            files[f].write(path, (long) page * P + at, ByteBuffer.wrap(data), false);
                            synchronized (expect[f]) {
                                System.arraycopy(data, 0, expect[f], page * P + at, data.length);
                            }
                        } else if (op == 2) {
                            cache.dropClean();
                        } else {
                            int n = 1 + r.nextInt(3);
                            if (page + n > first + PAGES_PER_THREAD) n = first + PAGES_PER_THREAD - page;
                            ByteBuffer b = ByteBuffer.allocate(n * P);
                            files[f].read(path, (long) page * P, b);
                            byte[] want;
                            synchronized (expect[f]) {
                                want = java.util.Arrays.copyOfRange(expect[f], page * P, (page + n) * P);
                            }
                            assertArrayEquals(want, b.array(), "thread " + seed + " file " + f + " page " + page);
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> d : done) d.get();
        } finally {
            pool4.shutdownNow();
        }
        cache.quiesce();
        assertEquals(List.of(), cache.verify());
        for (int f = 0; f < FILES; f++) {
            files[f].flush();
            assertArrayEquals(expect[f], stores[f].contents(), "file " + f + " on its store");
        }
        assertTrue(cache.snapshot().dedupCowBreaks() > 0, "the run copied merged pages on write");
        assertEquals(List.of(), cache.verify());
    }

    private static byte[] randomBytes(Random r, int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }
}
