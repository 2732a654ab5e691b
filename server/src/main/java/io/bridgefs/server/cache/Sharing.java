package io.bridgefs.server.cache;

/**
 * Content sharing in the {@link PageCache}: what a write or a truncate must do to a memory frame other
 * keys may share (copy it first, or drop the page), what a fill whose bytes equal a resident page
 * becomes (counted as a duplicated fill; under merge, mapped onto that page's frame), and the per-entry
 * zero and duplicate marks behind the {@code zero_pages} and {@code dedup_pages} counters. Every method
 * runs with the cache lock held; see the package documentation, "Entries and memory frames; merging".
 */
final class Sharing {
    private final PageCache c;
    private final boolean[] zero;     // resident all-zero page (filled from storage)
    private final boolean[] dup;      // resident page whose content was already resident at fill

    Sharing(PageCache cache) {
        this.c = cache;
        this.zero = new boolean[cache.frames];
        this.dup = new boolean[cache.frames];
    }

    /** Whether other entries (or a detached reader) share this entry's memory frame: it must not be written in place. */
    boolean shared(int f) {
        return c.mem.shared(c.meta.mem(f));
    }

    /**
     * Before a writer copies into a VALID entry it has pinned: returns the entry to write into (a private
     * copy if the memory frame was shared; the old entry is then unpinned), or -1, holding nothing, when
     * no copy can be had now. The bytes leave the content index first, so no fill can merge onto a page
     * while it is being written.
     */
    int prepareWrite(CachedFile file, int f, IoPath path) {
        if (shared(f)) {
            int n = breakShare(file, f, path);
            c.unpin(f);
            if (n < 0) return -1;
            f = n;
        }
        c.mem.content.remove(c.meta.mem(f));
        return f;
    }

    /**
     * Before zeroing the tail of a VALID page in place (truncate): true if that may be done; false if
     * its frame is shared, in which case the (clean) page is dropped instead and read again when needed.
     */
    boolean prepareZeroTail(CachedFile file, int f) {
        if (shared(f)) {
            c.detach(file, f);
            return false;
        }
        c.mem.content.remove(c.meta.mem(f));
        return true;
    }

    /**
     * Copy-on-write: replaces a VALID entry whose memory frame is shared (pinned by the caller) with a new
     * entry for the same key holding a private copy of the bytes, VALID and pinned. The old entry is
     * detached (readers that pinned it keep the old bytes) and stays pinned by the caller, who unpins it.
     * Returns the new entry, or -1 (old entry still detached: it was clean, so nothing is lost) when no
     * frame can be had now.
     */
    private int breakShare(CachedFile file, int f, IoPath path) {
        long page = c.meta.page(f);
        byte freq = c.meta.freq(f), filledBy = c.meta.filledBy(f), touched = c.meta.touched(f), queue = c.meta.queue(f);
        c.detach(file, f);
        int n = c.newEntry(file, page, path);
        if (n < 0) return -1;
        c.data(n).put(c.data(f));
        c.meta.setFreq(n, freq);
        c.meta.setFilledBy(n, filledBy);
        c.queues.readmit(n, queue);
        c.meta.setTouched(n, touched);
        c.becameValid(n);
        c.counters.cowBreaks++;
        return n;
    }

    /**
     * A memory frame whose content is indexed under {@code hash} (a resident page that may hold the same
     * bytes as a page being filled), held so that it is neither freed nor reused while the filler
     * compares the bytes without the lock; -1 if none. Release it with {@link #releaseCandidate}.
     */
    int holdCandidate(long hash) {
        int m = c.mem.holdCandidate(hash);
        if (m >= 0 && !c.merge) c.pin(m);        // without merging, memory frame m is entry m
        return m;
    }

    void releaseCandidate(int m) {
        if (!c.merge) c.unpin(m);
        else c.mem.releaseCandidate(m);
    }

    /**
     * A page just read from storage (with dedup on) is about to become VALID: {@code hash} is its
     * content hash ({@code 0}: all zeros; {@code -1}: not hashed) and {@code match} a held candidate the
     * filler found to hold the same bytes (or -1). A match counts only if the candidate is still indexed
     * under the same hash, that is, unchanged since it was compared (a writer takes a frame out of the
     * index before writing); under merge the entry then maps onto the candidate's frame.
     */
    void filled(int f, IoPath path, long hash, int match) {
        if (hash == 0) {
            zero[f] = true;
            c.counters.zeroPages++;
            return;
        }
        if (hash == -1) return;
        int same = match >= 0 && c.mem.stillHolds(match, hash) ? match : -1;
        if (same >= 0) {
            c.counters.dupFills[path.ordinal()]++;
            c.counters.dupFillBytes[path.ordinal()] += PageCache.PAGE_SIZE;
            if (!c.merge) {
                dup[f] = true;
                c.counters.dupPages++;
            }
        }
        if (c.merge && same >= 0) {
            int own = c.meta.mem(f);
            c.meta.setMem(f, same);
            c.mem.refer(same);
            c.mem.release(own);
        } else {
            c.mem.content.add(c.meta.mem(f), hash);
        }
    }

    /** The page's content is about to change or go: it no longer counts as zero or duplicate. */
    void forget(int f) {
        if (zero[f]) {
            zero[f] = false;
            c.counters.zeroPages--;
        }
        if (dup[f]) {
            dup[f] = false;
            c.counters.dupPages--;
        }
    }
}
