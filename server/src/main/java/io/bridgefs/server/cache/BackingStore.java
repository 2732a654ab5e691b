package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The storage under one cached file. The page cache only ever calls it with page-aligned positions
 * and buffers from aligned direct memory, so an implementation may use O_DIRECT.
 */
public interface BackingStore extends AutoCloseable {
    long size() throws IOException;

    /** Reads up to {@code dst.remaining()} bytes at {@code position}; fewer only at end of file. */
    int read(ByteBuffer dst, long position) throws IOException;

    /** Writes all of {@code src} at {@code position}. */
    void write(ByteBuffer src, long position) throws IOException;

    /**
     * Reads consecutive pages at {@code position} straight into {@code count} page buffers (4 KiB,
     * direct, aligned; their positions are ignored). Returns the bytes read, fewer only at end of file.
     */
    default int readPages(ByteBuffer[] pages, int count, long position) throws IOException {
        int total = 0;
        for (int i = 0; i < count; i++) {
            ByteBuffer p = pages[i].duplicate().clear();
            int n = read(p, position + total);
            total += n;
            if (n < p.capacity()) break;
        }
        return total;
    }

    /**
     * A descriptor that whole pages can be read from with O_DIRECT at page-aligned positions, for reads
     * submitted in batches ({@link io.bridgefs.server.posix.AsyncReads}); -1 if there is none.
     */
    default int directFd() {
        return -1;
    }

    /** Writes consecutive whole pages, the last one only up to {@code lastLength} bytes. */
    default void writePages(ByteBuffer[] pages, int count, long position, int lastLength) throws IOException {
        for (int i = 0; i < count; i++) {
            ByteBuffer p = pages[i].duplicate().clear();
            if (i == count - 1) p.limit(lastLength);
            write(p, position + (long) i * p.capacity());
        }
    }

    /** Makes all completed writes durable (fdatasync). */
    void sync() throws IOException;

    void truncate(long size) throws IOException;

    /** Deallocates the range so it reads as zeros; false if the host filesystem cannot. */
    boolean punchHole(long offset, long length) throws IOException;

    /**
     * Allocation status from {@code offset}: the length of the run of the same kind starting there, and
     * whether it is a hole. Stores that cannot tell report everything as data.
     */
    Extent extentAt(long offset, long limit) throws IOException;

    /**
     * A fingerprint of the file's size, mtime and ctime, to notice changes made by other host
     * processes; 0 where the store cannot tell.
     */
    default long stamp() throws IOException {
        return 0;
    }

    /**
     * Whether no name leads to the file any more (link count 0: removed, or replaced by a rename), so
     * that once nobody holds it open its bytes can never be read again; false where the store cannot tell.
     */
    default boolean unlinked() throws IOException {
        return false;
    }

    /** Whether reads and writes bypass the host kernel's page cache (O_DIRECT). */
    boolean directIo();

    /** Whether holes can be punched and found (fallocate / SEEK_HOLE). */
    boolean sparse();

    @Override
    void close() throws IOException;

    record Extent(long length, boolean hole) {}
}
