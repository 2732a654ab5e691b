package io.bridgefs.server.cache;

/**
 * The cache's memory frames (guarded by the cache lock): how many VALID entries refer to each (the
 * residency and KSM-style sharing counts), and, when merging, how many entries refer to it at all, which
 * fillers hold it for a byte compare, and the free list. Without merging, memory frame m is entry m.
 * The content index maps a resident page's hash to its memory frame.
 */
final class MemoryFrames {
    final ContentIndex content;
    final boolean merge;
    final int[] refs;         // per memory frame: entries referring to it (merge only)
    final int[] valid;        // per memory frame: VALID entries referring to it
    private final int[] free; // free memory frames (merge only)
    final int[] holds;        // per memory frame: fillers comparing against it (merge only)
    int top;                  // free frames on the list
    int residentFrames, pagesShared, pagesSharing;   // memory frames held by VALID entries; KSM counts

    long heapBytes() { return content.heapBytes() + 4L * (refs.length + valid.length + free.length + holds.length); }

    MemoryFrames(int count, boolean merge) {
        this.merge = merge;
        content = new ContentIndex(count);
        refs = new int[merge ? count : 0];
        valid = new int[count];
        free = new int[merge ? count : 0];
        holds = new int[merge ? count : 0];
        for (int i = 0; i < free.length; i++) free[i] = count - 1 - i;
        top = free.length;
    }

    boolean hasFree() { return top > 0; }

    /** A free memory frame for a new entry (merge only), referred to once. */
    int take() {
        int m = free[--top];
        refs[m] = 1;
        return m;
    }

    /** Whether other entries (or a detached reader) share memory frame {@code m}: it must not be written in place. */
    boolean shared(int m) {
        return merge && refs[m] > 1;
    }

    /** Another entry maps onto {@code m} (a merged fill). */
    void refer(int m) {
        refs[m]++;
    }

    /** Drops one entry's reference (merge only); the last one frees the frame, unless a filler holds it. */
    void release(int m) {
        refs[m]--;
        freeIfUnused(m);
    }

    private void freeIfUnused(int m) {
        if (refs[m] == 0 && holds[m] == 0) free[top++] = m;
    }

    /** A resident memory frame indexed under {@code hash}, held (merge) for a compare without the lock; -1 if none. */
    int holdCandidate(long hash) {
        for (int m = content.first(hash); m >= 0; m = content.next(m)) {
            if (valid[m] == 0) continue;
            if (merge) holds[m]++;
            return m;
        }
        return -1;
    }

    void releaseCandidate(int m) {
        holds[m]--;
        freeIfUnused(m);
    }

    /** Whether held frame {@code m} is still resident and indexed under {@code hash} (unchanged since compared). */
    boolean stillHolds(int m, long hash) {
        return valid[m] > 0 && content.isIndexed(m) && content.hashOf(m) == hash;
    }

    /** An entry on {@code m} becomes VALID. */
    void becameValid(int m) {
        int v = ++valid[m];
        if (v == 1) {
            residentFrames++;
        } else {
            pagesSharing++;
            if (v == 2) pagesShared++;
        }
    }

    /** An entry on {@code m} stops being VALID; the last one takes the bytes out of the index. */
    void leftValid(int m) {
        int v = valid[m]--;
        if (v == 1) {
            residentFrames--;
            content.remove(m);
        } else {
            pagesSharing--;
            if (v == 2) pagesShared--;
        }
    }
}
