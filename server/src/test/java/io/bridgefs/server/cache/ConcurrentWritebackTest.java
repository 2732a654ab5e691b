package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * Two write-backs of one file at once (the periodic timer and a client's fsync) while a writer appends:
 * every appended page must reach the store. Before write-backs of a file were serialized, one could set
 * the file's size from a stale view after the other had written past it, cutting off pages it had just
 * written and marked clean (the kill -9 campaign lost an fsync'd 9P append that way).
 */
class ConcurrentWritebackTest {
    static final int P = PageCache.PAGE_SIZE;

    @Test
    void appendsSurviveConcurrentWritebacks() throws Exception {
        for (int round = 0; round < 5; round++) {
            PageCache cache = new PageCache(4096L * P, CacheMode.WRITEBACK);
            MemStore store = new MemStore(0);
            store.sizeDelayNanos = 200_000;          // the window between "the file is shorter" and setting its size
            CachedFile f = cache.open(new FileKey(7, round), store, false);
            AtomicBoolean stop = new AtomicBoolean();
            List<Thread> flushers = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                Thread th = new Thread(() -> {
                    while (!stop.get()) {
                        try {
                            f.writeback(false);
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                    }
                });
                th.start();
                flushers.add(th);
            }
            int pages = 2000;
            for (int i = 0; i < pages; i++) {
                ByteBuffer b = ByteBuffer.allocate(P);
                while (b.hasRemaining()) b.putInt(i + 1);
                f.write(IoPath.NINEP, (long) i * P, new ByteBuffer[] {b.flip()}, false);
            }
            stop.set(true);
            for (Thread th : flushers) th.join();
            f.flush();
            byte[] data = store.contents();
            assertEquals((long) pages * P, data.length, "round " + round + ": file size");
            ByteBuffer d = ByteBuffer.wrap(data);
            for (int i = 0; i < pages; i++) {
                assertEquals(i + 1, d.getInt(i * P), "round " + round + ": page " + i + " lost");
            }
            f.close();
            cache.close();
        }
    }
}
