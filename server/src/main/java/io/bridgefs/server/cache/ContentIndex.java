package io.bridgefs.server.cache;

import java.nio.ByteBuffer;

/**
 * Which resident frames hold which content, for fill-time duplicate detection: a content hash maps to
 * a chain of frames (linked through {@code next}). Only frames filled from backing storage and not
 * modified since are indexed; all-zero pages are counted apart and never indexed. A hash match is
 * always confirmed by comparing the bytes. Not thread-safe: guarded by the cache lock.
 */
final class ContentIndex {
    private final long[] keys;      // open addressing: hash -> head frame + 1 (0 = empty)
    private final int[] heads;
    private final int mask;
    private final int[] next;       // per frame: next frame with the same hash, -1 at the end
    private final long[] hashOf;    // per frame: its hash while indexed
    private final boolean[] indexed;

    long heapBytes() { return 12L * keys.length + 12L * next.length + indexed.length; }

    ContentIndex(int frames) {
        int cap = Integer.highestOneBit(Math.max(16, frames * 2 - 1)) << 1;
        keys = new long[cap];
        heads = new int[cap];
        mask = cap - 1;
        next = new int[frames];
        hashOf = new long[frames];
        indexed = new boolean[frames];
    }

    private static final ThreadLocal<java.util.zip.CRC32C> CRC = ThreadLocal.withInitial(java.util.zip.CRC32C::new);
    private static final ByteBuffer ZERO_PAGE = ByteBuffer.allocateDirect(PageCache.PAGE_SIZE).asReadOnlyBuffer();
    private static final long ZERO_CRC = crc(ZERO_PAGE);

    private static long crc(ByteBuffer page) {
        java.util.zip.CRC32C c = CRC.get();
        c.reset();
        c.update(page.duplicate().clear());
        return c.getValue();
    }

    /**
     * Content hash of a page, never 0; {@code 0} is returned for an all-zero page. CRC32C, which the
     * JIT turns into the CPU's crc32 instructions (about 3x cheaper than a multiply-based hash here): a
     * 32-bit hash is only a filter, since every match is confirmed by comparing the bytes.
     */
    static long hash(ByteBuffer page) {
        long h = crc(page);
        if (h == ZERO_CRC && page.duplicate().clear().mismatch(ZERO_PAGE.duplicate()) < 0) return 0;
        return h == 0 ? 1 : h;
    }

    private int slot(long hash) {
        int i = (int) (hash ^ (hash >>> 32)) & mask;
        while (keys[i] != 0 && keys[i] != hash) i = (i + 1) & mask;
        return i;
    }

    /** First frame indexed under {@code hash}, or -1; continue with {@link #next(int)}. */
    int first(long hash) {
        int i = slot(hash);
        return keys[i] == hash ? heads[i] - 1 : -1;
    }

    int next(int frame) { return next[frame]; }

    boolean isIndexed(int frame) { return indexed[frame]; }

    /** The hash a frame is indexed under (meaningful while {@link #isIndexed}). */
    long hashOf(int frame) { return hashOf[frame]; }

    void add(int frame, long hash) {
        int i = slot(hash);
        next[frame] = keys[i] == hash ? heads[i] - 1 : -1;
        keys[i] = hash;
        heads[i] = frame + 1;
        hashOf[frame] = hash;
        indexed[frame] = true;
    }

    void remove(int frame) {
        if (!indexed[frame]) return;
        indexed[frame] = false;
        long hash = hashOf[frame];
        int i = slot(hash);
        int head = heads[i] - 1;
        if (head == frame) {
            if (next[frame] >= 0) {
                heads[i] = next[frame] + 1;
            } else {
                deleteSlot(i);
            }
            return;
        }
        for (int f = head; f >= 0; f = next[f]) {
            if (next[f] == frame) {
                next[f] = next[frame];
                return;
            }
        }
    }

    private void deleteSlot(int i) {
        keys[i] = 0;
        heads[i] = 0;
        int j = i;
        while (true) {
            j = (j + 1) & mask;
            long k = keys[j];
            if (k == 0) return;
            int ideal = (int) (k ^ (k >>> 32)) & mask;
            boolean stays = i <= j ? (i < ideal && ideal <= j) : (i < ideal || ideal <= j);
            if (stays) continue;
            keys[i] = k;
            heads[i] = heads[j];
            keys[j] = 0;
            heads[j] = 0;
            i = j;
        }
    }
}
