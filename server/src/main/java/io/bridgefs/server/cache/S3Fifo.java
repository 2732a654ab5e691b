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
    /** How many pages that cannot be evicted one queue gives a search before the other queue is asked. */
    static final int SKIP_LIMIT = 32;
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

    /**
     * Frees an entry by evicting a clean, unpinned page (or takes a free one met on the way); -1 if none now.
     * The small queue gives the victim while it is over its share, until {@link #SKIP_LIMIT} of the pages
     * it gives this time could not be evicted (dirty, pinned or loading: they go back to its tail); then
     * main does. A writer's dirty pages fill the small queue, which may be far over its share (new pages
     * join it while main has free entries): without the limit the search went round them until its
     * budget ran out, and the writer then wrote back its whole file for every new page (nbd-bench,
     * session 29: 4k random writes into a cache emptied by drop-caches ran at a third of the speed) while
     * main held clean pages. Likewise main, having given that many it could not evict, lets the small
     * queue give one below its share.
     */
    int victim() {
        int smallSkipped = 0, mainSkipped = 0;
        for (int budget = Math.min(2 * c.frames + 16, EVICT_SCAN_LIMIT); budget > 0; budget--) {
            if (small.size() == 0 && main.size() == 0) return -1;
            boolean smallMay = small.size() > 0 && smallSkipped < SKIP_LIMIT;
            boolean fromSmall = main.size() == 0
                    || (smallMay && (small.size() > smallTarget || mainSkipped >= SKIP_LIMIT));
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
                    if (fromSmall) smallSkipped++;
                    else mainSkipped++;
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

    /**
     * Evicts every clean, unpinned VALID page; returns how many. The entries free then (these, and any
     * freed earlier and not yet met by {@link #victim}) leave the queues for the entries no page has had
     * ({@link FreeFrames}), as in a fresh cache: the next files' pages take neighbouring frames again,
     * not the queues' order.
     */
    int evictAllClean() {
        int n = 0;
        for (int f = 0; f < c.frames; f++) {
            if (c.meta.state(f) == PageCache.VALID && c.meta.pins(f) == 0 && !c.meta.dirty(f)) {
                evict(f);
                n++;
            }
        }
        releaseFree(small);
        releaseFree(main);
        return n;
    }

    private void releaseFree(IntRing q) {
        for (int i = q.size(); i > 0; i--) {
            int f = q.poll();
            if (c.meta.state(f) == PageCache.FREE) {
                c.meta.setQueue(f, PageCache.Q_NONE);
                c.free.give(f);
            } else {
                q.add(f);
            }
        }
    }
}
