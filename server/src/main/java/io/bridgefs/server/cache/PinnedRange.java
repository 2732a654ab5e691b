package io.bridgefs.server.cache;

import java.nio.ByteBuffer;

/** Pinned pages of one read: {@link #views()} are the bytes in place; {@link #release()} exactly once. */
public final class PinnedRange {
    private static final int PAGE = PageCache.PAGE_SIZE;

    private final CachedFile file;
    private final int[] frames;
    private final long offset;
    private final int length;

    PinnedRange(CachedFile file, int[] frames, long offset, int length) {
        this.file = file;
        this.frames = frames;
        this.offset = offset;
        this.length = length;
    }

    /**
     * The bytes, one view per run of pages whose memory frames are adjacent (pages filled together
     * usually are): a 256 KiB read is then one or a few buffers for the socket, not 64.
     */
    public ByteBuffer[] views() {
        return views(file.cache, frames, offset, length);
    }

    /**
     * Views of bytes [offset, offset + length) of a file whose pages are in the pinned entries
     * {@code frames} (one an entry, from the page of {@code offset}), one view per run of adjacent
     * memory frames; each view's position is 0.
     */
    static ByteBuffer[] views(PageCache cache, int[] frames, long offset, long length) {
        FrameMeta meta = cache.meta;     // an entry's memory frame is stable while pinned (see the package documentation)
        ByteBuffer[] out = new ByteBuffer[frames.length];
        int k = 0;
        long pos = offset;
        long end = offset + length;
        for (int i = 0; i < frames.length; ) {
            int first = meta.mem(frames[i]);
            int j = i + 1;
            while (j < frames.length && meta.mem(frames[j]) == first + (j - i) && FrameMemory.sameChunk(first, first + (j - i))) j++;
            int in = (int) (pos & (PAGE - 1));
            int n = (int) Math.min((long) (j - i) * PAGE - in, end - pos);
            out[k++] = cache.memory.span(first, j - i).position(in).limit(in + n).slice();
            pos += n;
            i = j;
        }
        return k == out.length ? out : java.util.Arrays.copyOf(out, k);
    }

    public void release() {
        file.unpinAll(frames, frames.length);
    }
}
