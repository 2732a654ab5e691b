package io.bridgefs.server.cache;

/**
 * One consistent snapshot of the cache counters, taken under the cache lock. Arrays are indexed by
 * {@link IoPath#ordinal()}; {@code crossPathHits[from][to]} counts hits by path {@code to} on pages
 * filled by path {@code from}. {@code cachedBytes}: memory holding resident pages (a merged frame counts
 * once); {@code residentPages}: resident keys. {@code zeroPages}: resident all-zero pages filled from
 * storage. {@code dedupPagesShared}: frames that more than one key maps onto (merge);
 * {@code dedupPagesSharing}: keys beyond the first on those frames (merge), or, in shadow mode,
 * resident pages whose bytes were already resident under another key when they were filled (what
 * merging would make sharing). {@code dedupCowBreaks}: writes that had to copy a merged page first.
 * {@code readaheadBytes}: pages read ahead of sequential requests; {@code readaheadUnusedBytes}: those
 * evicted without ever being read. {@code writebackRewrittenBytes}: pages the background flusher wrote
 * back that were written again while still cached; {@code dirtyBackgroundBytes}: the dirty share above
 * which the flusher writes back now (it moves with {@code --dirty-background auto}).
 */
public record CacheStats(
        long[] hits, long[] misses, long[] fills, long[] fillBytes, long[] refaults, long[][] crossPathHits,
        long evictions, long cachedBytes, long dirtyBytes, long writebackBytes, long pinnedPages,
        long sharedPages, long capacityBytes, boolean directIo,
        long[] duplicateFills, long[] duplicateFillBytes, long zeroPages,
        DedupMode dedupMode, long dedupPagesShared, long dedupPagesSharing, long dedupCowBreaks, long residentPages,
        long readaheadBytes, long readaheadUnusedBytes, long writebackRewrittenBytes, long dirtyBackgroundBytes) {

    public long duplicateFills(IoPath p) { return duplicateFills[p.ordinal()]; }
    public long duplicateFillBytes(IoPath p) { return duplicateFillBytes[p.ordinal()]; }
    /** Memory that merging saves (merge), or would save (shadow). */
    public long dedupSavedBytes() { return dedupPagesSharing * 4096L; }

    public long hits(IoPath p) { return hits[p.ordinal()]; }
    public long misses(IoPath p) { return misses[p.ordinal()]; }
    public long fills(IoPath p) { return fills[p.ordinal()]; }
    public long fillBytes(IoPath p) { return fillBytes[p.ordinal()]; }
    public long refaults(IoPath p) { return refaults[p.ordinal()]; }
    public long crossPathHits(IoPath from, IoPath to) { return crossPathHits[from.ordinal()][to.ordinal()]; }
}
