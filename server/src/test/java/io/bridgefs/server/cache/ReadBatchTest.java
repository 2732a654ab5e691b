package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Batches of cold reads ({@link ReadBatch}) on a real file read with O_DIRECT and native AIO: every
 * request gets the file's bytes, resident pages are pinned rather than read, a request that meets a
 * page the batch is already filling is refused (and then read the usual way), end of file reads short,
 * a read the kernel refuses is read again synchronously, and a failed read reaches its request with
 * its frames dropped. The cache checks itself clean after each.
 */
class ReadBatchTest {
    static final int P = PageCache.PAGE_SIZE;
    @TempDir
    Path dir;

    private byte[] file(Path p, int size, long seed) throws IOException {
        byte[] b = new byte[size];
        new Random(seed).nextBytes(b);
        Files.write(p, b);
        return b;
    }

    private static byte[] bytes(PinnedRange r) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (ByteBuffer v : r.views()) {
            byte[] b = new byte[v.remaining()];
            v.duplicate().get(b);
            out.write(b, 0, b.length);
        }
        return out.toByteArray();
    }

    private static byte[] read(CachedFile f, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        f.read(IoPath.NBD, offset, b);
        byte[] out = new byte[length];
        b.flip().get(out);
        return out;
    }

    /** Runs {@code batch}, returning each answered request's bytes (or error) by id. */
    private static Map<Integer, Object> run(ReadBatch batch) throws IOException {
        Map<Integer, Object> got = new HashMap<>();
        int[] rounds = new int[1];
        try (batch) {
            batch.run(new ReadBatch.Done() {
                @Override
                public void done(int id, PinnedRange pinned, IOException error) {
                    assertNull(got.put(id, error != null ? error : bytes(pinned)), "answered once: " + id);
                    if (pinned != null) pinned.release();
                }

                @Override
                public void round() {
                    rounds[0]++;
                }
            });
        }
        assertTrue(rounds[0] >= 1);
        return got;
    }

    @Test
    void aBatchReadsWhatTheFileHolds() throws Exception {
        Path p = dir.resolve("disk.img");
        int size = (8 << 20) - 1000;                                   // the last page is partly past the end
        byte[] data = file(p, size, 1);
        PageCache cache = new PageCache(4L << 20, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(7, 1), FileBackingStore.open(p, false), false);
        assertTrue(ReadBatch.possible(f), "O_DIRECT and native AIO on the test's file system");
        f.read(IoPath.NBD, 3 * P, ByteBuffer.allocateDirect(2 * P));          // pages 3-4 resident
        long missesBefore = cache.snapshot().misses()[IoPath.NBD.ordinal()];
        long fillsBefore = cache.snapshot().fills()[IoPath.NBD.ordinal()];

        Random rnd = new Random(2);
        List<long[]> reqs = new ArrayList<>();
        reqs.add(new long[] {2 * P + 100, 3 * P});                 // a run, two resident pages, a run
        reqs.add(new long[] {size - 5000, 5000});                   // the file's last bytes: a short read
        for (int i = 0; i < 30; i++) reqs.add(new long[] {rnd.nextInt(size - (64 << 10)), 1 + rnd.nextInt(64 << 10)});
        reqs.add(new long[] {reqs.get(5)[0], 10});                  // a page request 5 is filling: refused
        ReadBatch batch = ReadBatch.open(f);
        assertNotNull(batch);
        List<Integer> refused = new ArrayList<>();
        for (int i = 0; i < reqs.size(); i++) if (!batch.add(i, f, IoPath.NBD, reqs.get(i)[0], (int) reqs.get(i)[1])) refused.add(i);
        assertTrue(refused.contains(reqs.size() - 1), "a page being filled by the batch is left to the usual path");
        Map<Integer, Object> got = run(batch);

        for (int i = 0; i < reqs.size(); i++) {
            int off = (int) reqs.get(i)[0], len = (int) reqs.get(i)[1];
            byte[] want = Arrays.copyOfRange(data, off, off + len);
            if (refused.contains(i)) {
                assertFalse(got.containsKey(i));
                assertArrayEquals(want, read(f, off, len), "request " + i + " the usual way");
            } else {
                assertArrayEquals(want, (byte[]) got.get(i), "request " + i + " at " + off + " length " + len);
            }
        }
        cache.quiesce();                  // the usual path's read-ahead fills in the background
        CacheStats s = cache.snapshot();
        assertEquals(s.misses()[IoPath.NBD.ordinal()] - missesBefore, s.fills()[IoPath.NBD.ordinal()] - fillsBefore,
                "every page missed was filled once");
        assertEquals(0, s.pinnedPages());
        assertEquals(List.of(), cache.verify());
        cache.close();
        f.store.close();
    }

    /** The O_DIRECT descriptor given out is one the kernel will not read (write-only); reads work through the store. */
    private static final class RefusingStore implements BackingStore {
        final BackingStore real;
        final int writeOnly;
        boolean fail;
        Error error;

        RefusingStore(Path p) throws IOException {
            real = FileBackingStore.open(p, true);
            writeOnly = Posix.open(p.toString(), 1 /* O_WRONLY */ | Posix.O_DIRECT | Posix.O_CLOEXEC);
        }

        @Override public int directFd() { return writeOnly; }
        @Override public boolean sparse() { return real.sparse(); }
        @Override public boolean directIo() { return true; }
        @Override public void sync() throws IOException { real.sync(); }
        @Override public void truncate(long size) throws IOException { real.truncate(size); }
        @Override public boolean punchHole(long offset, long length) throws IOException { return real.punchHole(offset, length); }
        @Override public Extent extentAt(long offset, long limit) throws IOException { return real.extentAt(offset, limit); }
        @Override public long size() throws IOException { return real.size(); }
        @Override public int read(ByteBuffer dst, long position) throws IOException { return real.read(dst, position); }
        @Override public void write(ByteBuffer src, long position) throws IOException { real.write(src, position); }
        @Override public int readPages(ByteBuffer[] pages, int count, long position) throws IOException {
            if (error != null) throw error;
            if (fail) throw new Posix.ErrnoException("preadv", 5);
            return real.readPages(pages, count, position);
        }
        @Override public void close() throws IOException {
            Posix.close(writeOnly);
            real.close();
        }
    }

    @Test
    void aReadTheKernelRefusesIsReadAgainAndAFailureReachesItsRequest() throws Exception {
        Path p = dir.resolve("refused.img");
        byte[] data = file(p, 1 << 20, 3);
        PageCache cache = new PageCache(1L << 20, CacheMode.WRITEBACK);
        RefusingStore store = new RefusingStore(p);
        CachedFile f = cache.open(new FileKey(7, 2), store, true);
        ReadBatch batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 10 * P, 3 * P));
        assertTrue(batch.add(1, f, IoPath.NBD, 40 * P + 7, 100));
        Map<Integer, Object> got = run(batch);
        assertArrayEquals(Arrays.copyOfRange(data, 10 * P, 13 * P), (byte[]) got.get(0));
        assertArrayEquals(Arrays.copyOfRange(data, 40 * P + 7, 40 * P + 107), (byte[]) got.get(1));

        store.fail = true;
        batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 60 * P, 2 * P));
        assertTrue(batch.add(1, f, IoPath.NBD, 10 * P, P));             // resident: answered whatever the disk does
        got = run(batch);
        assertInstanceOf(IOException.class, got.get(0), "the read's error reaches its request");
        assertArrayEquals(Arrays.copyOfRange(data, 10 * P, 11 * P), (byte[]) got.get(1));
        assertEquals(0, cache.snapshot().pinnedPages());
        assertEquals(List.of(), cache.verify(), "the failed run's frames were dropped");
        store.fail = false;
        assertArrayEquals(Arrays.copyOfRange(data, 60 * P, 62 * P), read(f, 60 * P, 2 * P), "the pages are read again later");
        cache.close();
        store.close();
    }

    @Test
    void closingABatchThatNeverRanGivesItsFramesBack() throws Exception {
        Path p = dir.resolve("unrun.img");
        byte[] data = file(p, 1 << 20, 4);
        PageCache cache = new PageCache(1L << 20, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(7, 3), FileBackingStore.open(p, true), true);
        ReadBatch batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 0, 8 * P));
        assertTrue(cache.snapshot().pinnedPages() > 0);
        batch.close();
        assertFalse(batch.answered(0));
        assertEquals(0, cache.snapshot().pinnedPages());
        assertEquals(List.of(), cache.verify());
        assertArrayEquals(Arrays.copyOf(data, 8 * P), read(f, 0, 8 * P), "the pages are read the usual way after");
        cache.close();
        f.store.close();
    }

    @Test
    void pagesReadInABatchAreMergedWithTheirDuplicates() throws Exception {
        Path p = dir.resolve("dups.img");
        byte[] data = file(p, 1 << 20, 5);
        System.arraycopy(data, 0, data, 100 * P, 4 * P);             // pages 100-103 repeat pages 0-3
        Files.write(p, data);
        PageCache cache = new PageCache(1L << 20, CacheMode.WRITEBACK, DedupMode.MERGE);
        CachedFile f = cache.open(new FileKey(7, 4), FileBackingStore.open(p, true), true);
        ReadBatch batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 0, 4 * P));
        assertTrue(batch.add(1, f, IoPath.NBD, 50 * P, 2 * P));
        Map<Integer, Object> got = run(batch);
        batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 100 * P + 10, 4 * P - 10));
        got.putAll(Map.of(2, run(batch).get(0)));
        assertArrayEquals(Arrays.copyOfRange(data, 0, 4 * P), (byte[]) got.get(0));
        assertArrayEquals(Arrays.copyOfRange(data, 50 * P, 52 * P), (byte[]) got.get(1));
        assertArrayEquals(Arrays.copyOfRange(data, 100 * P + 10, 104 * P), (byte[]) got.get(2));
        CacheStats s = cache.snapshot();
        assertEquals(4, s.duplicateFills(IoPath.NBD), "the four repeated pages were filled as duplicates");
        assertEquals(4, s.dedupPagesSharing(), "and merged onto the frames of pages 0-3");
        assertEquals(0, s.pinnedPages());
        assertEquals(List.of(), cache.verify());
        cache.close();
        f.store.close();
    }

    @Test
    void aBatchThatThrowsGivesBackWhatItHeldWhenClosed() throws Exception {
        Path p = dir.resolve("throws.img");
        byte[] data = file(p, 1 << 20, 6);
        PageCache cache = new PageCache(1L << 20, CacheMode.WRITEBACK);
        RefusingStore store = new RefusingStore(p);
        CachedFile f = cache.open(new FileKey(7, 5), store, true);
        store.error = new AssertionError("a fault in the store");
        ReadBatch batch = ReadBatch.open(f);
        assertTrue(batch.add(0, f, IoPath.NBD, 0, 3 * P));
        assertTrue(batch.add(1, f, IoPath.NBD, 20 * P, 3 * P));
        assertThrows(AssertionError.class, () -> batch.run((id, pinned, error) -> fail("nothing is answered")));
        batch.close();
        assertFalse(batch.answered(0));
        assertFalse(batch.answered(1));
        assertEquals(0, cache.snapshot().pinnedPages(), "pins given back");
        assertEquals(List.of(), cache.verify(), "no frame left LOADING");
        store.error = null;
        assertArrayEquals(Arrays.copyOfRange(data, 20 * P, 23 * P), read(f, 20 * P, 3 * P), "and the file reads again");
        cache.close();
        store.close();
    }
}
