package io.bridgefs.server.cache;

import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Writing into a file's pages, on behalf of {@link CachedFile}: the usual write (which may wait for a
 * frame, read a page's old content first, or pace the writer at the dirty limit), and the two that
 * never wait, for a network thread: into resident pages only, or into new frames too where no read
 * is needed. Write-back is {@link WriteBack}'s; filling pages is {@link PageFills}'s.
 */
final class PageWrites {
    private static final int PAGE = PageCache.PAGE_SIZE;
    private final CachedFile file;
    private final PageCache cache;

    PageWrites(CachedFile file) {
        this.file = file;
        this.cache = file.cache;
    }

    /** {@link CachedFile#write}: the buffers one after another from {@code offset}, as one write. */
    void write(IoPath path, long offset, ByteBuffer[] srcs, boolean fua) throws IOException {
        if (file.readOnly) throw new java.nio.file.AccessDeniedException(file.key.toString(), null, "read-only");
        long end = offset + bytes(srcs);
        if (offset < 0 || end < offset) throw new Posix.ErrnoException("write beyond 2^63", Posix.EFBIG);
        if (end > HOST_CHECK && end > file.size) growHostFirst(end);
        file.changes++;
        copyAll(path, offset, srcs, true);
        boolean sync = fua || cache.mode == CacheMode.DIRECTSYNC;
        if (sync || cache.mode == CacheMode.WRITETHROUGH) {
            file.writeback(sync);
        } else {
            cache.flusher.throttle(file);
        }
    }

    /**
     * {@link CachedFile#write} without FUA, done only if it needs nothing that may wait: the cache
     * writes back later, every page of the range is resident, VALID and unshared, the file does not
     * grow, and the dirty limit has room (no pacing). Returns false, having changed nothing, otherwise. Never waits and
     * never does I/O, so it may run on a network thread.
     */
    boolean ifResident(IoPath path, long offset, ByteBuffer[] srcs) {
        if (file.readOnly || cache.mode != CacheMode.WRITEBACK) return false;
        long total = bytes(srcs);
        if (total == 0 || offset < 0 || offset + total > file.size) return false;
        int[] frames = file.reads.pinResident(offset, total, path, true);
        if (frames == null) return false;
        file.changes++;
        copyPinned(path, offset, offset + total, new Gather(srcs), frames, new boolean[frames.length], frames.length);
        return true;
    }

    /**
     * {@link CachedFile#write} without FUA where pages are not resident too, done only if nothing in it may wait:
     * every page it needs is resident (and unshared), or a new frame taken without waiting for write-back
     * whose old content no read is needed for (a whole page, or one past the end of the host file); the
     * dirty limit has room for all of it; it is at most {@link #NO_WAIT_PAGES}; the file does not grow past {@link #HOST_CHECK}. So a network
     * thread may call it: a client writing a new file sequentially is answered without the executor.
     * False otherwise, when it may have written some of the data (each page it wrote holds exactly what
     * the write puts there): the caller then does the whole write the usual way, which writes the same
     * bytes again.
     */
    boolean ifNoWait(IoPath path, long offset, ByteBuffer[] srcs) {
        if (file.readOnly || cache.mode != CacheMode.WRITEBACK) return false;
        long total = bytes(srcs);
        long end = offset + total;
        if (total == 0 || offset < 0 || end < offset || end > HOST_CHECK) return false;
        long pages = pagesOf(offset, end);
        if (pages > NO_WAIT_PAGES) return false;
        cache.lock.lock();
        try {
            if (cache.dirtyPages + pages > cache.dirtyLimit) return false;
        } finally {
            cache.lock.unlock();
        }
        file.changes++;
        try {
            return copyAll(path, offset, srcs, false);
        } catch (IOException e) {
            return false;           // (no fill is ever started here)
        }
    }

    /**
     * The largest write {@link #ifNoWait} takes, in pages (2 MiB): a network thread serves every
     * connection on it, so one request's copy and frames stay a fraction of a millisecond; an NBD write
     * of up to 32 MiB goes to the executor.
     */
    static final int NO_WAIT_PAGES = 512;

    /** The pages bytes [offset, end) lie in (0 if none). */
    private static long pagesOf(long offset, long end) {
        return end > offset ? ((end - 1) >>> PageCache.PAGE_SHIFT) - (offset >>> PageCache.PAGE_SHIFT) + 1 : 0;
    }

    /** The bytes a gathered write carries. */
    private static long bytes(ByteBuffer[] srcs) {
        long total = 0;
        for (ByteBuffer src : srcs) total += src.remaining();
        return total;
    }

    /**
     * Copies the buffers one after another from {@code offset}, as one write ({@link #copyIn}). Not
     * waiting, it copies from views, so a declined write leaves the caller's buffers to be written again.
     */
    private boolean copyAll(IoPath path, long offset, ByteBuffer[] srcs, boolean mayWait) throws IOException {
        ByteBuffer[] from = srcs;
        if (!mayWait) {
            from = new ByteBuffer[srcs.length];
            for (int i = 0; i < srcs.length; i++) from[i] = srcs[i].duplicate();
        }
        return copyIn(path, offset, new Gather(from), mayWait);
    }

    /**
     * A gathered write's buffers read one after another. A page is whole or partial by the write as a
     * whole, not by the buffers it arrived in: a 4 KiB write split across two TCP segments is two
     * buffers, and taken one buffer at a time each half would have read the page's old content first.
     */
    private static final class Gather {
        private final ByteBuffer[] srcs;
        private int i;

        Gather(ByteBuffer[] srcs) {
            this.srcs = srcs;
        }

        long remaining() {
            long n = 0;
            for (int k = i; k < srcs.length; k++) n += srcs[k].remaining();
            return n;
        }

        /** The next {@code n} bytes into {@code dst} from its position, which advances. */
        void copyTo(ByteBuffer dst, int n) {
            while (n > 0) {
                ByteBuffer src = srcs[i];
                if (!src.hasRemaining()) {
                    i++;
                    continue;
                }
                int k = Math.min(n, src.remaining());
                dst.put(dst.position(), src, src.position(), k);
                dst.position(dst.position() + k);
                src.position(src.position() + k);
                n -= k;
            }
        }
    }

    /** Past 1 TiB a write that grows the file asks the host first (below it every common file system has room). */
    static final long HOST_CHECK = 1L << 40;

    /**
     * A size the host refuses (EFBIG past the file system's largest file) must be refused when written,
     * as the kernel does, not found at write-back, where the pages could never be written and would stay
     * dirty for good: the host file is grown to {@code end} before the cache takes the write.
     */
    private void growHostFirst(long end) throws IOException {
        file.punchLock.writeLock().lock();
        try {
            if (file.store.size() >= end) return;
            file.store.truncate(end);
            cache.lock.lock();
            try {
                file.backingSize = Math.max(file.backingSize, end);
            } finally {
                cache.lock.unlock();
            }
        } finally {
            file.punchLock.writeLock().unlock();
        }
    }

    /** Pages a write claims in one hold of the cache lock, at most (1 MiB). */
    private static final int CLAIM = 256;

    /**
     * Copies what {@code src} holds into the file's pages at {@code offset}. With {@code mayWait} false it
     * returns false where it would wait for a frame or read a page's old content first, the pages before it written.
     * Pages that need neither are claimed in runs, in one hold of the lock, and copied a run of adjacent
     * frames at a time; a page that needs either is taken alone ({@link #copyPage}).
     */
    private boolean copyIn(IoPath path, long offset, Gather src, boolean mayWait) throws IOException {
        long pos = offset;
        long end = offset + src.remaining();
        int[] frames = new int[(int) Math.min(CLAIM, pagesOf(offset, end))];
        boolean[] fresh = new boolean[frames.length];
        while (pos < end) {
            int k = claim(path, pos, end, frames, fresh);
            long next = k > 0 ? copyPinned(path, pos, end, src, frames, fresh, k) : copyPage(path, pos, end, src, mayWait);
            if (next < 0) return false;
            pos = next;
        }
        return true;
    }

    /**
     * Under the lock, pinned, the pages from {@code pos} on that need nothing that may wait: resident
     * (and unshared) ones, and new frames for pages no read is needed for (whole, or past the host file's
     * end). Stops at the first other page; returns how many it claimed into {@code frames}, {@code fresh}
     * telling the new ones (LOADING).
     */
    private int claim(IoPath path, long pos, long end, int[] frames, boolean[] fresh) {
        int k = 0;
        cache.lock.lock();
        try {
            for (; k < frames.length && pos < end; k++) {
                long page = pos >>> PageCache.PAGE_SHIFT;
                int in = (int) (pos & (PAGE - 1));
                int n = (int) Math.min(PAGE - in, end - pos);
                int fr = cache.lookupNow(file, page, path);
                if (fr == PageCache.BUSY) break;
                if (fr >= 0) {
                    fr = cache.sharing.prepareWrite(file, fr, path);
                    if (fr < 0) break;                  // holding nothing: the page is taken alone
                    fresh[k] = false;
                } else {
                    if (n != PAGE && (page << PageCache.PAGE_SHIFT) < file.backingSize) break;     // its old content first
                    fr = cache.allocate(file, page, path, false);
                    if (fr < 0) break;
                    fresh[k] = true;
                }
                frames[k] = fr;
                pos += n;
            }
        } finally {
            cache.lock.unlock();
        }
        return k;
    }

    /**
     * Copies into the {@code k} pinned pages from {@code pos} ({@link #claim}'s, or resident ones; {@code
     * fresh} telling the new, LOADING ones) a run of adjacent memory frames at a time (pages filled
     * together usually are: a 1 MiB write is then a few bulk copies, not 256 of a page each), then marks
     * them dirty and unpins them in one hold of the lock; returns where they end.
     */
    private long copyPinned(IoPath path, long pos, long end, Gather src, int[] frames, boolean[] fresh, int k) {
        long upTo = Math.min(end, ((pos >>> PageCache.PAGE_SHIFT) + k) << PageCache.PAGE_SHIFT);
        int[] claimed = k == frames.length ? frames : java.util.Arrays.copyOf(frames, k);
        boolean done = false;
        try {
            // a new page the write covers in part is zeroed first: only the first and the last can be
            boolean firstPartial = (pos & (PAGE - 1)) != 0 || upTo - pos < PAGE;
            if (fresh[0] && firstPartial) CachedFile.zero(cache.data(frames[0]), 0, PAGE);
            if (k > 1 && fresh[k - 1] && (upTo & (PAGE - 1)) != 0) CachedFile.zero(cache.data(frames[k - 1]), 0, PAGE);
            for (ByteBuffer to : PinnedRange.views(cache, claimed, pos, upTo - pos)) src.copyTo(to, to.remaining());
            done = true;
        } finally {
            cache.lock.lock();
            try {
                for (int i = 0; i < k; i++) {
                    int fr = frames[i];
                    if (fresh[i]) {
                        if (done) cache.completeFill(fr, path, false);
                        else cache.failFill(file, fr);
                    }
                    if (done) cache.dirty.mark(file, fr);
                    if (!fresh[i] || done) cache.unpin(fr);
                }
                if (done && upTo > file.size) file.size = upTo;
                if (done) cache.flusher.wrote(file, pos, upTo, allFresh(fresh, k));
            } finally {
                cache.lock.unlock();
            }
        }
        return upTo;
    }

    private static boolean allFresh(boolean[] fresh, int k) {
        for (int i = 0; i < k; i++) if (!fresh[i]) return false;
        return true;
    }

    /**
     * Copies into the one page at {@code pos}, waiting for it to be read in, for a frame or for its old
     * content if {@code mayWait}; returns where the page's part of the write ends, or -1 if it would wait.
     */
    private long copyPage(IoPath path, long pos, long end, Gather src, boolean mayWait) throws IOException {
        long page = pos >>> PageCache.PAGE_SHIFT;
        int in = (int) (pos & (PAGE - 1));
        int n = (int) Math.min(PAGE - in, end - pos);
        boolean whole = n == PAGE;
        while (true) {
            int fr;
            boolean fresh = false, needFill = false;
            cache.lock.lock();
            try {
                fr = mayWait ? cache.lookup(file, page, path) : cache.lookupNow(file, page, path);
                if (fr == PageCache.BUSY) return -1;           // being read in: only a waiting write may wait for it
                if (fr >= 0) {
                    fr = cache.sharing.prepareWrite(file, fr, path);
                    if (fr < 0) {
                        if (!mayWait) return -1;
                        cache.flusher.awaitFrame();
                        continue;
                    }
                } else {
                    boolean beyond = (page << PageCache.PAGE_SHIFT) >= file.backingSize;
                    needFill = !whole && !beyond;
                    if (needFill && !mayWait) return -1;
                    fr = cache.allocate(file, page, path, needFill);
                    if (fr < 0) {
                        if (!mayWait) return -1;
                        cache.flusher.awaitFrame();
                        continue;
                    }
                    fresh = true;
                }
            } finally {
                cache.lock.unlock();
            }
            if (needFill) {
                file.reads.fill(path, new int[] {fr}, 1, page, false);
            }
            boolean done = false;
            try {
                ByteBuffer frame = cache.data(fr);
                if (fresh && !needFill && !whole) CachedFile.zero(frame, 0, PAGE);
                src.copyTo(frame.position(in), n);
                done = true;
            } finally {
                cache.lock.lock();
                try {
                    if (fresh && !needFill) {
                        if (done) cache.completeFill(fr, path, false);
                        else cache.failFill(file, fr);
                    }
                    if (done) {
                        cache.dirty.mark(file, fr);
                        if (pos + n > file.size) file.size = pos + n;
                        cache.flusher.wrote(file, pos, pos + n, fresh && !needFill);
                    }
                    if (!fresh || needFill || done) cache.unpin(fr);
                } finally {
                    cache.lock.unlock();
                }
            }
            return pos + n;
        }
    }
}
