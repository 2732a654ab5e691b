package io.bridgefs.server.cache;

/**
 * S3-FIFO eviction (guarded by the cache lock): new pages enter a small FIFO (10% of frames); a page
 * hit again while there moves to the main FIFO, the rest are evicted early; main-queue pages with hits
 * get another round (frequency 0..3). Evicted keys are remembered as fingerprints in the ghost, and a
 * page whose key is there (a refault) goes straight to main. A one-pass scan therefore flows through
 * the small queue without flushing the hot set in main.
 */
final class S3Fifo {
    private static final int EVICT_SCAN_LIMIT = 8192;
    private final PageCache c;
    private final IntRing small, main;
    private final int smallTarget;
    private final GhostSet ghost;

    long heapBytes() { return small.heapBytes() + main.heapBytes() + ghost.heapBytes(); }

    S3Fifo(PageCache c) {
        this.c = c;
        small = new IntRing(c.frames);
        main = new IntRing(c.frames);
        smallTarget = Math.max(1, c.frames / 10);
        ghost = new GhostSet(c.frames - smallTarget);
    }

    /** A new entry joins a queue: main if its key was evicted recently (returns true: a refault), else small. */
    boolean admit(int f, long fingerprint) {
        boolean refault = ghost.contains(fingerprint);
        if (refault) ghost.remove(fingerprint);
        c.meta.setQueue(f, refault ? PageCache.Q_MAIN : PageCache.Q_SMALL);
        (refault ? main : small).add(f);
        return refault;
    }

    /** An entry that replaces another (a copy on write) joins the queue the old one was in. */
    void readmit(int n, byte queue) {
        c.meta.setQueue(n, queue == PageCache.Q_MAIN ? PageCache.Q_MAIN : PageCache.Q_SMALL);
        (c.meta.queue(n) == PageCache.Q_MAIN ? main : small).add(n);
    }

    /** Frees an entry by evicting a clean, unpinned page (or takes a free one met on the way); -1 if none now. */
    int victim() {
        for (int budget = Math.min(2 * c.frames + 16, EVICT_SCAN_LIMIT); budget > 0; budget--) {
            if (small.size() == 0 && main.size() == 0) return -1;
            boolean fromSmall = small.size() > smallTarget || main.size() == 0;
            IntRing q = fromSmall ? small : main;
            int f = q.poll();
            if (c.meta.state(f) == PageCache.FREE) {
                c.meta.setQueue(f, PageCache.Q_NONE);
                return f;
            }
            if (c.meta.state(f) != PageCache.VALID || c.meta.pins(f) > 0 || c.meta.dirty(f)) {
                if (fromSmall && c.meta.freq(f) > 0) {
                    c.meta.setFreq(f, 0);
                    c.meta.setQueue(f, PageCache.Q_MAIN);
                    main.add(f);
                } else {
                    q.add(f);
                }
                continue;
            }
            if (c.meta.freq(f) > 0) {
                if (fromSmall) {
                    c.meta.setFreq(f, 0);
                    c.meta.setQueue(f, PageCache.Q_MAIN);
                    main.add(f);
                } else {
                    c.meta.setFreq(f, c.meta.freq(f) - 1);
                    main.add(f);
                }
                continue;
            }
            c.flusher.evicted();
            evict(f);
            c.meta.setQueue(f, PageCache.Q_NONE);
            return f;
        }
        return -1;
    }

    /** Drops a clean, unpinned VALID page, remembering its key in the ghost. */
    private void evict(int f) {
        CachedFile cf = c.registry.byId(c.meta.file(f));     // known: it has this VALID page
        if (c.meta.freq(f) < 0) {
            c.counters.readaheadUnusedPages++;
            cf.reads.readaheadWasted();
        }
        ghost.add(GhostSet.fingerprint(cf.key, c.meta.page(f)));   // its return will count as a refault
        c.table.remove(f);
        c.sharing.forget(f);
        c.leftValid(f);
        c.freed(f);
        c.counters.evictions++;
    }

    /**
     * Drops every page of a closed file ({@link FileRegistry}'s bound): clean, unpinned pages are
     * evicted as the queues would evict them, others (pinned by a reader, or still loading) detached.
     */
    void evictFile(CachedFile file) {
        long pages = (file.size + PageCache.PAGE_SIZE - 1) / PageCache.PAGE_SIZE;
        for (int pass = 0; pass < 2 && file.resident > 0; pass++) {     // then any page past its size
            for (int f : c.framesOf(file, 0, pass == 0 ? pages : Long.MAX_VALUE)) {
                if (c.meta.state(f) == PageCache.VALID && c.meta.pins(f) == 0 && !c.meta.dirty(f)) evict(f);
                else c.detach(file, f);
            }
        }
    }

    /** Evicts every clean, unpinned VALID page (they stay in their queues, FREE); returns how many. */
    int evictAllClean() {
        int n = 0;
        for (int f = 0; f < c.frames; f++) {
            if (c.meta.state(f) == PageCache.VALID && c.meta.pins(f) == 0 && !c.meta.dirty(f)) {
                evict(f);
                n++;
            }
        }
        return n;
    }
}
