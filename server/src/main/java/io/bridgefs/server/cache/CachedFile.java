package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One host file in the shared cache, as seen by both protocol paths. Offsets are byte offsets; pages
 * are 4 KiB. See {@link PageCache} for the locking design. The punch lock orders operations that
 * change what the backing file holds underneath the cache (hole punching, truncation) against fills
 * and write-back, so that a fill never caches data from before a punch and a write-back never lands
 * after one.
 */
public final class CachedFile implements AutoCloseable {
    private static final int PAGE = PageCache.PAGE_SIZE;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(256 * 1024).asReadOnlyBuffer();

    final PageCache cache;
    final int id;
    final FileKey key;
    /** Where the cache would best put this file's page 0 (see {@link FreeFrames}). */
    final int placement;
    volatile BackingStore store;     // replaced when a closed file is opened again
    volatile boolean readOnly;
    boolean closed;          // guarded by cache.lock: no references and no descriptor; clean pages may stay cached
    int resident;            // guarded by cache.lock: VALID pages of this file
    final ReentrantReadWriteLock punchLock = new ReentrantReadWriteLock();
    int refs = 1;            // guarded by cache.lock
    int dirtyPages;          // guarded by cache.lock
    int dirtyHead = -1;      // guarded by cache.lock: first frame of this file's dirty list
    long[] streamEnds;       // guarded by cache.lock: the ends of the file's write streams, then their lengths (Flusher.wrote); null until written
    int streamNext;          // guarded by cache.lock: the stream a write far from all of them replaces
    volatile long size;
    volatile long changes;     // written by PageWrites too
    volatile long seenStamp;   // the backing file's (size, mtime, ctime) as last seen by us
    long backingSize;          // guarded by cache.lock: pages at or beyond it are known to read as zeros
    /** Filling pages and reading ahead (see {@link PageFills}). */
    final PageFills reads;
    /** Writing dirty pages back (see {@link WriteBack}). */
    final WriteBack writes;
    /** Writing into pages (see {@link PageWrites}). */
    final PageWrites puts;

    CachedFile(PageCache cache, int id, FileKey key, BackingStore store, long size, boolean readOnly) {
        this.cache = cache;
        this.id = id;
        this.key = key;
        this.placement = cache.free.startFor((size + PAGE - 1) / PAGE);
        this.store = store;
        this.size = size;
        this.backingSize = size;
        this.readOnly = readOnly;
        this.seenStamp = stampOrZero();
        this.reads = new PageFills(this);
        this.writes = new WriteBack(this);
        this.puts = new PageWrites(this);
    }

    /** The read-ahead of the export that opened this file (set when it is first opened). */
    public void readahead(Readahead r) {
        reads.readahead(r);
    }

    /** Sets the read-ahead unless an export already did (the first export to open a file decides). */
    public void readaheadIfUnset(Readahead r) {
        reads.readaheadIfUnset(r);
    }

    /** The current read-ahead window in pages (for tests and the stats). */
    public int readaheadWindow() {
        return reads.readaheadWindow();
    }

    long stampOrZero() {
        try {
            return store.stamp();
        } catch (IOException e) {
            return 0;
        }
    }

    /**
     * Coherence with other host processes: if the backing file changed behind the cache (its size,
     * mtime or ctime differ from what this cache last saw) and nothing here is dirty, the cached pages
     * are dropped and the size re-read, so the next read sees the host's bytes. Returns whether it did.
     */
    public boolean revalidate() throws IOException {
        long now = store.stamp();
        if (now == 0 || now == seenStamp) return false;
        long newSize = store.size();
        punchLock.writeLock().lock();
        try {
            cache.lock.lock();
            try {
                if (dirtyPages > 0) return false;     // our own unwritten data wins; it is written back later
                for (int f : cache.framesOf(this, 0, Long.MAX_VALUE)) cache.detach(this, f);
                size = newSize;
                backingSize = newSize;
                changes++;
                seenStamp = now;
            } finally {
                cache.lock.unlock();
            }
        } finally {
            punchLock.writeLock().unlock();
        }
        return true;
    }

    public FileKey key() { return key; }

    /** Bumped by every write, truncate and discard: part of a 9P qid.version, so caching clients revalidate. */
    public long changes() { return changes; }

    /** Pages not yet written back (a getattr writes them first, so the host's size and mtime are current). */
    public boolean dirty() { return dirtyPages > 0; }
    public long size() { return size; }
    public boolean directIo() { return store.directIo(); }
    public boolean sparse() { return store.sparse(); }

    /** Reads {@code dst.remaining()} bytes at {@code offset}; bytes past the end of the file read as zeros. */
    public void read(IoPath path, long offset, ByteBuffer dst) throws IOException {
        reads.transfer(path, offset, dst, dst.remaining(), true, true);
    }

    /**
     * Copies {@code dst.remaining()} bytes at {@code offset} if every page of the range is resident, and
     * returns true; otherwise copies nothing, counts nothing and returns false. Never waits and never does
     * I/O, so it may run on a network thread.
     */
    public boolean readIfResident(IoPath path, long offset, ByteBuffer dst) {
        return reads.readIfResident(path, offset, dst);
    }

    /** Brings the range into the cache without copying it anywhere (NBD_CMD_CACHE). */
    public void prefetch(IoPath path, long offset, long length) throws IOException {
        while (length > 0) {
            int n = (int) Math.min(length, 1 << 20);
            reads.transfer(path, offset, null, n, false, false);
            offset += n;
            length -= n;
        }
    }

    /**
     * Reads the absent pages of [offset, offset + length) ahead of a reader expected to want them soon:
     * counted as read-ahead, and as unused if evicted unread. Stops, having read what it could, when no
     * frame is free (it never waits for write-back) or at the end of the file.
     */
    public void readAhead(IoPath path, long offset, long length) throws IOException {
        reads.ahead(path, offset, length);
    }

    /**
     * Pins every page of [offset, offset + length), filling misses, and hands back views of the bytes
     * in the frames themselves, for zero-copy sends; pages being filled are waited for (holding no pins
     * meanwhile). Returns null instead, holding nothing, when the cache is under pressure (over half its
     * frames pinned, or no frame free): the caller then copies with {@link #read}, which never waits
     * while holding pins.
     */
    public PinnedRange pin(IoPath path, long offset, int length) throws IOException {
        return reads.pin(path, offset, length);
    }

    /**
     * Like {@link #pin} but only if every page is already resident (and the cache is not under pin
     * pressure); null, holding and counting nothing, otherwise. Never waits and never does I/O.
     */
    public PinnedRange pinIfResident(IoPath path, long offset, int length) {
        if (cache.pinnedOverHalf()) return null;
        return reads.pinIfResident(path, offset, length);
    }

    void unpinAll(int[] frames, int count) {
        cache.lock.lock();
        try {
            for (int i = 0; i < count; i++) cache.unpin(frames[i]);
        } finally {
            cache.lock.unlock();
        }
    }

    static void zero(ByteBuffer frame, int from, int to) {
        for (int i = from; i < to; i++) frame.put(i, (byte) 0);
    }

    /**
     * Writes {@code src} at {@code offset}, growing the file if it ends past the current size. With
     * {@code fua} the data is on stable storage when this returns; otherwise as the cache mode says.
     */
    public void write(IoPath path, long offset, ByteBuffer src, boolean fua) throws IOException {
        write(path, offset, new ByteBuffer[] {src}, fua);
    }

    /** Writes the buffers one after another from {@code offset} (a gathered payload), as one write. */
    public void write(IoPath path, long offset, ByteBuffer[] srcs, boolean fua) throws IOException {
        puts.write(path, offset, srcs, fua);
    }

    /** {@link #write} only if every page is resident and nothing may wait ({@link PageWrites#ifResident}). */
    public boolean writeIfResident(IoPath path, long offset, ByteBuffer[] srcs) {
        return puts.ifResident(path, offset, srcs);
    }

    /** {@link #write} only if nothing in it may wait, new frames allowed ({@link PageWrites#ifNoWait}). */
    public boolean writeIfNoWait(IoPath path, long offset, ByteBuffer[] srcs) {
        return puts.ifNoWait(path, offset, srcs);
    }

    /** Writes back every dirty page and makes the file durable (NBD_CMD_FLUSH, FUA, Tfsync). */
    public void flush() throws IOException {
        writeback(true);
    }

    /** Writes back the file's dirty pages; with {@code sync} also fdatasyncs it. Pages stay dirty on failure. */
    public void writeback(boolean sync) throws IOException {
        writes.writeback(sync);
    }

    /**
     * Deallocates a range (NBD_CMD_TRIM, or WRITE_ZEROES that may punch): afterwards it reads as zeros.
     * Whole pages are dropped from the cache and punched in the backing file; partial pages at the edges
     * are zeroed through the cache.
     */
    public void discard(IoPath path, long offset, long length) throws IOException {
        if (readOnly) throw new java.nio.file.AccessDeniedException(key.toString(), null, "read-only");
        long end = Math.min(offset + length, size);
        if (end <= offset) return;
        long firstWhole = (offset + PAGE - 1) >>> PageCache.PAGE_SHIFT;
        long endWhole = end == size ? (end + PAGE - 1) >>> PageCache.PAGE_SHIFT : end >>> PageCache.PAGE_SHIFT;
        long headEnd = Math.min(end, firstWhole << PageCache.PAGE_SHIFT);
        if (headEnd > offset) writeZeros(path, offset, headEnd - offset);
        if (endWhole > firstWhole) {
            boolean punched;
            punchLock.writeLock().lock();
            try {
                cache.lock.lock();
                try {
                    for (int f : cache.framesOf(this, firstWhole, endWhole)) cache.detach(this, f);
                } finally {
                    cache.lock.unlock();
                }
                long start = firstWhole << PageCache.PAGE_SHIFT;
                punched = store.punchHole(start, Math.min(end, endWhole << PageCache.PAGE_SHIFT) - start);
            } finally {
                punchLock.writeLock().unlock();
            }
            if (!punched) {
                long start = firstWhole << PageCache.PAGE_SHIFT;
                writeZeros(path, start, Math.min(end, endWhole << PageCache.PAGE_SHIFT) - start);
            }
        }
        long tailStart = Math.max(offset, endWhole << PageCache.PAGE_SHIFT);
        if (end > tailStart) writeZeros(path, tailStart, end - tailStart);
    }

    /** Writes zero bytes through the cache (WRITE_ZEROES with NO_HOLE, or where holes cannot be punched). */
    public void writeZeros(IoPath path, long offset, long length) throws IOException {
        while (length > 0) {
            int n = (int) Math.min(length, ZEROS.capacity());
            write(path, offset, ZEROS.duplicate().limit(n), false);
            offset += n;
            length -= n;
        }
    }

    /** Sets the file size; pages past the new end are dropped, dirty or not. */
    public void truncate(long newSize) throws IOException {
        if (readOnly) throw new java.nio.file.AccessDeniedException(key.toString(), null, "read-only");
        changes++;
        punchLock.writeLock().lock();
        try {
            if (newSize > size) {
                // a size the host refuses (EFBIG beyond the file system's limit) must leave no state behind:
                // ask the host first, before the cache believes it
                store.truncate(newSize);
            }
            long keep = (newSize + PAGE - 1) >>> PageCache.PAGE_SHIFT;
            cache.lock.lock();
            try {
                for (int f : cache.framesOf(this, keep, Long.MAX_VALUE)) cache.detach(this, f);
                int tail = (int) (newSize & (PAGE - 1));
                if (tail != 0) {
                    int f = cache.peek(this, newSize >>> PageCache.PAGE_SHIFT);
                    if (f >= 0 && cache.meta.state(f) == PageCache.LOADING) {
                        cache.detach(this, f);      // its filler read the old bytes; nobody will see them
                    } else if (f >= 0 && cache.sharing.prepareZeroTail(this, f)) {
                        zero(cache.data(f), tail, PAGE);
                    }
                }
                size = newSize;
            } finally {
                cache.lock.unlock();
            }
            store.truncate(newSize);
            seenStamp = stampOrZero();
            cache.lock.lock();
            try {
                backingSize = newSize;
            } finally {
                cache.lock.unlock();
            }
        } finally {
            punchLock.writeLock().unlock();
        }
    }

    /** Allocation status at {@code offset} (base:allocation); dirty pages are written back first. */
    public BackingStore.Extent extentAt(long offset, long limit) throws IOException {
        if (dirtyPages > 0) writeback(false);
        return store.extentAt(offset, limit);
    }

    /**
     * Drops one reference. The last one writes back and syncs the file, then closes its descriptor; its
     * clean pages stay cached, as the kernel's do after a close, keyed by (device, inode), and are
     * checked against the file's size, mtime and ctime when it is opened again ({@link #revalidate}).
     * If the write-back fails the file stays open (pages dirty, retried later) and the error is thrown.
     * A file no name leads to any more ({@link BackingStore#unlinked}: removed, or replaced by a rename)
     * can never be read again once its last reference goes: its pages, dirty or not, are dropped instead
     * of written back, as the kernel drops an unlinked file's pages at its last close. (A host process
     * that still has it open does not see what was never written back, as with any page not yet written.)
     */
    @Override
    public void close() throws IOException {
        cache.lock.lock();
        try {
            if (refs > 1) {
                refs--;
                return;
            }
        } finally {
            cache.lock.unlock();
        }
        if (noNameLeft()) {
            dropAndClose();
            return;
        }
        IOException failed = null;
        try {
            flush();        // still holding the last reference: nobody can see the file closed meanwhile
        } catch (IOException e) {
            failed = e;
        }
        BackingStore old;
        cache.lock.lock();
        try {
            if (--refs > 0 || failed != null) {
                if (failed != null) throw failed;
                return;      // opened again while we flushed
            }
            old = store;
            cache.registry.closed(this);
        } finally {
            cache.lock.unlock();
        }
        writes.closeAfterWriteBack(old);
    }

    /**
     * Whether no name leads to the file any more ({@link BackingStore#unlinked}: removed, here or on the
     * host); false where the store cannot say (its pages are then written back).
     */
    public boolean noNameLeft() {
        try {
            return store.unlinked();
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * The last close of a file no name leads to: forgets every page, dirty or not, writing nothing back,
     * and closes it, in one hold of the cache lock, so that nobody opens it in between and finds its
     * pages gone (one who opened it before keeps it open, pages and all).
     */
    private void dropAndClose() throws IOException {
        BackingStore old;
        punchLock.writeLock().lock();
        try {
            cache.lock.lock();
            try {
                if (refs > 1) {
                    refs--;             // opened again meanwhile: the next last close decides
                    return;
                }
                for (int f : cache.framesOf(this, 0, Long.MAX_VALUE)) cache.detach(this, f);
                refs--;
                old = store;
                cache.registry.closed(this);        // nothing resident: forgotten
            } finally {
                cache.lock.unlock();
            }
        } finally {
            punchLock.writeLock().unlock();
        }
        writes.closeAfterWriteBack(old);
    }

    /** With the cache lock held: a closed file is opened again over a fresh descriptor. */
    void reopen(BackingStore fresh, boolean readOnly) {
        store = fresh;
        this.readOnly = readOnly;
        closed = false;
        refs = 1;
    }
}
