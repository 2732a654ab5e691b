package io.bridgefs.server.cache;

import java.nio.ByteBuffer;

/**
 * The frames: fixed 4 KiB pages in direct (off-heap) memory, allocated once at start and aligned to
 * 4 KiB so they can take part in O_DIRECT I/O. Held in chunks because one ByteBuffer stops at 2 GiB.
 */
final class FrameMemory {
    private static final int FRAMES_PER_CHUNK_SHIFT = 17;     // 512 MiB chunks
    private static final int FRAMES_PER_CHUNK = 1 << FRAMES_PER_CHUNK_SHIFT;
    private final ByteBuffer[] chunks;

    FrameMemory(int frames) {
        int n = (frames + FRAMES_PER_CHUNK - 1) / FRAMES_PER_CHUNK;
        chunks = new ByteBuffer[n];
        for (int c = 0; c < n; c++) {
            int inChunk = Math.min(FRAMES_PER_CHUNK, frames - c * FRAMES_PER_CHUNK);
            chunks[c] = ByteBuffer.allocateDirect(inChunk * PageCache.PAGE_SIZE + PageCache.PAGE_SIZE)
                    .alignedSlice(PageCache.PAGE_SIZE);
        }
    }

    /** A view of {@code count} frames from {@code first}, all in one chunk ({@link #sameChunk}). */
    ByteBuffer span(int first, int count) {
        return chunks[first >>> FRAMES_PER_CHUNK_SHIFT].slice((first & (FRAMES_PER_CHUNK - 1)) << PageCache.PAGE_SHIFT,
                count << PageCache.PAGE_SHIFT);
    }

    static boolean sameChunk(int a, int b) {
        return a >>> FRAMES_PER_CHUNK_SHIFT == b >>> FRAMES_PER_CHUNK_SHIFT;
    }

    /** A view of one frame (position 0, limit 4096). The view is independent of other callers. */
    ByteBuffer frame(int f) {
        return chunks[f >>> FRAMES_PER_CHUNK_SHIFT].slice((f & (FRAMES_PER_CHUNK - 1)) << PageCache.PAGE_SHIFT, PageCache.PAGE_SIZE);
    }
}
