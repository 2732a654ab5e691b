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

    /**
     * The periodic write-back lists the open files, then writes each back: a file closed in between
     * must not be synced through its closed descriptor (EBADF, or another file's if the number was
     * reused), and a close must wait for a write-back already running.
     */
    @org.junit.jupiter.api.Test
    void aFileClosedUnderThePeriodicWritebackIsLeftAlone() throws Exception {
        PageCache cache = new PageCache(4096L * 64, CacheMode.WRITEBACK);
        for (int round = 0; round < 200; round++) {
            MemStore store = new MemStore(0);
            CachedFile f = cache.open(new FileKey(9, round), store, false);
            f.write(IoPath.NINEP, 0, new java.nio.ByteBuffer[] {java.nio.ByteBuffer.allocateDirect(4096)}, false);
            java.util.List<CachedFile> listed = cache.openFiles();
            Thread closer = new Thread(() -> {
                try {
                    f.close();
                } catch (java.io.IOException e) {
                    throw new AssertionError(e);
                }
            });
            closer.start();
            for (CachedFile c : listed) c.flush();        // what flushAll does: must not throw
            closer.join();
            assertTrue(store.closed);
            f.flush();                                      // long closed: nothing to do
        }
    }

    /**
     * Found by the fuzzer: a 9P write far past what the host file system can hold was taken by the cache
     * and could never be written back (EFBIG at every write-back, the pages dirty for good). Such a write
     * is now refused when it is made, and leaves nothing behind.
     */
    @Test
    void aWritePastTheHostsLargestFileIsRefusedWhenMade(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        PageCache cache = new PageCache(4096L * 64, CacheMode.WRITEBACK);
        java.nio.file.Path p = java.nio.file.Files.createFile(dir.resolve("f"));
        CachedFile f = cache.open(new FileKey(3, 3), FileBackingStore.open(p, false), false);
        long far = (1L << 62) + 12345;          // beyond every Linux file system's largest file
        assertThrows(java.io.IOException.class, () -> f.write(IoPath.NINEP, far, ByteBuffer.wrap(new byte[] {1}), false));
        assertThrows(java.io.IOException.class, () -> f.write(IoPath.NINEP, Long.MAX_VALUE - 1, ByteBuffer.wrap(new byte[8]), false));
        assertEquals(0, cache.snapshot().dirtyBytes(), "nothing was taken");
        f.write(IoPath.NINEP, 2L << 40, ByteBuffer.wrap(new byte[] {7}), false);      // 2 TiB: ext4 holds it
        f.flush();
        assertEquals((2L << 40) + 1, java.nio.file.Files.size(p));
        f.close();
        cache.close();
    }

    /**
     * The background flusher writes back a chunk at a time, in page order, and stops once the cache is
     * back under its background share, leaving the rest dirty (as the kernel's background write-back
     * does). It used to write back every dirty page each time it woke: in a 10 s sequential rewrite as
     * much as the client sent, pages about to be written again included. Fails on that code (0 left dirty).
     */
    @Test
    void theBackgroundFlusherStopsOnceUnderItsShare() throws Exception {
        int frames = 8192;                   // background share 2048 pages, dirty limit 6144
        PageCache cache = new PageCache((long) frames * P, CacheMode.WRITEBACK, DedupMode.OFF, 25, 75);
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(5, 5), store, false);
        int written = 5000;
        for (int i = 0; i < written; i++) {
            ByteBuffer page = ByteBuffer.allocate(P);
            page.putInt(0, i + 1);
            f.write(IoPath.NBD, (long) i * P, new ByteBuffer[] {page}, false);
        }
        assertEquals((long) written * P, cache.snapshot().dirtyBytes());
        cache.startBackgroundWriteback(PageCache.FLUSHER_NICE, 0);
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (cache.snapshot().dirtyBytes() > 2048L * P && System.nanoTime() < deadline) Thread.sleep(5);
        Thread.sleep(300);                   // time to go on, which it must not
        long left = written - 2L * Flusher.CHUNK_PAGES;     // two chunks took it under 2048
        assertEquals(left * P, cache.snapshot().dirtyBytes(), "dirty bytes after the flusher stopped");
        byte[] held = store.contents();
        for (int i = 0; i < written; i++) {
            int want = i < written - left ? i + 1 : 0;       // the lowest pages went first
            assertEquals(want, ByteBuffer.wrap(held, i * P, 4).getInt(), "page " + i + " in the store");
        }
        f.flush();
        assertEquals(0, cache.snapshot().dirtyBytes());
        held = store.contents();
        for (int i = 0; i < written; i++) assertEquals(i + 1, ByteBuffer.wrap(held, i * P, 4).getInt(), "page " + i + " after FLUSH");
        f.close();
        cache.close();
    }

    /**
     * Writers rewrite pages of a file twice the cache's size (so frames are evicted and reused under the
     * flusher's pass, whose older entries then name other pages) while the background flusher writes
     * back a chunk at a time: after a FLUSH the store holds every page's last write, and the cache's
     * bookkeeping checks out.
     */
    @Test
    void chunkedBackgroundWritebackLosesNoWrite() throws Exception {
        int frames = 1024, pages = 2048;
        PageCache cache = new PageCache((long) frames * P, CacheMode.WRITEBACK, DedupMode.OFF, 25, 75);
        cache.startBackgroundWriteback(PageCache.FLUSHER_NICE, 0);
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(6, 6), store, false);
        int[] last = new int[pages];
        List<Thread> writers = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        long until = System.nanoTime() + 1_500_000_000L;
        for (int w = 0; w < 2; w++) {
            int mine = w;
            writers.add(new Thread(() -> {
                java.util.Random r = new java.util.Random(mine);
                try {
                    for (int version = 1; System.nanoTime() < until; version++) {
                        int page = 2 * r.nextInt(pages / 2) + mine;      // each writer its own pages
                        ByteBuffer b = ByteBuffer.allocate(P);
                        b.putInt(0, version).putInt(P - 4, page);
                        f.write(IoPath.NBD, (long) page * P, new ByteBuffer[] {b}, false);
                        last[page] = version;
                    }
                } catch (Throwable t) {
                    failures.add(t);
                }
            }));
        }
        writers.forEach(Thread::start);
        for (Thread t : writers) t.join();
        assertEquals(List.of(), failures);
        f.flush();
        assertEquals(List.of(), cache.verify());
        assertLastWrites(store, last);
        assertTrue(cache.snapshot().writebackBytes() > 0);
        f.close();
        cache.close();
    }

    /** The store holds each page's last write (its first int) and its own number (its last), for every page written ({@code last[page]} not 0). */
    static void assertLastWrites(MemStore store, int[] last) {
        byte[] held = store.contents();
        for (int page = 0; page < last.length; page++) {
            if (last[page] == 0) continue;
            assertEquals(last[page], ByteBuffer.wrap(held, page * P, 4).getInt(), "page " + page);
            assertEquals(page, ByteBuffer.wrap(held, page * P + P - 4, 4).getInt(), "page " + page);
        }
    }

    /**
     * The background flusher runs as many nice levels below the process as it is told (Linux keeps a
     * nice value per thread: the others keep the process's), still writes back, and its thread ends
     * with the cache.
     */
    @Test
    void theBackgroundFlusherRunsAsManyNiceLevelsBelowTheProcessAsItIsTold() throws Exception {
        int own = niceOf("/proc/self");
        int want = Math.min(19, own + 13);      // as nice -n: never past 19
        PageCache cache = new PageCache(1024L * P, CacheMode.WRITEBACK, DedupMode.OFF, 1, 75);
        int before = flushersAtNice(want);
        cache.startBackgroundWriteback(13, 0);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (flushersAtNice(want) == before && System.nanoTime() < deadline) Thread.sleep(5);
        assertEquals(before + 1, flushersAtNice(want), "flusher threads at nice " + want);
        assertEquals(own, niceOf("/proc/thread-self"), "the test's own thread keeps the process's nice value");
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(8, 8), store, false);
        for (int i = 0; i < 100; i++) f.write(IoPath.NBD, (long) i * P, new ByteBuffer[] {ByteBuffer.allocate(P).putInt(0, i + 1)}, false);
        while (cache.snapshot().dirtyBytes() > 10L * P && System.nanoTime() < deadline) Thread.sleep(5);
        assertTrue(cache.snapshot().dirtyBytes() <= 10L * P, "the niced flusher wrote back below 1% of the cache");
        f.close();
        cache.close();
        // join() returns once the Java thread is done; the kernel's thread goes a moment later
        while (flushersAtNice(want) != before && System.nanoTime() < deadline) Thread.sleep(5);
        assertEquals(before, flushersAtNice(want), "flusher threads at nice " + want + " after the cache closed");
    }

    /** Threads of this process named as the flusher is whose nice value is {@code nice} (from /proc). */
    private static int flushersAtNice(int nice) throws java.io.IOException {
        int n = 0;
        try (var tasks = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/task"))) {
            for (var t : (Iterable<java.nio.file.Path>) tasks::iterator) {
                try {
                    String comm = java.nio.file.Files.readString(t.resolve("comm")).trim();
                    if (comm.startsWith("bridgefs-flush") && niceOf(t.toString()) == nice) n++;
                } catch (java.nio.file.NoSuchFileException gone) {
                    // the thread ended while listed
                }
            }
        }
        return n;
    }

    private static int niceOf(String task) throws java.io.IOException {
        return io.bridgefs.server.ProcStat.nice(java.nio.file.Path.of(task));
    }
}
