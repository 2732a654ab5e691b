package io.bridgefs.server.cache;

/**
 * Open-addressing hash table from (file id, page index) to frame number, with linear probing and
 * backward-shift deletion. It stores only frame numbers: the key of an entry is read back from the
 * frame's metadata, so there is no per-entry object. Not thread-safe: guarded by the cache lock.
 */
final class PageTable {
    private final int[] slots;      // frame + 1; 0 = empty
    private final int mask;
    private final int[] frameFile;
    private final long[] framePage;

    /** Heap held by the table (for the JVM's sizing). */
    long heapBytes() { return 4L * slots.length; }

    PageTable(int frames, int[] frameFile, long[] framePage) {
        int cap = Integer.highestOneBit(Math.max(16, frames * 2 - 1)) << 1;
        this.slots = new int[cap];
        this.mask = cap - 1;
        this.frameFile = frameFile;
        this.framePage = framePage;
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
            if (frameFile[f] == file && framePage[f] == page) return f;
            i = (i + 1) & mask;
        }
    }

    /** Inserts a frame whose key is already in the metadata arrays and is not present yet. */
    void put(int frame) {
        int i = (int) hash(frameFile[frame], framePage[frame]) & mask;
        while (slots[i] != 0) i = (i + 1) & mask;
        slots[i] = frame + 1;
    }

    void remove(int frame) {
        int i = (int) hash(frameFile[frame], framePage[frame]) & mask;
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
            int k = (int) hash(frameFile[s - 1], framePage[s - 1]) & mask;
            boolean stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            slots[i] = s;
            slots[j] = 0;
            i = j;
        }
    }
}
