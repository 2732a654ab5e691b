package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import io.bridgefs.server.HeapProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A closed file kept for its cached pages costs heap, and a cache of one-page files could keep one per
 * page: the cache keeps at most {@link MetadataHeap#closedFiles} of them, evicting the pages of the
 * file closed longest ago, and the JVM's heap is sized for that many ({@link MetadataHeap#closedFilesHeap}).
 */
class ClosedFilesBoundTest {
    private static final int PAGE = PageCache.PAGE_SIZE;

    private static byte[] page(int i) {
        byte[] b = new byte[PAGE];
        for (int j = 0; j < PAGE; j += 8) b[j] = (byte) (i * 31 + j);
        b[1] = (byte) i;
        b[2] = (byte) (i >> 8);
        return b;
    }

    private static MemStore store(int i) {
        MemStore s = new MemStore(PAGE);
        System.arraycopy(page(i), 0, s.data, 0, PAGE);
        return s;
    }

    private static byte[] read(CachedFile f) throws Exception {
        ByteBuffer dst = ByteBuffer.allocate(PAGE);
        f.read(IoPath.NINEP, 0, dst);
        return dst.array();
    }

    @Test
    void closedFilesPastTheBoundHaveTheirPagesEvictedOldestFirst() throws Exception {
        long size = 16 << 20;           // 4,096 pages: room for far more one-page files than the bound
        int limit = MetadataHeap.closedFiles(size);
        int n = limit * 3;
        assertTrue(n < size / PAGE, "the cache itself must not be what evicts here");
        try (PageCache c = new PageCache(size, CacheMode.WRITEBACK, DedupMode.SHADOW, 25, 75)) {
            for (int i = 0; i < n; i++) {
                try (CachedFile f = c.open(new FileKey(7, i), store(i), true)) {
                    assertArrayEquals(page(i), read(f));
                }
                c.lock.lock();
                try {
                    assertTrue(c.registry.closedCount() <= limit, "closed files kept after " + (i + 1) + ": " + c.registry.closedCount());
                } finally {
                    c.lock.unlock();
                }
            }
            CacheStats s = c.snapshot();
            assertEquals((long) limit * PAGE, s.cachedBytes(), "one page for each closed file kept");
            assertEquals(n - limit, s.evictions(), "the others' pages were evicted, and counted");
            assertEquals(List.of(), c.verify());
            for (int i = 0; i < n; i++) {
                boolean kept;
                c.lock.lock();
                try {
                    kept = c.registry.byKeyLocked(new FileKey(7, i)) != null;
                } finally {
                    c.lock.unlock();
                }
                assertEquals(i >= n - limit, kept, "file " + i + ": the most recently closed are kept");
            }
            // a file whose pages went comes back as a refault (the ghost knows it by device and inode,
            // though it gets a new id), and with its own bytes
            long refaults = c.snapshot().refaults(IoPath.NINEP);
            try (CachedFile f = c.open(new FileKey(7, 0), store(0), true)) {
                assertArrayEquals(page(0), read(f));
            }
            assertEquals(refaults + 1, c.snapshot().refaults(IoPath.NINEP));
            assertEquals(List.of(), c.verify());
        }
    }

    @Test
    void aClosedFileTakesNoMoreHeapThanTheSizingAllowsFor(@TempDir Path dir) throws Exception {
        int n = 4000;
        for (int i = 0; i < n; i++) Files.write(dir.resolve("f" + i), page(i));
        long size = 64 << 20;            // 16,384 pages; the bound is above n
        assertTrue(MetadataHeap.closedFiles(size) >= n);
        try (PageCache c = new PageCache(size, CacheMode.WRITEBACK, DedupMode.SHADOW, 25, 75)) {
            // open and read a few first, so that classes and buffers used once are not counted
            for (int i = 0; i < 50; i++) {
                try (CachedFile f = c.open(dir.resolve("f" + i), true)) {
                    read(f);
                }
            }
            long before = HeapProbe.usedHeapAfterGc();
            for (int i = 50; i < n; i++) {
                try (CachedFile f = c.open(dir.resolve("f" + i), true)) {
                    assertArrayEquals(page(i), read(f));
                }
            }
            long perFile = (HeapProbe.usedHeapAfterGc() - before) / (n - 50);
            assertEquals((long) n * PAGE, c.snapshot().cachedBytes(), "every file is kept for its page");
            System.out.println("heap per closed file with a cached page: " + perFile + " bytes");
            assertTrue(perFile <= MetadataHeap.CLOSED_FILE_BYTES,
                    "a closed file takes " + perFile + " bytes of heap, the sizing allows " + MetadataHeap.CLOSED_FILE_BYTES);
        }
    }
}
