package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Counters with known values, eviction behaviour and file identity. */
class PageCacheTest {
    static final int P = PageCache.PAGE_SIZE;

    static void readPages(CachedFile f, IoPath path, long first, int count) throws IOException {
        for (long p = first; p < first + count; p++) f.read(path, p * P, ByteBuffer.allocate(P));
    }

    @Test
    void coldThenWarmReadCountsMissesFillsAndHits() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 1), new MemStore(40 * P), false);
        f.read(IoPath.NBD, 0, ByteBuffer.allocate(10 * P));
        CacheStats s = cache.snapshot();
        assertEquals(10, s.misses(IoPath.NBD));
        assertEquals(10, s.fills(IoPath.NBD));
        assertEquals(10L * P, s.fillBytes(IoPath.NBD));
        assertEquals(0, s.hits(IoPath.NBD));
        assertEquals(10L * P, s.cachedBytes());
        f.read(IoPath.NBD, 0, ByteBuffer.allocate(10 * P));
        s = cache.snapshot();
        assertEquals(10, s.hits(IoPath.NBD));
        assertEquals(10, s.fills(IoPath.NBD), "a warm read does not touch the backing store");
        assertEquals(0, s.hits(IoPath.NINEP));
    }

    @Test
    void aWriteIntoResidentPagesCopiesEachSourceToItsPlaceWhereverTheFramesAre() throws IOException {
        // with merging, entries take memory frames in the order they are filled: pages filled one at a
        // time in this order give runs of adjacent memory frames (0-1, 2-3) and breaks between them
        PageCache cache = new PageCache(1024 * P, CacheMode.WRITEBACK, DedupMode.MERGE);   // runs of up to 64 pages
        MemStore sa = new MemStore(8 * P);
        new java.util.Random(1).nextBytes(sa.data);
        CachedFile a = cache.open(new FileKey(1, 20), sa, false);
        a.readahead(Readahead.OFF);
        for (int p : new int[] {5, 0, 1, 7, 2, 3, 6, 4}) readPages(a, IoPath.NBD, p, 1);
        byte[] model = sa.data.clone();
        long offset = 1000;
        int[] sizes = {1, 4095, 7000, 1, 9000, 2 * P};     // sources that end inside, at and across page ends
        ByteBuffer[] srcs = new ByteBuffer[sizes.length];
        int total = 0;
        for (int i = 0; i < sizes.length; i++) {
            byte[] d = new byte[sizes[i]];
            java.util.Arrays.fill(d, (byte) (i + 1));
            System.arraycopy(d, 0, model, (int) offset + total, d.length);
            srcs[i] = ByteBuffer.allocateDirect(d.length).put(d).flip();
            total += d.length;
        }
        assertTrue(a.writeIfResident(IoPath.NBD, offset, srcs), "every page is resident, clean and unshared");
        for (ByteBuffer src : srcs) assertFalse(src.hasRemaining(), "each source is consumed");
        ByteBuffer got = ByteBuffer.allocate(8 * P);
        a.read(IoPath.NBD, 0, got);
        assertArrayEquals(model, got.array());
        a.flush();
        assertArrayEquals(model, sa.data, "what write-back writes");
        assertEquals(0, cache.snapshot().pinnedPages());
    }

    @Test
    void rereadingRecentlyEvictedPagesCountsRefaults() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK);
        CachedFile f = cache.open(new FileKey(1, 2), new MemStore(200 * P), false);
        f.readahead(Readahead.OFF);      // background fills would make the eviction order, and so the ghost, timing-dependent
        readPages(f, IoPath.NBD, 0, 200);                 // one pass: pages 0..135 are evicted in order
        assertEquals(136, cache.snapshot().evictions());
        assertEquals(0, cache.snapshot().refaults(IoPath.NBD));
        f.read(IoPath.NBD, 100L * P, ByteBuffer.allocate(10 * P));   // evicted recently: still in the ghost
        assertEquals(10, cache.snapshot().refaults(IoPath.NBD));
    }

    @Test
    void aSequentialScanDoesNotFlushTheHotSet() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK);
        CachedFile hot = cache.open(new FileKey(1, 3), new MemStore(20 * P), false);
        CachedFile big = cache.open(new FileKey(1, 4), new MemStore(500 * P), false);
        readPages(hot, IoPath.NBD, 0, 20);
        readPages(hot, IoPath.NBD, 0, 20);                // used twice: hot
        readPages(big, IoPath.NBD, 0, 500);               // a scan 8x the cache
        long hitsBefore = cache.snapshot().hits(IoPath.NBD);
        readPages(hot, IoPath.NBD, 0, 20);
        assertEquals(20, cache.snapshot().hits(IoPath.NBD) - hitsBefore, "every hot page survived the scan");
    }

    @Test
    void newPagesEvictCleanOnesWhileTheSmallQueueHoldsOnlyDirtyPages() throws IOException {
        // clean pages in the main queue (read twice), and a writer whose dirty pages fill the small queue
        // far past its share (2,000 of 20,000): a new page must evict a clean page, not wait for
        // write-back. Eviction used to go round the dirty pages until its budget ran out, and the writer
        // then wrote back its whole file for every new page (nbd-bench, session 29: 4k random writes
        // into a cache emptied by drop-caches at a third of the speed)
        PageCache cache = new PageCache(20_000L * P, CacheMode.WRITEBACK);
        CachedFile hot = cache.open(new FileKey(1, 40), new MemStore(6_000L * P), false);
        hot.readahead(Readahead.OFF);
        hot.read(IoPath.NBD, 0, ByteBuffer.allocate(6_000 * P));
        hot.read(IoPath.NBD, 0, ByteBuffer.allocate(6_000 * P));
        MemStore store = new MemStore(0);
        CachedFile w = cache.open(new FileKey(1, 41), store, false);
        byte[] page = new byte[P];
        for (int i = 0; i < 14_500; i++) {           // under the dirty limit (15,000 pages)
            page[0] = (byte) (i + 1);
            w.write(IoPath.NBD, (long) i * P, ByteBuffer.wrap(page), false);
        }
        CacheStats s = cache.snapshot();
        assertEquals(0, store.writes, "nothing was written back: clean pages made room");
        assertEquals(14_500L * P, s.dirtyBytes());
        assertEquals(500, s.evictions(), "14,000 entries were free; the next 500 pages each evicted a clean one");
        w.flush();
        for (int i = 0; i < 14_500; i++) assertEquals((byte) (i + 1), store.contents()[i * P]);
        assertEquals(List.of(), cache.verify());
    }

    @Test
    void bothPathsShareFramesOfOneHostFile() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK);
        MemStore store = new MemStore(16 * P);
        CachedFile viaNbd = cache.open(new FileKey(9, 77), store, false);
        CachedFile via9p = cache.open(new FileKey(9, 77), new MemStore(16 * P), false);
        assertSame(viaNbd, via9p, "one (dev, ino) is one cached file");
        viaNbd.read(IoPath.NBD, 0, ByteBuffer.allocate(8 * P));
        via9p.read(IoPath.NINEP, 0, ByteBuffer.allocate(8 * P));
        CacheStats s = cache.snapshot();
        assertEquals(8, s.crossPathHits(IoPath.NBD, IoPath.NINEP));
        assertEquals(0, s.crossPathHits(IoPath.NINEP, IoPath.NBD));
        assertEquals(8, s.sharedPages());
        assertEquals(0, s.fills(IoPath.NINEP));
    }

    @Test
    void dirtyPagesAreNeverEvictedAndFlushWritesThem() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK);
        MemStore store = new MemStore(0);
        CachedFile f = cache.open(new FileKey(1, 5), store, false);
        byte[] data = new byte[100 * P];                  // more dirty data than the cache holds
        new java.util.Random(5).nextBytes(data);
        f.write(IoPath.NBD, 0, ByteBuffer.wrap(data), false);
        f.flush();
        assertArrayEquals(data, store.contents());
        assertEquals(0, cache.snapshot().dirtyBytes());
        assertTrue(store.syncs > 0);
    }

    @Test
    void writeThroughWritesBeforeReturning() throws IOException {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITETHROUGH);
        MemStore store = new MemStore(4 * P);
        CachedFile f = cache.open(new FileKey(1, 6), store, false);
        f.write(IoPath.NBD, 100, ByteBuffer.wrap(new byte[] {1, 2, 3}), false);
        assertEquals(0, cache.snapshot().dirtyBytes());
        assertEquals(2, store.contents()[101]);
        assertEquals(0, store.syncs, "writethrough writes but does not sync");
        f.write(IoPath.NBD, 200, ByteBuffer.wrap(new byte[] {4}), true);
        assertEquals(1, store.syncs, "FUA syncs");
    }

    @Test
    void hostFilesUseODirectAndPunchHoles(@TempDir Path dir) throws IOException {
        Path img = dir.resolve("img");
        Files.write(img, new byte[64 * P]);
        try (FileBackingStore s = FileBackingStore.open(img, false)) {
            // /tmp or target on ext4/xfs supports both; tmpfs would not, and the stats say so
            String fs = Files.getFileStore(img).type();
            if (!fs.equals("tmpfs")) assertTrue(s.directIo(), "O_DIRECT on " + fs);
            assertTrue(s.punchHole(8 * P, 16 * P));
            BackingStore.Extent e = s.extentAt(8 * P, 64 * P);
            assertTrue(e.hole());
            assertEquals(16 * P, e.length());
        }
    }

    @Test
    void duplicateFillsZeroPagesAndSharingAreCountedExactly() throws IOException {
        PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK);
        byte[] f = new byte[16 * P];
        new java.util.Random(42).nextBytes(f);
        MemStore file = new MemStore(16 * P);
        System.arraycopy(f, 0, file.data, 0, f.length);
        MemStore image = new MemStore(64 * P);                     // holds F at page 8, zeros elsewhere
        System.arraycopy(f, 0, image.data, 8 * P, f.length);
        CachedFile viaP9 = cache.open(new FileKey(1, 10), file, false);
        CachedFile viaNbd = cache.open(new FileKey(1, 11), image, false);
        viaP9.read(IoPath.NINEP, 0, ByteBuffer.allocate(16 * P));
        assertEquals(0, cache.snapshot().duplicateFills(IoPath.NINEP));
        viaNbd.read(IoPath.NBD, 8L * P, ByteBuffer.allocate(16 * P));
        CacheStats s = cache.snapshot();
        assertEquals(16, s.duplicateFills(IoPath.NBD), "every page of the region was already resident as F");
        assertEquals(16L * P, s.duplicateFillBytes(IoPath.NBD));
        assertEquals(16, s.dedupPagesSharing());
        assertEquals(16L * P, s.dedupSavedBytes());
        viaNbd.read(IoPath.NBD, 0, ByteBuffer.allocate(8 * P));   // 8 zero pages
        s = cache.snapshot();
        assertEquals(8, s.zeroPages());
        assertEquals(16, s.duplicateFills(IoPath.NBD), "zero pages are counted apart, not as duplicates");
        viaNbd.write(IoPath.NBD, 8L * P, ByteBuffer.wrap(new byte[] {1}), false);   // one duplicate changes
        assertEquals(15, cache.snapshot().dedupPagesSharing());
        viaNbd.write(IoPath.NBD, 0, ByteBuffer.wrap(new byte[] {1}), false);
        assertEquals(7, cache.snapshot().zeroPages());
        PageCache off = new PageCache(256 * P, CacheMode.WRITEBACK, DedupMode.OFF);
        CachedFile a = off.open(new FileKey(1, 10), file, false);
        CachedFile b = off.open(new FileKey(1, 11), image, false);
        a.read(IoPath.NINEP, 0, ByteBuffer.allocate(16 * P));
        b.read(IoPath.NBD, 8L * P, ByteBuffer.allocate(16 * P));
        assertEquals(0, off.snapshot().duplicateFills(IoPath.NBD), "--dedup off counts nothing");
    }

    @Test
    void mergeMapsDuplicatePagesOntoOneFrameAndCopiesOnWrite() throws IOException {
        PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK, DedupMode.MERGE);
        byte[] f = new byte[16 * P];
        new java.util.Random(7).nextBytes(f);
        MemStore file = new MemStore(16 * P);
        System.arraycopy(f, 0, file.data, 0, f.length);
        MemStore image = new MemStore(64 * P);                     // holds F at page 8
        System.arraycopy(f, 0, image.data, 8 * P, f.length);
        CachedFile viaP9 = cache.open(new FileKey(1, 10), file, false);
        CachedFile viaNbd = cache.open(new FileKey(1, 11), image, false);
        viaP9.read(IoPath.NINEP, 0, ByteBuffer.allocate(16 * P));
        viaNbd.read(IoPath.NBD, 8L * P, ByteBuffer.allocate(16 * P));
        CacheStats s = cache.snapshot();
        assertEquals(DedupMode.MERGE, s.dedupMode());
        assertEquals(16, s.duplicateFills(IoPath.NBD));
        assertEquals(16, s.dedupPagesShared(), "each of F's frames now serves two keys");
        assertEquals(16, s.dedupPagesSharing());
        assertEquals(32, s.residentPages());
        assertEquals(16L * P, s.cachedBytes(), "32 resident pages in 16 frames");
        assertEquals(16L * P, s.dedupSavedBytes());

        viaNbd.write(IoPath.NBD, 8L * P, ByteBuffer.wrap(new byte[] {(byte) ~f[0]}), false);
        s = cache.snapshot();
        assertEquals(1, s.dedupCowBreaks());
        assertEquals(15, s.dedupPagesShared());
        assertEquals(17L * P, s.cachedBytes());
        assertArrayEquals(f, read(viaP9, IoPath.NINEP, 0, 16 * P), "the write through the image never reaches F");
        byte[] expectImage = java.util.Arrays.copyOf(f, f.length);
        expectImage[0] = (byte) ~f[0];
        assertArrayEquals(expectImage, read(viaNbd, IoPath.NBD, 8L * P, 16 * P));

        viaP9.write(IoPath.NINEP, P + 5, ByteBuffer.wrap(new byte[] {(byte) ~f[P + 5]}), false);   // the other side
        assertEquals(2, cache.snapshot().dedupCowBreaks());
        assertArrayEquals(java.util.Arrays.copyOfRange(f, P, 2 * P), read(viaNbd, IoPath.NBD, 9L * P, P));

        viaP9.truncate(2L * P + 100);      // F's page 2 is shared with image page 10: its tail must not be zeroed in place
        assertArrayEquals(java.util.Arrays.copyOfRange(f, 2 * P, 3 * P), read(viaNbd, IoPath.NBD, 10L * P, P));
        byte[] tail = read(viaP9, IoPath.NINEP, 2L * P, P);
        assertArrayEquals(java.util.Arrays.copyOfRange(f, 2 * P, 2 * P + 100), java.util.Arrays.copyOf(tail, 100));
        assertArrayEquals(new byte[P - 100], java.util.Arrays.copyOfRange(tail, 100, P));
        assertEquals(java.util.List.of(), cache.verify());

        viaP9.flush();
        viaNbd.flush();
        cache.dropClean();
        s = cache.snapshot();
        assertEquals(0, s.dedupPagesShared());
        assertEquals(0, s.cachedBytes());
        assertEquals(java.util.List.of(), cache.verify());
        assertArrayEquals(expectImage, read(viaNbd, IoPath.NBD, 8L * P, 16 * P), "after eviction the image reads back its own bytes");
        assertEquals((byte) ~f[0], image.data[8 * P]);
        assertEquals(f[0], file.data[0], "nor did it reach F on disk");
    }

    private static byte[] read(CachedFile file, IoPath path, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        file.read(path, offset, b);
        return b.array();
    }

    /** Runs written back, as "first+count". */
    static List<String> runs(MemStore store) {
        return store.runs.stream().map(r -> r[0] + "+" + r[1]).toList();
    }

    @Test
    void writeBackJoinsNearbyDirtyPagesThroughResidentCleanOnesButNeverThroughZerosOrAfterAHostChange() throws IOException {
        PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK);
        MemStore store = new MemStore(40 * P);
        for (int i = 0; i < 40 * P; i++) store.data[i] = (byte) (i / P + 1);
        Arrays.fill(store.data, 31 * P, 32 * P, (byte) 0);      // page 31 reads as zeros: it may be a hole
        CachedFile f = cache.open(new FileKey(1, 50), store, false);
        readPages(f, IoPath.NBD, 0, 40);
        cache.quiesce();      // background read-ahead holds its pins until its fill completes (CI saw 6 still pinned)
        for (int page : new int[] {2, 4, 6, 30, 32, 34}) f.write(IoPath.NBD, (long) page * P + 100, ByteBuffer.wrap(new byte[] {-1}), false);
        byte[] expected = store.data.clone();
        for (int page : new int[] {2, 4, 6, 30, 32, 34}) expected[page * P + 100] = -1;
        f.flush();
        // 7..29 is a gap of 23 pages (too far); page 31 is zeros (never written, it could be a hole)
        assertEquals(List.of("2+5", "30+1", "32+3"), runs(store));
        assertArrayEquals(expected, Arrays.copyOf(store.data, 40 * P));
        assertEquals(0, cache.snapshot().dirtyBytes());
        assertEquals(0, cache.snapshot().pinnedPages(), "the clean pages of the gaps were unpinned");

        // the host file changed behind the cache: its clean pages may be stale, so only dirty ones are written
        store.runs.clear();
        f.write(IoPath.NBD, 10L * P, ByteBuffer.wrap(new byte[] {-2}), false);
        f.write(IoPath.NBD, 12L * P, ByteBuffer.wrap(new byte[] {-2}), false);
        store.stamp++;
        f.flush();
        assertEquals(List.of("10+1", "12+1"), runs(store));
        f.close();
    }

    @Test
    void aRunIsCutBeforeAGapOfZerosAndKeepsTheGapsBeforeIt() throws IOException {
        PageCache cache = new PageCache(1024 * P, CacheMode.WRITEBACK);   // runs of up to 64 pages
        MemStore store = new MemStore(40 * P);
        for (int i = 0; i < 40 * P; i++) store.data[i] = (byte) (i / P + 1);
        Arrays.fill(store.data, 23 * P, 24 * P, (byte) 0);
        Arrays.fill(store.data, 31 * P, 32 * P, (byte) 0);
        CachedFile f = cache.open(new FileKey(1, 51), store, false);
        readPages(f, IoPath.NBD, 0, 40);
        cache.quiesce();
        int[] dirty = {2, 4, 6, 20, 22, 24, 26, 30, 32, 34};
        for (int page : dirty) f.write(IoPath.NBD, (long) page * P + 7, ByteBuffer.wrap(new byte[] {-3}), false);
        byte[] expected = store.data.clone();
        for (int page : dirty) expected[page * P + 7] = -3;
        f.flush();
        // one plan joins 2..34 across every gap; the zeros of page 23, then of 31, each cut it, the gaps
        // before them (3, 5, 7..19, 21; 25, 27..29; 33) written, and the next run begins after the cut
        assertEquals(List.of("2+21", "24+7", "32+3"), runs(store));
        assertArrayEquals(expected, Arrays.copyOf(store.data, 40 * P));
        assertEquals(0, cache.snapshot().dirtyBytes());
        assertEquals(0, cache.snapshot().pinnedPages(), "the gaps cut off and the gaps written were unpinned");
        assertEquals(List.of(), cache.verify());
        f.close();
    }

    @Test
    void theDirtyLimitIsASettingAndWritersAboveItWriteBack() throws IOException {
        for (int limit : new int[] {20, 75}) {
            PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK, DedupMode.SHADOW, Math.min(10, limit), limit);
            MemStore store = new MemStore(40 * P);
            CachedFile f = cache.open(new FileKey(1, 60 + limit), store, false);
            for (int page = 0; page < 30; page++) f.write(IoPath.NBD, (long) page * P, ByteBuffer.wrap(new byte[P]), false);
            long dirtyPages = cache.snapshot().dirtyBytes() / P;
            if (limit == 20) {
                assertTrue(dirtyPages <= 64 * 20 / 100, "a writer above a 20% limit writes back: " + dirtyPages + " dirty");
                assertTrue(store.writes > 0);
            } else {
                assertEquals(30, dirtyPages, "under the default 75% limit 30 of 64 pages stay dirty");
                assertEquals(0, store.writes);
            }
            f.close();
        }
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(80, 50));
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(25, 95));
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(-1, 75));
        assertEquals(PageCache.AUTO, io.bridgefs.server.config.ServerConfig.DirtyRatios.DEFAULT.backgroundPercent(), "auto by default");
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(25, 75, 20));
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(25, 75, -1));
        assertEquals(PageCache.FLUSHER_NICE, io.bridgefs.server.config.ServerConfig.DirtyRatios.DEFAULT.flusherNice());
        assertEquals(PageCache.WRITE_BEHIND, io.bridgefs.server.config.ServerConfig.DirtyRatios.DEFAULT.writeBehindBytes(), "8 MiB by default");
        assertThrows(IllegalArgumentException.class, () -> new io.bridgefs.server.config.ServerConfig.DirtyRatios(25, 75, 10, 100));
        assertEquals(0, new io.bridgefs.server.config.ServerConfig.DirtyRatios(25, 75, 10, 0).writeBehindBytes(), "off");
    }

    @Test
    void pinnedViewsJoinPagesWhoseFramesAreAdjacentAndHoldTheRightBytes() throws IOException {
        for (DedupMode dedup : DedupMode.values()) {
            PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK, dedup);
            MemStore store = new MemStore(64 * P);
            new java.util.Random(7).nextBytes(store.data);
            CachedFile f = cache.open(new FileKey(1, 70), store, false);
            f.read(IoPath.NBD, 0, ByteBuffer.allocate(64 * P));       // filled in runs, into adjacent frames
            long offset = 3 * P + 100;
            int length = 40 * P - 300;
            PinnedRange pinned = f.pin(IoPath.NBD, offset, length);
            ByteBuffer[] views = pinned.views();
            assertTrue(views.length < 41, dedup + ": " + views.length + " views for 41 pages");
            ByteBuffer all = ByteBuffer.allocate(length);
            for (ByteBuffer v : views) all.put(v);
            pinned.release();
            assertEquals(0, all.remaining());
            assertArrayEquals(Arrays.copyOfRange(store.data, (int) offset, (int) offset + length), all.array(), dedup.toString());
            f.close();
        }
    }

    @Test
    void afterDropCachesAFilesPagesAreFilledIntoNeighbouringFramesAgain() throws IOException {
        // drop-caches leaves the cache as a fresh one: the entries it frees go back to the ones no page
        // has had, where a file's pages take neighbouring frames, not to the queues, whose order (here a
        // random read's) scattered the next file's pages over the memory (nbd-bench, session 29: 1 MiB
        // writes into a cache emptied by drop-caches at 0.6-0.8 of the speed, with more and smaller
        // O_DIRECT requests for their write-back)
        PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK);
        CachedFile a = cache.open(new FileKey(1, 42), new MemStore(200 * P), false);
        a.readahead(Readahead.OFF);
        java.util.List<Integer> order = new java.util.ArrayList<>();
        for (int i = 0; i < 200; i++) order.add(i);
        java.util.Collections.shuffle(order, new java.util.Random(3));
        for (int p : order) readPages(a, IoPath.NBD, p, 1);
        a.read(IoPath.NBD, 0, ByteBuffer.allocate(200 * P));          // read again: the hits move them to main
        assertEquals(200, cache.dropClean());
        MemStore store = new MemStore(64 * P);
        new java.util.Random(8).nextBytes(store.data);
        CachedFile b = cache.open(new FileKey(1, 43), store, false);
        b.readahead(Readahead.OFF);
        readPages(b, IoPath.NBD, 0, 64);                   // a page per fill
        PinnedRange pinned = b.pin(IoPath.NBD, 0, 64 * P);
        ByteBuffer[] views = pinned.views();
        ByteBuffer all = ByteBuffer.allocate(64 * P);
        for (ByteBuffer v : views) all.put(v);
        pinned.release();
        assertTrue(views.length <= 2, views.length + " views for 64 pages filled one at a time");
        assertArrayEquals(store.data, all.array());
        assertEquals(List.of(), cache.verify());
        a.read(IoPath.NBD, 0, ByteBuffer.allocate(200 * P));          // the rest of the frames still serve
        assertEquals(0, cache.snapshot().dirtyBytes());
        assertEquals(List.of(), cache.verify());
    }

    /**
     * A zero-copy pin that meets a page still being filled waits for it instead of giving up (which sent
     * half of a cold sequential read's requests down the copying path), and holds no pins while it
     * waits (a discard waiting for pinned pages under the punch lock could otherwise wait for it).
     */
    @Test
    void pinWaitsForPagesBeingFilledHoldingNothingMeanwhile() throws Exception {
        PageCache cache = new PageCache(64 * P, CacheMode.WRITEBACK, DedupMode.SHADOW);
        MemStore store = new MemStore(8 * P);
        new java.util.Random(11).nextBytes(store.data);
        CachedFile f = cache.open(new FileKey(1, 71), store, false);
        f.readahead(Readahead.OFF);
        f.read(IoPath.NBD, 0, ByteBuffer.allocate(2 * P));                     // pages 0-1 resident
        store.readGate = new java.util.concurrent.CountDownLatch(1);
        Thread filler = new Thread(() -> {
            try {
                f.read(IoPath.NBD, 2 * P, ByteBuffer.allocate(2 * P));         // pages 2-3: LOADING at the gate
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        filler.start();
        assertTrue(store.readsAtGate.tryAcquire(10, java.util.concurrent.TimeUnit.SECONDS), "the fill reached the store");
        java.util.concurrent.atomic.AtomicReference<PinnedRange> got = new java.util.concurrent.atomic.AtomicReference<>();
        Thread reader = new Thread(() -> {
            try {
                got.set(f.pin(IoPath.NBD, 0, 4 * P));
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        reader.start();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (reader.getState() != Thread.State.WAITING && reader.isAlive() && System.nanoTime() < deadline) Thread.sleep(1);
        Thread.sleep(50);
        assertTrue(reader.isAlive(), "pin waits for the loading pages (it gave up: " + got.get() + ")");
        assertEquals(2, cache.snapshot().pinnedPages(), "only the filler's two loading pages are pinned while the reader waits");
        store.readGate.countDown();
        filler.join(10_000);
        reader.join(10_000);
        store.readGate = null;
        PinnedRange r = got.get();
        assertNotNull(r, "pinned once the fill completed");
        ByteBuffer all = ByteBuffer.allocate(4 * P);
        for (ByteBuffer v : r.views()) all.put(v);
        r.release();
        assertArrayEquals(Arrays.copyOfRange(store.data, 0, 4 * P), all.array());
        assertEquals(0, cache.snapshot().pinnedPages());
        f.close();
    }
}
