package io.bridgefs.server.cache;

/**
 * Which pages are dirty (guarded by the cache lock): each file's dirty entries as a list threaded
 * through the entries (newest first), and the counts the write-back thresholds watch. A write marks a
 * page dirty (its content no longer what any other key shares, its generation one more, so a
 * write-back in progress will not mark it clean); a write-back or a detach marks it clean.
 */
final class DirtyPages {
    private final PageCache c;
    private final int[] next, prev;   // per entry; -1 ends a list

    long heapBytes() { return 4L * (next.length + prev.length); }

    DirtyPages(PageCache c) {
        this.c = c;
        next = new int[c.frames];
        prev = new int[c.frames];
    }

    void mark(CachedFile file, int f) {
        assert !c.sharing.shared(f) : "a shared frame is never written in place";
        c.sharing.forget(f);
        c.mem.content.remove(c.meta.mem(f));
        if (!c.meta.dirty(f)) {
            if (c.meta.cleanedInBackground(f)) c.flusher.rewritten();
            c.meta.setDirty(f, true);
            c.dirtyPages++;
            file.dirtyPages++;
            prev[f] = -1;
            next[f] = file.dirtyHead;
            if (file.dirtyHead >= 0) prev[file.dirtyHead] = f;
            file.dirtyHead = f;
            if (c.dirtyPages > c.flusher.background) c.flusher.dirtied();
        }
        c.meta.bumpGen(f);
    }

    void clear(CachedFile file, int f) {
        if (!c.meta.dirty(f)) return;
        c.meta.setDirty(f, false);
        c.dirtyPages--;
        file.dirtyPages--;
        if (prev[f] >= 0) next[prev[f]] = next[f];
        else file.dirtyHead = next[f];
        if (next[f] >= 0) prev[next[f]] = prev[f];
    }

    /** The file's VALID dirty entries. Cost: its dirty count. */
    int[] of(CachedFile file) {
        int[] out = new int[Math.max(1, file.dirtyPages)];
        int n = 0;
        for (int f = file.dirtyHead; f >= 0; f = next[f]) {
            if (c.meta.state(f) != PageCache.VALID) continue;
            if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
            out[n++] = f;
        }
        return java.util.Arrays.copyOf(out, n);
    }
}
