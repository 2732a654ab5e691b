package io.bridgefs.server.cache;

/**
 * The ghost of S3-FIFO: fingerprints of recently evicted keys, oldest forgotten first. A hit here
 * means a refault (the cache re-reads what it dropped) and sends the page straight to the main queue.
 * A 64-bit fingerprint collision only misplaces one page; it cannot return wrong data.
 * Not thread-safe: guarded by the cache lock.
 */
final class GhostSet {
    private final long[] ring;
    private int head, size;
    private final long[] table;     // open addressing; 0 = empty
    private final int mask;

    long heapBytes() { return 8L * (ring.length + table.length); }

    GhostSet(int capacity) {
        ring = new long[Math.max(1, capacity)];
        int cap = Integer.highestOneBit(Math.max(16, ring.length * 2 - 1)) << 1;
        table = new long[cap];
        mask = cap - 1;
    }

    /** By (device, inode), not the file's id: a file forgotten and opened again gets a new id. */
    static long fingerprint(FileKey file, long page) {
        long h = (page * 0x9E3779B97F4A7C15L + file.ino() * 0xC2B2AE3D27D4EB4FL + file.dev() * 0x165667B19E3779F9L);
        h = (h ^ (h >>> 29) ^ (h >>> 47)) * 0xFF51AFD7ED558CCDL;
        h ^= h >>> 33;
        return h == 0 ? 1 : h;
    }

    void add(long fp) {
        if (contains(fp)) return;
        if (size == ring.length) {
            remove(ring[head]);
            head = (head + 1) % ring.length;
            size--;
        }
        ring[(head + size) % ring.length] = fp;
        size++;
        int i = (int) fp & mask;
        while (table[i] != 0) i = (i + 1) & mask;
        table[i] = fp;
    }

    boolean contains(long fp) {
        int i = (int) fp & mask;
        while (table[i] != 0) {
            if (table[i] == fp) return true;
            i = (i + 1) & mask;
        }
        return false;
    }

    /** Removes from the lookup table only; a stale ring entry is skipped harmlessly when it ages out. */
    void remove(long fp) {
        int i = (int) fp & mask;
        while (table[i] != fp) {
            if (table[i] == 0) return;
            i = (i + 1) & mask;
        }
        table[i] = 0;
        int j = i;
        while (true) {
            j = (j + 1) & mask;
            long s = table[j];
            if (s == 0) return;
            int k = (int) s & mask;
            boolean stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            table[i] = s;
            table[j] = 0;
            i = j;
        }
    }

    int size() { return size; }
}
