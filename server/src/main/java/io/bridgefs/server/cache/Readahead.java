package io.bridgefs.server.cache;

import io.bridgefs.server.config.Sizes;

/**
 * An export's read-ahead ({@code readahead=off|auto|SIZE}): how far past a sequential request the
 * cache reads (O_DIRECT gets no kernel read-ahead). {@code auto} starts with {@code initialPages} and,
 * like the kernel, doubles the window while at least half of the pages it read ahead were then read,
 * halves it when fewer were by the next read-ahead, and halves it whenever a read-ahead page is evicted
 * unread; a fixed SIZE never changes. The window is the file's, shared by every client reading it. Block
 * exports start small: their guests read ahead themselves, and their metadata reads look sequential.
 */
public record Readahead(int maxPages, int initialPages, boolean adaptive) {
    public static final Readahead OFF = new Readahead(0, 0, false);
    /** The largest window (2 MiB, a run): auto never grows past it. */
    public static final int MAX_PAGES = 512;

    /** auto for a block export (starts at 32 KiB) or a file export (starts at 128 KiB). */
    public static Readahead auto(boolean block) {
        return new Readahead(MAX_PAGES, block ? 8 : 32, true);
    }

    /** {@code off}, {@code auto} or a size (rounded up to whole pages, at most 2 MiB). */
    public static Readahead parse(String s, boolean block) {
        if (s.equals("off")) return OFF;
        if (s.equals("auto")) return auto(block);
        long bytes = Sizes.parse(s);
        if (bytes < 0 || bytes > (long) MAX_PAGES * PageCache.PAGE_SIZE) {
            throw new IllegalArgumentException("readahead=" + s + ": off, auto or a size up to 2m");
        }
        int pages = (int) ((bytes + PageCache.PAGE_SIZE - 1) / PageCache.PAGE_SIZE);
        return pages == 0 ? OFF : new Readahead(pages, pages, false);
    }

    @Override
    public String toString() {
        return maxPages == 0 ? "off" : adaptive ? "auto" : (maxPages * (PageCache.PAGE_SIZE / 1024)) + "k";
    }
}
