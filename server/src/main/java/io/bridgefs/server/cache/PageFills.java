package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * How one {@link CachedFile}'s pages get into the cache: reads and pins of ranges, filling runs of
 * missing pages from the backing store (hashed for duplicate counting and merging), and read-ahead with
 * the file's adaptive window (see {@link Readahead}).
 */
final class PageFills {
    private static final int PAGE = PageCache.PAGE_SIZE;
    private final CachedFile file;
    private final PageCache cache;
    // read-ahead (guarded by cache.lock): the export's policy, the current window, and how many of the
    // pages last read ahead were then read
    private Readahead readahead = Readahead.auto(false);
    private boolean readaheadSet;
    int raWindow = -1;
    private int raIssued, raUsed;
    // where the file's recent read requests ended (page after their last; guarded by cache.lock): a
    // miss at one of them continues a stream, one anywhere else is a random read, whatever is resident.
    // Made on the first read and dropped on close: a closed file kept for its pages does not hold it.
    private long[] recentEnds;
    private int recentNext;

    PageFills(CachedFile file) {
        this.file = file;
        this.cache = file.cache;
    }

    /** With the cache lock held: a read request for pages [first, last] starts (see {@link #readaheadLimit}). */
    private void noteRead(long first, long last) {
        if (recentEnds == null) {
            recentEnds = new long[32];
            Arrays.fill(recentEnds, -1);
        }
        recentEnds[recentNext] = last + 1;
        recentNext = (recentNext + 1) & (recentEnds.length - 1);
    }

    /** With the cache lock held: whether a recent read request ended right before {@code page}. */
    private boolean continuesRead(long page) {
        if (recentEnds != null) for (long e : recentEnds) if (e == page) return true;
        return false;
    }

    /** With the cache lock held: the file is closed; the streams it had end with it. */
    void forgetStreams() {
        recentEnds = null;
        recentNext = 0;
    }

    /** The read-ahead of the export that opened this file (set when it is first opened). */
    void readahead(Readahead r) {
        cache.lock.lock();
        try {
            readahead = r;
            readaheadSet = true;
            raWindow = r.initialPages();
            raIssued = 0;
            raUsed = 0;
        } finally {
            cache.lock.unlock();
        }
    }

    /** Sets the read-ahead unless an export already did (the first export to open a file decides). */
    void readaheadIfUnset(Readahead r) {
        cache.lock.lock();
        try {
            if (!readaheadSet) readahead(r);
        } finally {
            cache.lock.unlock();
        }
    }

    /** With the cache lock held: a page read ahead was read. */
    void readaheadUsed() {
        raUsed++;
    }

    /** With the cache lock held: a page read ahead was evicted unread; auto halves the window. */
    void readaheadWasted() {
        if (readahead.adaptive()) raWindow = Math.max(1, raWindow / 2);
    }

    /** The current read-ahead window in pages (for tests and the stats). */
    int readaheadWindow() {
        cache.lock.lock();
        try {
            return raWindow;
        } finally {
            cache.lock.unlock();
        }
    }

    boolean readIfResident(IoPath path, long offset, ByteBuffer dst) {
        int length = dst.remaining();
        if (length == 0) return true;
        PinnedRange pinned = pinIfResident(path, offset, length);
        if (pinned == null) return false;
        try {
            for (ByteBuffer view : pinned.views()) dst.put(view);
        } finally {
            pinned.release();
        }
        return true;
    }

    /**
     * Pins [offset, offset + length) if every page of it is resident and VALID (at most one run long),
     * counting the hits; otherwise pins and counts nothing and returns null. Never waits.
     */
    PinnedRange pinIfResident(IoPath path, long offset, int length) {
        if (length <= 0) return null;
        int[] frames = pinResident(offset, length, path, false);
        return frames == null ? null : new PinnedRange(file, frames, offset, length);
    }

    PinnedRange pin(IoPath path, long offset, int length) throws IOException {
        if (length == 0 || cache.pinnedOverHalf()) return null;
        long firstPage = offset >>> PageCache.PAGE_SHIFT;
        long lastPage = (offset + length - 1) >>> PageCache.PAGE_SHIFT;
        int pages = (int) (lastPage - firstPage + 1);
        int[] frames = new int[pages];
        int have = 0;
        int[] run = new int[cache.maxRun];
        boolean noted = false;
        try {
            while (have < pages) {
                long page = firstPage + have;
                int count = 0;
                boolean miss = false;
                cache.lock.lock();
                try {
                    if (!noted) {
                        noteRead(firstPage, lastPage);
                        noted = true;
                    }
                    int f = cache.tryLookup(file, page, path);
                    if (f >= 0) {
                        frames[have++] = f;
                        while (have < pages && (f = cache.tryLookupAfter(file, firstPage + have, path, f)) >= 0) frames[have++] = f;
                        continue;
                    }
                    if (cache.peek(file, page) >= 0) {
                        // being filled by someone else (read-ahead, or a request before this one): wait
                        // for it, but never while holding pins (a discard waits under the punch lock for
                        // pinned pages, and a fill for that lock): let go of them, wait, start over. Sequential
                        // cold reads meet read-ahead's pages here; returning null instead sent about half of
                        // a cold nbdcopy's requests down the copying path (session 16)
                        file.unpinAll(frames, have);
                        have = 0;
                        cache.changed.awaitUninterruptibly();
                        continue;
                    }
                    long limit = readaheadLimit(page, page == firstPage, lastPage, run.length);
                    count = allocateRun(path, page, limit, lastPage, run);
                    if (count == 0) return null;
                    miss = true;
                } finally {
                    cache.lock.unlock();
                }
                if (miss) {
                    int wanted = (int) Math.min(count, lastPage - page + 1);
                    fillWithReadahead(path, run, count, wanted, page);
                    System.arraycopy(run, 0, frames, have, wanted);
                    have += wanted;
                }
            }
            PinnedRange r = new PinnedRange(file, frames, offset, length);
            frames = null;
            return r;
        } finally {
            if (frames != null) file.unpinAll(frames, have);
        }
    }

    void transfer(IoPath path, long offset, ByteBuffer dst, int length, boolean copy, boolean readahead) throws IOException {
        int[] run = new int[cache.maxRun];
        long pos = offset;
        long end = offset + length;
        long lastPage = (end - 1) >>> PageCache.PAGE_SHIFT;
        boolean noted = !readahead;          // a read request is noted once, also when it waits for a frame and retries
        while (pos < end) {
            long page = pos >>> PageCache.PAGE_SHIFT;
            int count = 0;
            boolean miss = false;
            cache.lock.lock();
            try {
                if (!noted) {
                    noteRead(page, lastPage);
                    noted = true;
                }
                int fr = cache.lookup(file, page, path);
                if (fr >= 0) {
                    // a run of resident pages is pinned under one lock acquisition
                    run[count++] = fr;
                    for (long pg = page + 1; pg <= lastPage && count < run.length; pg++) {
                        int f = cache.tryLookupAfter(file, pg, path, run[count - 1]);
                        if (f < 0) break;
                        run[count++] = f;
                    }
                } else {
                    long limit = readaheadLimit(page, readahead && page == offset >>> PageCache.PAGE_SHIFT, lastPage, run.length);
                    count = allocateRun(path, page, limit, lastPage, run);
                    if (count == 0) {
                        cache.flusher.awaitFrame();
                        continue;
                    }
                    miss = true;
                }
            } finally {
                cache.lock.unlock();
            }
            if (miss) {
                int wanted = (int) Math.min(count, lastPage - page + 1);
                fillWithReadahead(path, run, count, wanted, page);
                count = wanted;
            }
            try {
                for (int i = 0; i < count && pos < end; i++) {
                    int in = (int) (pos & (PAGE - 1));
                    int n = (int) Math.min(PAGE - in, end - pos);
                    if (copy) dst.put(cache.data(run[i]).position(in).limit(in + n));
                    pos += n;
                }
            } finally {
                file.unpinAll(run, count);
            }
        }
    }

    /** See {@link CachedFile#readAhead}. */
    void ahead(IoPath path, long offset, long length) throws IOException {
        if (length <= 0 || file.size == 0) return;
        long last = Math.min((offset + length - 1) >>> PageCache.PAGE_SHIFT, (file.size - 1) >>> PageCache.PAGE_SHIFT);
        int[] run = new int[cache.maxRun];
        for (long page = offset >>> PageCache.PAGE_SHIFT; page <= last; ) {
            int count;
            cache.lock.lock();
            try {
                while (page <= last && cache.resident(file, page)) page++;
                if (page > last) return;
                count = allocateRun(path, page, Math.min(last, page + run.length - 1), page - 1, run);
            } finally {
                cache.lock.unlock();
            }
            if (count == 0) return;                  // no frame free: it was only read-ahead
            fill(path, run, count, page, true);      // on failure the frames are dropped and this throws
            file.unpinAll(run, count);
            page += count;
        }
    }

    /**
     * With the cache lock held: gives frames (LOADING, pinned) to the absent pages from {@code page} up
     * to {@code limit}, stopping at a resident page or when no frame is free. Pages past
     * {@code lastPage} are read-ahead and do not count as used yet. Returns how many were given.
     */
    int allocateRun(IoPath path, long page, long limit, long lastPage, int[] run) {
        int count = 0;
        for (long pg = page; pg <= limit && count < run.length; pg++) {
            if (pg != page && cache.resident(file, pg)) break;
            int f = cache.allocate(file, pg, path, true);
            if (f < 0) break;
            if (pg > lastPage) {
                cache.meta.setFreq(f, -1);      // read ahead: not used yet
                raIssued++;
                cache.counters.readaheadPages++;
            }
            run[count++] = f;
        }
        return count;
    }

    /**
     * Fills the first {@code wanted} frames of a run now; the rest (read-ahead) is filled in the
     * background, so the request waits only for its own pages. Read-ahead frames stay LOADING until
     * filled (readers of those pages wait for them), then are unpinned.
     */
    void fillWithReadahead(IoPath path, int[] run, int count, int wanted, long firstPage) throws IOException {
        if (count > wanted) {
            int[] ahead = Arrays.copyOfRange(run, wanted, count);
            long aheadPage = firstPage + wanted;
            Runnable fillAhead = () -> {
                try {
                    fill(path, ahead, ahead.length, aheadPage, true);
                    file.unpinAll(ahead, ahead.length);
                } catch (IOException e) {
                    // the frames were dropped by fill(); a reader that wants them reads them itself
                }
            };
            if (!cache.readahead.offer(fillAhead)) fillAhead.run();   // the pool's queue is full: the reader fills it itself
        }
        fill(path, run, wanted, firstPage, true);
    }

    /**
     * The last page to fill for a miss at {@code page}: the request's last page, or, when a request
     * starts where one of the file's recent read requests ended (sequential access; O_DIRECT gets no
     * kernel readahead), the read-ahead window further (within one run). Not when the page before is
     * still being read for a request (not read-ahead): the client sent this request without waiting
     * for that one, so it queues ahead itself (nbdcopy, a guest's own read-ahead), and its requests are
     * read in parallel by the I/O threads, which read-ahead on the small pool would only hold up. Not
     * "right after a resident page" either: random reads into a filling cache often find one there (a
     * 10 s row of cold 4k random reads over NBD read up to ~50,000 pages ahead that way). Under auto the
     * window doubles when at least half of what was read ahead last time has been read since, and
     * halves when less has (a reader that jumped elsewhere).
     */
    long readaheadLimit(long page, boolean startOfRequest, long lastPage, int runLength) {
        if (readahead.maxPages() == 0 || !startOfRequest || page == 0 || !continuesRead(page)) return lastPage;
        int before = cache.peek(file, page - 1);
        if (before >= 0 && cache.meta.state(before) != PageCache.VALID && cache.meta.freq(before) >= 0) return lastPage;
        if (raWindow < 0) raWindow = readahead.initialPages();
        if (readahead.adaptive() && raIssued > 0) {
            // what was read ahead last time and has been read since: at least half, grow; less, shrink
            raWindow = raUsed * 2 >= raIssued ? Math.min(readahead.maxPages(), raWindow * 2) : Math.max(1, raWindow / 2);
        }
        raIssued = 0;
        raUsed = 0;
        long eofPage = file.size == 0 ? 0 : (file.size - 1) >>> PageCache.PAGE_SHIFT;
        return Math.max(lastPage, Math.min(Math.min(lastPage + raWindow, page + runLength - 1), eofPage));
    }

    /**
     * Reads a run of consecutive pages into their LOADING frames; on failure drops them and throws.
     * With {@code share} the pages are hashed for duplicate counting and merging; a page filled only to
     * be written at once is not (it must keep a private frame).
     */
    void fill(IoPath path, int[] run, int count, long firstPage, boolean share) throws IOException {
        int got;
        file.punchLock.readLock().lock();
        try {
            got = file.store.readPages(pages(run, count), count, firstPage << PageCache.PAGE_SHIFT);
        } catch (IOException | RuntimeException | Error e) {
            failFill(run, count);      // whatever went wrong, the frames must not stay LOADING: readers wait on them
            throw e;
        } finally {
            file.punchLock.readLock().unlock();
        }
        filled(path, run, count, got, share);
    }

    /** The memory of a run's frames, to read into. */
    ByteBuffer[] pages(int[] run, int count) {
        ByteBuffer[] pages = new ByteBuffer[count];
        for (int i = 0; i < count; i++) pages[i] = cache.data(run[i]);
        return pages;
    }

    /** A run's read failed: its LOADING frames are dropped (and unpinned). */
    void failFill(int[] run, int count) {
        cache.lock.lock();
        try {
            for (int i = 0; i < count; i++) cache.failFill(file, run[i]);
        } finally {
            cache.lock.unlock();
        }
    }

    /**
     * A run's read brought {@code got} bytes (fewer than the run only at end of file; the rest is
     * zeros): its frames become VALID, hashed first when {@code share}.
     */
    void filled(IoPath path, int[] run, int count, int got, boolean share) {
        long[] hashes = cache.dedup && share ? new long[count] : null;
        for (int i = 0; i < count; i++) {
            ByteBuffer page = cache.data(run[i]);
            CachedFile.zero(page, Math.max(0, Math.min(PAGE, got - i * PAGE)), PAGE);
            if (hashes != null) hashes[i] = ContentIndex.hash(page);
        }
        int[] matched = hashes == null ? null : new int[count];
        int[] held = hashes == null ? null : holdAndCompare(run, count, hashes, matched);
        cache.lock.lock();
        try {
            for (int i = 0; i < count; i++) {
                cache.completeFill(run[i], path, true, hashes == null ? -1 : hashes[i], matched == null ? -1 : matched[i]);
            }
            if (held != null) for (int c : held) if (c >= 0) cache.sharing.releaseCandidate(c);
        } finally {
            cache.lock.unlock();
        }
    }

    /**
     * For a batch of cold reads ({@link ReadBatch}), with the cache lock held: pins the resident pages
     * of [offset, offset + length) and gives the absent ones frames (LOADING, pinned; {@code loading}
     * marks them), without waiting and without read-ahead. Null, having pinned nothing, if a page is
     * being filled by someone else, the read continues a stream (read-ahead's business) or the cache is
     * short of frames: the usual path then reads it.
     */
    int[] plan(IoPath path, long offset, int length, boolean[] loading) {
        long first = offset >>> PageCache.PAGE_SHIFT, last = (offset + length - 1) >>> PageCache.PAGE_SHIFT;
        if (cache.pinnedOverHalf() || (readahead.maxPages() > 0 && first > 0 && continuesRead(first))) return null;
        int[] frames = new int[(int) (last - first + 1)];
        for (int i = 0; i < frames.length; i++) {
            int f = cache.peek(file, first + i);
            if (f >= 0 && cache.meta.state(f) != PageCache.VALID) return null;
        }
        for (int i = 0; i < frames.length; i++) {
            int f = cache.tryLookup(file, first + i, path);
            loading[i] = f < 0;
            if (f < 0 && (f = cache.allocate(file, first + i, path, true)) < 0) {
                for (int j = 0; j < i; j++) {          // counted, as a pin that meets a full cache is
                    if (loading[j]) cache.failFill(file, frames[j]);
                    else cache.unpin(frames[j]);
                }
                return null;
            }
            frames[i] = f;
        }
        noteRead(first, last);
        return frames;
    }

    /**
     * For each hashed page of a fill, a resident frame with the same hash is held, and its bytes are
     * compared with the new page here, without the cache lock (a 4 KiB compare per duplicate would
     * otherwise hold up every other lookup). Returns the held frames (-1: none); {@code matched[i]} is
     * the held frame if its bytes are equal, else -1.
     */
    int[] holdAndCompare(int[] run, int count, long[] hashes, int[] matched) {
        int[] held = new int[count];
        cache.lock.lock();
        try {
            for (int i = 0; i < count; i++) held[i] = hashes[i] > 0 ? cache.sharing.holdCandidate(hashes[i]) : -1;
        } finally {
            cache.lock.unlock();
        }
        for (int i = 0; i < count; i++) {
            matched[i] = held[i] >= 0 && cache.memory.frame(held[i]).mismatch(cache.data(run[i])) < 0 ? held[i] : -1;
        }
        return held;
    }

    /**
     * Pins every page of [offset, offset + length) if all are resident and VALID, at most one run long
     * and, {@code forWrite}, none shares its memory frame (a write would have to copy it) and the dirty
     * limit has room for them all; counts the hits and returns the frames (for a write, out of the
     * content index, as {@link Sharing#prepareWrite} does). Otherwise pins and counts nothing and returns null.
     * Never waits: the network threads' fast paths use it.
     */
    int[] pinResident(long offset, long length, IoPath path, boolean forWrite) {
        long first = offset >>> PageCache.PAGE_SHIFT, last = (offset + length - 1) >>> PageCache.PAGE_SHIFT;
        if (last - first >= cache.maxRun) return null;
        int[] frames = new int[(int) (last - first + 1)];
        cache.lock.lock();
        try {
            if (forWrite && cache.dirtyPages + frames.length > cache.dirtyLimit) return null;
            for (int i = 0; i < frames.length; i++) {
                int f = cache.table.getAfter(file.id, first + i, i == 0 ? -1 : frames[i - 1]);
                if (f < 0 || cache.meta.state(f) != PageCache.VALID || (forWrite && cache.sharing.shared(f))) return null;
                frames[i] = f;
            }
            for (int f : frames) {
                cache.hit(f, path);
                if (forWrite) cache.mem.content.remove(cache.meta.mem(f));
            }
            if (!forWrite) noteRead(first, last);
            return frames;
        } finally {
            cache.lock.unlock();
        }
    }
}
