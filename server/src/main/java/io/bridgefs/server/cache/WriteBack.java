package io.bridgefs.server.cache;

import io.bridgefs.server.posix.Credentials;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.locks.ReentrantLock;

/**
 * How one {@link CachedFile}'s dirty pages reach its backing store: one write-back at a time, the dirty
 * pages pinned and written in page order as large runs (joined across short gaps of clean pages), then
 * marked clean unless written again meanwhile. Flush, FUA, the periodic timer and close write back all
 * of them; the background flusher a chunk at a time ({@link #writebackSome}).
 */
final class WriteBack {
    private static final int PAGE = PageCache.PAGE_SIZE;
    private final CachedFile file;
    private final PageCache cache;
    // one write-back of a file at a time: two at once (the periodic timer and a client's flush) could
    // interleave extendBacking's "is the file shorter than the cache says? then set its size" with the
    // other's writes past that size, and cut off pages just written and marked clean (found by the
    // kill -9 campaign: an fsync'd 9P append lost)
    private final ReentrantLock mutex = new ReentrantLock();

    WriteBack(CachedFile file) {
        this.file = file;
        this.cache = file.cache;
    }

    /** Closes the file's old store once a write-back that began before the file was closed has ended. */
    void closeAfterWriteBack(BackingStore old) throws IOException {
        mutex.lock();
        try {
            old.close();
        } finally {
            mutex.unlock();
        }
    }

    /** Writes back the file's dirty pages; with {@code sync} also fdatasyncs it. Pages stay dirty on failure. */
    void writeback(boolean sync) throws IOException {
        if (file.readOnly) return;
        file.punchLock.readLock().lock();
        mutex.lock();
        try {
            int[] dirty;
            int[] gens;
            cache.lock.lock();
            try {
                // closed meanwhile (the periodic write-back lists open files, then one is closed): it was
                // flushed by close(), and its descriptors are gone (a stale number may be another file's)
                if (file.closed) return;
                dirty = file.dirtyPages == 0 ? new int[0] : cache.dirty.of(file);
                gens = new int[dirty.length];
                for (int i = 0; i < dirty.length; i++) {
                    cache.pin(dirty[i]);
                    gens[i] = cache.meta.gen(dirty[i]);
                }
            } finally {
                cache.lock.unlock();
            }
            writeAndClean(dirty, gens, false);
            if (sync) file.store.sync();
        } finally {
            mutex.unlock();
            file.punchLock.readLock().unlock();
        }
    }

    /**
     * Writes the pinned {@code frames}, then marks clean those not written again since ({@code gens},
     * their generations when pinned) and unpins them all; {@code background}: the flusher's write-back, whose
     * pages are marked as cleaned by it (see {@link Flusher#rewritten}). Called with the mutex and the punch lock held.
     */
    private void writeAndClean(int[] frames, int[] gens, boolean background) throws IOException {
        boolean ok = false;
        try {
            writeRuns(frames);
            extendBacking();
            if (frames.length > 0) file.seenStamp = file.stampOrZero();   // our own writes moved mtime
            ok = true;
        } finally {
            cache.lock.lock();
            try {
                for (int i = 0; i < frames.length; i++) {
                    int f = frames[i];
                    if (ok && cache.meta.gen(f) == gens[i] && cache.meta.state(f) == PageCache.VALID) {
                        cache.dirty.clear(file, f);
                        if (background) cache.meta.setCleanedInBackground(f);
                    }
                    cache.unpin(f);
                }
            } finally {
                cache.lock.unlock();
            }
        }
    }

    // the background pass (guarded by the mutex): the frames dirty when it began, in page order, their
    // pages, and the next to look at
    private int[] passFrames = new int[0];
    private long[] passPages = new long[0];
    private int passAt;

    /**
     * Background write-back: at most {@code maxPages} dirty pages, in page order from where the last call
     * stopped, so that the flusher can stop as soon as the cache is back under its background share.
     * A pass covers the pages dirty when it began; pages dirtied later wait for the next pass. Returns
     * the number of dirty pages written: 0 only if the file has none that can be written now.
     */
    int writebackSome(int maxPages) throws IOException {
        if (file.readOnly) return 0;
        file.punchLock.readLock().lock();
        mutex.lock();
        try {
            boolean fresh = false;
            int[] frames = new int[maxPages];
            int[] gens = new int[maxPages];
            int n = 0;
            while (n == 0) {
                if (passAt >= passFrames.length) {
                    if (fresh || !newPass()) return 0;
                    fresh = true;
                }
                n = choose(maxPages, frames, gens);
            }
            writeAndClean(Arrays.copyOf(frames, n), Arrays.copyOf(gens, n), true);
            return n;
        } finally {
            mutex.unlock();
            file.punchLock.readLock().unlock();
        }
    }

    /** Begins a background pass over the frames dirty now (sorted without the cache lock). False if the file is closed. */
    private boolean newPass() {
        int[] dirty;
        long[] pages;
        cache.lock.lock();
        try {
            if (file.closed) return false;
            dirty = file.dirtyPages == 0 ? new int[0] : cache.dirty.of(file);
            pages = new long[dirty.length];
            for (int i = 0; i < dirty.length; i++) pages[i] = cache.meta.page(dirty[i]);
        } finally {
            cache.lock.unlock();
        }
        long[] order = sortedByPage(pages);
        passFrames = new int[dirty.length];
        passPages = new long[dirty.length];
        for (int i = 0; i < order.length; i++) {
            passFrames[i] = dirty[(int) order[i]];
            passPages[i] = pages[(int) order[i]];
        }
        passAt = 0;
        return true;
    }

    /**
     * Pins the pass's next frames that still hold their page and are still dirty, up to {@code max}, into
     * {@code frames} (with their generations). Looks at no more than four times {@code max} of them, so
     * the cache lock is held briefly. Returns how many it pinned.
     */
    private int choose(int max, int[] frames, int[] gens) {
        int n = 0;
        int end = (int) Math.min(passFrames.length, passAt + 4L * max);
        cache.lock.lock();
        try {
            if (file.closed) {
                passAt = passFrames.length;
                return 0;
            }
            while (n < max && passAt < end) {
                int f = passFrames[passAt];
                long page = passPages[passAt++];
                if (cache.meta.state(f) != PageCache.VALID || !cache.meta.dirty(f) || cache.meta.file(f) != file.id || cache.meta.page(f) != page) continue;
                cache.pin(f);
                gens[n] = cache.meta.gen(f);
                frames[n++] = f;
            }
        } finally {
            cache.lock.unlock();
        }
        return n;
    }

    /**
     * A write past the end grows the file in the cache; if its pages were discarded before write-back
     * (a trim of what was just written), no page write carries the new size to the backing file, so it
     * is set here. Called with the punch lock read-held.
     */
    private void extendBacking() throws IOException {
        long want = file.size;
        boolean grow;
        cache.lock.lock();
        try {
            grow = want > file.backingSize;
        } finally {
            cache.lock.unlock();
        }
        if (!grow || file.store.size() >= want) return;
        Credentials.asServer(() -> {            // the server's work, as FileBackingStore's writes are
            file.store.truncate(want);
            return null;
        });
        cache.lock.lock();
        try {
            file.backingSize = Math.max(file.backingSize, want);
        } finally {
            cache.lock.unlock();
        }
    }

    /** Clean pages written with their dirty neighbours to make one run of two (see {@link #writeRuns}). */
    static final int MAX_GAP = 16;

    /**
     * Writes the (pinned) dirty frames in runs of adjacent pages. Dirty pages at most {@link #MAX_GAP}
     * pages apart are joined into one run by writing the resident clean pages between them too: one
     * large write instead of many small ones (random 4k writes leave dirty pages scattered; the disk
     * takes a 2 MiB write in about the time of ten 4k ones). A gap is written only if every page in it is
     * resident and VALID and not all zeros (it may be a hole, which must stay one), and only while the
     * host file is as this cache last saw it (a clean page is then what the file holds).
     * The cache lock is taken twice per run (to plan it, then to note it written), not once per gap:
     * random 4k writes leave a gap after most dirty pages (with a third of a file's pages dirty, one
     * every page or two), and every hold is one a network thread may find taken.
     */
    private void writeRuns(int[] frames) throws IOException {
        if (frames.length == 0) return;
        long[] order = sortedByPage(frames);
        long limit = file.size;
        boolean fillGaps = frames.length > 1 && file.store.stamp() == file.seenStamp;
        Run run = new Run(cache.maxRun);
        int i = 0;
        while (i < frames.length) {
            long written = 0;
            try {
                i = run.plan(frames, order, i, fillGaps);
                i = run.dropZeroGaps(i);
                long start = run.first << PageCache.PAGE_SHIFT;
                long len = Math.min((long) run.count * PAGE, limit - start);
                if (len > 0) {
                    int pagesToWrite = (int) ((len + PAGE - 1) / PAGE);
                    ByteBuffer[] pages = new ByteBuffer[pagesToWrite];
                    for (int k = 0; k < pagesToWrite; k++) pages[k] = cache.data(run.frames[k]);
                    file.store.writePages(pages, pagesToWrite, start, (int) (len - (long) (pagesToWrite - 1) * PAGE));
                    written = len;
                }
            } finally {
                run.finish(written);
            }
        }
    }

    /**
     * One run being written: its frames (dirty ones and the pinned clean pages of the gaps between
     * them), and where each gap lies, so that a gap found to hold zeros can be cut off with what follows.
     */
    private final class Run {
        final int[] frames;
        long first;
        int count;
        private final int[] gapAt, gapLen, gapNext;   // position in the run, pages, index of the dirty frame after it
        private int gaps;

        Run(int max) {
            frames = new int[max];
            gapAt = new int[max];
            gapLen = new int[max];
            gapNext = new int[max];
        }

        /**
         * Under one hold of the cache lock: the run starting at the dirty frame {@code dirty[order[i]]},
         * joining the next ones across gaps whose pages are all resident and VALID (pinned here).
         * Returns the index of the first dirty frame not in the run.
         */
        int plan(int[] dirty, long[] order, int i, boolean fillGaps) {
            gaps = 0;
            count = 0;
            frames[count++] = dirty[(int) order[i]];
            first = cache.meta.page(dirty[(int) order[i++]]);
            cache.lock.lock();
            try {
                while (i < dirty.length && count < frames.length) {
                    long next = cache.meta.page(dirty[(int) order[i]]);
                    int gap = (int) Math.min(Integer.MAX_VALUE, next - (first + count));
                    if (gap > 0) {
                        if (!fillGaps || gap > MAX_GAP || count + gap >= frames.length) break;
                        if (!pinGap(first + count, gap)) break;
                        gapAt[gaps] = count;
                        gapLen[gaps] = gap;
                        gapNext[gaps++] = i;
                        count += gap;
                    }
                    frames[count++] = dirty[(int) order[i++]];
                }
            } finally {
                cache.lock.unlock();
            }
            return i;
        }

        /** With the cache lock held: pins the gap's pages into the run if all are resident and VALID, else none. */
        private boolean pinGap(long page, int n) {
            for (int k = 0; k < n; k++) {
                int f = cache.peek(file, page + k);
                if (f < 0 || cache.meta.state(f) != PageCache.VALID) return false;
                frames[count + k] = f;
            }
            for (int k = 0; k < n; k++) cache.pin(frames[count + k]);
            return true;
        }

        /**
         * Without the lock: cuts the run before its first gap holding a page of zeros (unpinning that gap
         * and the later ones). Returns the index of the first dirty frame not in the run.
         */
        int dropZeroGaps(int i) {
            for (int g = 0; g < gaps; g++) {
                for (int k = gapAt[g]; k < gapAt[g] + gapLen[g]; k++) {
                    if (!allZero(cache.data(frames[k]))) continue;
                    cache.lock.lock();
                    try {
                        unpinGaps(g);
                    } finally {
                        cache.lock.unlock();
                    }
                    count = gapAt[g];
                    int next = gapNext[g];
                    gaps = g;
                    return next;
                }
            }
            return i;
        }

        /** Under one hold of the lock: notes {@code len} bytes written from the run's first page (0: none) and unpins its gaps. */
        void finish(long len) {
            cache.lock.lock();
            try {
                if (len > 0) {
                    file.backingSize = Math.max(file.backingSize, (first << PageCache.PAGE_SHIFT) + len);
                    cache.counters.writebackBytes += len;
                }
                unpinGaps(0);
                gaps = 0;
            } finally {
                cache.lock.unlock();
            }
        }

        /** With the cache lock held: unpins the pages of gaps {@code from}.. of the run. */
        private void unpinGaps(int from) {
            for (int g = from; g < gaps; g++) {
                for (int j = gapAt[g]; j < gapAt[g] + gapLen[g]; j++) cache.unpin(frames[j]);
            }
        }
    }

    private static boolean allZero(ByteBuffer frame) {
        for (int k = 0; k < PAGE; k += 8) if (frame.getLong(k) != 0) return false;
        return true;
    }

    private long[] sortedByPage(int[] frames) {
        long[] pages = new long[frames.length];
        for (int i = 0; i < frames.length; i++) pages[i] = cache.meta.page(frames[i]);
        return sortedByPage(pages);
    }

    /** The indexes of {@code pages} in page order. */
    private static long[] sortedByPage(long[] pages) {
        int count = pages.length;
        long[] order = new long[count];
        boolean packable = true;
        for (long p : pages) packable &= p < (1L << 35);
        if (packable) {
            // page in the high bits, index in the low 28: one primitive sort
            for (int i = 0; i < count; i++) order[i] = (pages[i] << 28) | i;
            Arrays.sort(order);
            for (int i = 0; i < count; i++) order[i] &= (1L << 28) - 1;
            return order;
        }
        Integer[] idx = new Integer[count];
        for (int i = 0; i < count; i++) idx[i] = i;
        Arrays.sort(idx, (a, b) -> Long.compare(pages[a], pages[b]));
        for (int i = 0; i < count; i++) order[i] = idx[i];
        return order;
    }
}
