package io.bridgefs.server.cache;

/**
 * The counters of a {@link PageCache} (guarded by its lock), indexed by {@link IoPath#ordinal()} where
 * per path: lookups, fills, refaults, cross-path hits, evictions, duplicated fills, zero and duplicate
 * pages resident, copy-on-write breaks, bytes written back, pages read ahead and read ahead in vain.
 */
final class CacheCounters {
    final long[] hits = new long[2], misses = new long[2], fills = new long[2], fillBytes = new long[2], refaults = new long[2];
    final long[][] crossHits = new long[2][2];
    long evictions;
    long readaheadPages, readaheadUnusedPages;
    final long[] dupFills = new long[2], dupFillBytes = new long[2];
    int zeroPages, dupPages;
    long cowBreaks;
    long writebackBytes;

    /** With the lock held: one consistent snapshot with the cache's residency counts. */
    CacheStats snapshot(PageCache c, boolean direct) {
        long page = PageCache.PAGE_SIZE;
        return new CacheStats(hits.clone(), misses.clone(), fills.clone(), fillBytes.clone(), refaults.clone(),
                new long[][] {crossHits[0].clone(), crossHits[1].clone()}, evictions,
                (long) c.mem.residentFrames * page, (long) c.dirtyPages * page, writebackBytes, c.pinnedPages,
                c.sharedPages, c.capacityBytes(), direct, dupFills.clone(), dupFillBytes.clone(), zeroPages,
                c.dedupMode, c.mem.merge ? c.mem.pagesShared : 0, c.mem.merge ? c.mem.pagesSharing : dupPages, cowBreaks,
                c.validPages, readaheadPages * page, readaheadUnusedPages * page,
                c.flusher.rewrittenPages * page, (long) c.flusher.background * page);
    }
}
