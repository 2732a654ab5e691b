package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The JVM's heap is sized from {@link MetadataHeap#estimate} (see the CLI's JvmSizing): it must
 * cover the arrays a cache of that size really allocates in every dedup mode, and not by far more.
 * (A server sized at 128 bytes a page, with --dedup merge and 1.6 GiB of cache, ran out of heap: merge
 * keeps two keys a frame, 284 bytes a page at worst.)
 */
class MetadataHeapTest {
    @Test
    void theEstimateCoversEveryModesArraysAndIsNotFarAbove() throws Exception {
        for (DedupMode mode : DedupMode.values()) {
            for (long size : new long[] {256 << 10, 1 << 20, 3 << 20, 5 << 20, 17 << 20, 64 << 20}) {
                try (PageCache c = new PageCache(size, CacheMode.WRITEBACK, mode, 25, 75)) {
                    long actual = MetadataHeap.of(c);
                    long estimate = MetadataHeap.estimate(size, mode);
                    String what = mode + " " + (size >> 10) + " KiB: estimate " + estimate + ", arrays " + actual;
                    assertTrue(actual <= estimate, what);
                    assertTrue(estimate <= 2 * actual, what);
                }
            }
        }
    }
}
