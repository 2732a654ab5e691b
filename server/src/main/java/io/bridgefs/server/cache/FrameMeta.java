package io.bridgefs.server.cache;

/**
 * The per-entry metadata, guarded by the cache lock: each entry's fields packed into four longs of one
 * array, so that a request's look at an entry (key, state, pins, dirty flag, frequency...) touches one
 * or two cache lines instead of one in each of eleven arrays. On a warm random 4k write that was about
 * a dozen cache misses a request, the largest share of the event loop's own work in {@code perf}.
 * <pre>
 *   word 0  page index
 *   word 1  file id (high 32 bits) | memory frame (low 32; stable while the entry is pinned, read without the lock)
 *   word 2  pins (high 32) | write generation (low 32)
 *   word 3  bytes 0-5: state, dirty (0 clean, 1 dirty, 2 clean since the background flusher wrote it),
 *           frequency (-1 = read ahead, unused), queue, filled by (path), touched by (path bits)
 * </pre>
 */
final class FrameMeta {
    private final long[] w;

    FrameMeta(int entries) {
        w = new long[entries * 4];
    }

    long heapBytes() { return 8L * w.length; }

    long page(int f) { return w[f << 2]; }

    int file(int f) { return (int) (w[(f << 2) + 1] >>> 32); }

    int mem(int f) { return (int) w[(f << 2) + 1]; }

    void setMem(int f, int m) { w[(f << 2) + 1] = (w[(f << 2) + 1] & ~0xFFFF_FFFFL) | (m & 0xFFFF_FFFFL); }

    int pins(int f) { return (int) (w[(f << 2) + 2] >>> 32); }

    /** One more pin; returns the count before. */
    int pin(int f) {
        int i = (f << 2) + 2;
        long v = w[i];
        w[i] = v + (1L << 32);
        return (int) (v >>> 32);
    }

    /** One pin fewer; returns the count after. */
    int unpin(int f) {
        int i = (f << 2) + 2;
        long v = w[i] - (1L << 32);
        w[i] = v;
        return (int) (v >>> 32);
    }

    int gen(int f) { return (int) w[(f << 2) + 2]; }

    void bumpGen(int f) {
        int i = (f << 2) + 2;
        long v = w[i];
        w[i] = (v & ~0xFFFF_FFFFL) | ((v + 1) & 0xFFFF_FFFFL);
    }

    private static final int STATE = 0, DIRTY = 8, FREQ = 16, QUEUE = 24, FILLED_BY = 32, TOUCHED = 40;

    private byte get(int f, int shift) { return (byte) (w[(f << 2) + 3] >>> shift); }

    private void set(int f, int shift, int v) {
        int i = (f << 2) + 3;
        w[i] = (w[i] & ~(0xFFL << shift)) | ((v & 0xFFL) << shift);
    }

    byte state(int f) { return get(f, STATE); }

    void setState(int f, byte s) { set(f, STATE, s); }

    boolean dirty(int f) { return get(f, DIRTY) == 1; }

    void setDirty(int f, boolean d) { set(f, DIRTY, d ? 1 : 0); }

    /** Clean, and written back last by the background flusher (not dirtied since, nor evicted). */
    boolean cleanedInBackground(int f) { return get(f, DIRTY) == 2; }

    void setCleanedInBackground(int f) { set(f, DIRTY, 2); }

    byte freq(int f) { return get(f, FREQ); }

    void setFreq(int f, int freq) { set(f, FREQ, freq); }

    byte queue(int f) { return get(f, QUEUE); }

    void setQueue(int f, byte q) { set(f, QUEUE, q); }

    byte filledBy(int f) { return get(f, FILLED_BY); }

    void setFilledBy(int f, int path) { set(f, FILLED_BY, path); }

    byte touched(int f) { return get(f, TOUCHED); }

    void setTouched(int f, int bits) { set(f, TOUCHED, bits); }

    /** A new key on entry {@code f} (its memory frame and pins stay): LOADING, clean, unused, in no queue yet. */
    void key(int f, int file, long page, int filledBy) {
        int b = f << 2;
        w[b] = page;
        w[b + 1] = ((long) file << 32) | (w[b + 1] & 0xFFFF_FFFFL);
        w[b + 3] = (w[b + 3] & (0xFFL << QUEUE)) | ((long) PageCache.LOADING << STATE) | ((filledBy & 0xFFL) << FILLED_BY);
    }
}
