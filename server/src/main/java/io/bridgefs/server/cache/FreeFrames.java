package io.bridgefs.server.cache;

/**
 * The entries no page has been given yet (all of them when the cache starts), and where each file's
 * pages would best go. Each opened file gets a start after the previous file's pages; its page p takes
 * the first free entry at or after start + p. So a file's pages sit on neighbouring frames in whatever
 * order they are filled: after random reads, a sequential rewrite finds 256 neighbouring frames for a
 * 1 MiB write, as a sequential fill would have left them, not 256 scattered ones (which cost the network
 * thread about twice the CPU per byte, and split write-back into smaller O_DIRECT requests). A bitmap
 * with a summary of its non-empty words finds that entry in a few word reads. Guarded by the cache lock.
 */
final class FreeFrames {
    private final int size;
    private final long[] words;      // bit f set: entry f is free
    private final long[] summary;    // bit w set: words[w] != 0
    private int count;
    private int cursor;              // where the next opened file starts

    FreeFrames(int size) {
        this.size = size;
        words = new long[(size + 63) >>> 6];
        summary = new long[(words.length + 63) >>> 6];
        java.util.Arrays.fill(words, -1L);
        if ((size & 63) != 0) words[words.length - 1] = (1L << size) - 1;   // the last word's bits past the end stay clear
        java.util.Arrays.fill(summary, -1L);
        if ((words.length & 63) != 0) summary[summary.length - 1] = (1L << words.length) - 1;
        count = size;
    }

    int count() { return count; }

    /** For a file of {@code pages} being opened: its start; the next file starts after it (wrapping round). */
    int startFor(long pages) {
        int start = cursor;
        cursor = (int) ((start + Math.max(1, Math.min(size, pages))) % size);
        return start;
    }

    /** Takes a free entry for page {@code page} of a file that starts at {@code start} ({@link #startFor}). */
    int takeFor(int start, long page) {
        return takeNear((int) ((start + page) % size));
    }

    long heapBytes() { return 8L * (words.length + summary.length); }

    /** Marks {@code f} free (it must not be). */
    void give(int f) {
        int w = f >>> 6;
        words[w] |= 1L << f;
        summary[w >>> 6] |= 1L << w;
        count++;
    }

    /** Takes the first free entry at or after {@code hint}, wrapping round to 0; -1 if none is free. */
    int takeNear(int hint) {
        if (count == 0) return -1;
        int f = firstFrom(hint < 0 || hint >= size ? 0 : hint);
        if (f < 0) f = firstFrom(0);
        int w = f >>> 6;
        words[w] &= ~(1L << f);
        if (words[w] == 0) summary[w >>> 6] &= ~(1L << w);
        count--;
        return f;
    }

    private int firstFrom(int from) {
        int w = from >>> 6;
        long bits = words[w] & (-1L << from);
        if (bits != 0) return (w << 6) + Long.numberOfTrailingZeros(bits);
        // the next non-empty word, from the summary
        int next = w + 1;
        if (next >= words.length) return -1;
        int s = next >>> 6;
        long sb = summary[s] & (-1L << next);
        while (sb == 0) {
            if (++s >= summary.length) return -1;
            sb = summary[s];
        }
        int word = (s << 6) + Long.numberOfTrailingZeros(sb);
        return (word << 6) + Long.numberOfTrailingZeros(words[word]);
    }
}
