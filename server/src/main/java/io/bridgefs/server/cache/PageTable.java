package io.bridgefs.server.cache;

/**
 * Open-addressing hash table from (file id, page index) to frame number, with linear probing and
 * backward-shift deletion. It stores only frame numbers: the key of an entry is read back from the
 * frame's metadata, so there is no per-entry object. Not thread-safe: guarded by the cache lock.
 */
final class PageTable {
    private final int[] slots;      // frame + 1; 0 = empty
    private final int mask;
    private final int entries;
    private final FrameMeta meta;

    /** Heap held by the table (for the JVM's sizing). */
    long heapBytes() { return 4L * slots.length; }

    PageTable(int frames, FrameMeta meta) {
        int cap = Integer.highestOneBit(Math.max(16, frames * 2 - 1)) << 1;
        this.slots = new int[cap];
        this.mask = cap - 1;
        this.meta = meta;
        this.entries = frames;
    }

    static long hash(int file, long page) {
        long h = page * 0x9E3779B97F4A7C15L + file * 0xC2B2AE3D27D4EB4FL;
        return h ^ (h >>> 29) ^ (h >>> 47);
    }

    int get(int file, long page) {
        int i = (int) hash(file, page) & mask;
        while (true) {
            int s = slots[i];
            if (s == 0) return -1;
            int f = s - 1;
            if (meta.page(f) == page && meta.file(f) == file) return f;
            i = (i + 1) & mask;
        }
    }

    /**
     * {@link #get}, when the page before {@code page} is known to be in frame {@code before} (-1: not
     * known). A run of pages filled together takes consecutive frames (the free list hands them out in
     * order, and eviction frees them in the order they were filled), so the frame after {@code before}
     * is tried first: a look at the metadata next to the last one instead of a hash probe. The cache keeps
     * a frame in this table exactly while it is LOADING or VALID, under the key its metadata holds, so
     * the shortcut answers what {@link #get} would (the cache audit checks it after every model-test step).
     */
    int getAfter(int file, long page, int before) {
        int g = before + 1;
        if (before >= 0 && g < entries && meta.page(g) == page && meta.file(g) == file
                && (meta.state(g) == PageCache.VALID || meta.state(g) == PageCache.LOADING)) return g;
        return get(file, page);
    }

    /** Inserts a frame whose key is already in the metadata arrays and is not present yet. */
    void put(int frame) {
        int i = (int) hash(meta.file(frame), meta.page(frame)) & mask;
        while (slots[i] != 0) i = (i + 1) & mask;
        slots[i] = frame + 1;
    }

    void remove(int frame) {
        int i = (int) hash(meta.file(frame), meta.page(frame)) & mask;
        while (slots[i] != frame + 1) {
            if (slots[i] == 0) return;
            i = (i + 1) & mask;
        }
        slots[i] = 0;
        int j = i;
        while (true) {
            j = (j + 1) & mask;
            int s = slots[j];
            if (s == 0) return;
            int k = (int) hash(meta.file(s - 1), meta.page(s - 1)) & mask;
            boolean stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            slots[i] = s;
            slots[j] = 0;
            i = j;
        }
    }
}
