package io.bridgefs.server.cache;

import io.bridgefs.server.posix.Posix;
import java.nio.ByteBuffer;

/**
 * The frames: fixed 4 KiB pages in direct (off-heap) memory, allocated once at start and aligned to
 * 4 KiB so they can take part in O_DIRECT I/O. Held in chunks because one ByteBuffer stops at 2 GiB.
 * The chunks are anonymous memory backed by transparent huge pages where the kernel has them: the
 * cache's accesses are scattered over all of it, and a 4 KiB mapping per frame costs a TLB entry each,
 * and in a guest whose hypervisor shadows its page tables, a trap at the first access of each frame
 * from user space and again from the kernel (measured on this project's 2-core PVM guest: ~8 us a
 * frame, ~2 s of a 1 GiB cold read's 4 s of CPU, spent copying each frame into the socket for the
 * first time; a 2 MiB page traps once for 512 frames). Elsewhere plain direct buffers.
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
            int bytes = inChunk * PageCache.PAGE_SIZE + PageCache.PAGE_SIZE;
            ByteBuffer mapped = Posix.hugePageMemory(bytes);
            chunks[c] = (mapped != null ? mapped : ByteBuffer.allocateDirect(bytes)).alignedSlice(PageCache.PAGE_SIZE);
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
