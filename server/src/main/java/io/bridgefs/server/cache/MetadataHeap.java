package io.bridgefs.server.cache;

/**
 * The heap a cache's per-page metadata takes: the arrays sized when the cache is made, per key (a page
 * of a file; with --dedup merge there are two keys a memory frame) and per memory frame. The JVM's heap
 * is sized from {@link #estimate} (the CLI's JvmSizing); {@link #of} adds up what a cache allocated.
 */
public final class MetadataHeap {
    private MetadataHeap() {}

    /** Heap the per-page metadata of a cache this large takes: an upper bound of {@link #of}. */
    public static long estimate(long capacityBytes, DedupMode dedupMode) {
        long m = capacityBytes / PageCache.PAGE_SIZE;
        long keys = dedupMode == DedupMode.MERGE ? 2 * m : m;
        // per key: its packed metadata (32 bytes) and free-list slot (4), the page table (up to 4 int
        // slots), the dirty lists (2 ints), two queue rings (2 ints), the ghost set (a ring and up to 4
        // table slots of longs)
        long perKey = 36 + 16 + 8 + 8 + 8 + 32;
        // per memory frame: the content index (up to 4 long keys and int heads, a next, a hash, a flag), the frame counts
        long perFrame = 48 + 13 + (dedupMode == DedupMode.MERGE ? 16 : 4);
        return keys * perKey + m * perFrame;
    }

    /**
     * Heap a closed file kept for its cached pages takes at most (its CachedFile, fill and write-back
     * state, locks, backing store with its path, key and table entries): see ClosedFilesBoundTest.
     */
    public static final long CLOSED_FILE_BYTES = 1024;

    /**
     * How many closed files a cache this large keeps for their pages ({@link FileRegistry}): one per
     * four pages (files of 16 KiB on average fill it), at least 1,024, at most 2^20.
     */
    public static int closedFiles(long capacityBytes) {
        return (int) Math.max(1024, Math.min(1 << 20, capacityBytes / PageCache.PAGE_SIZE / 4));
    }

    /** Heap the closed files a cache this large keeps may take. */
    public static long closedFilesHeap(long capacityBytes) {
        return closedFiles(capacityBytes) * CLOSED_FILE_BYTES;
    }

    /** Heap the per-page metadata of {@code c} takes (arrays sized at construction). */
    static long of(PageCache c) {
        long perKey = c.meta.heapBytes() + c.free.heapBytes();
        return perKey + c.table.heapBytes() + c.dirty.heapBytes() + c.queues.heapBytes() + c.mem.heapBytes();
    }
}
