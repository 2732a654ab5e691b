package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The shared host page cache: one per server, read and written by the NBD and the 9P paths alike. The
 * package documentation describes its design (identity, memory, concurrency, dirty pages, eviction,
 * merging); {@link CachedFile} is one file's view of it, {@link CacheAudit} recounts its bookkeeping.
 */
public final class PageCache implements AutoCloseable {
    public static final int PAGE_SIZE = 4096;
    public static final int PAGE_SHIFT = 12;

    static final byte FREE = 0, LOADING = 1, VALID = 2, DETACHED = 3;
    static final byte Q_NONE = 0, Q_SMALL = 1, Q_MAIN = 2;

    final ReentrantLock lock = new ReentrantLock();
    final Condition changed = lock.newCondition();

    final int frames;
    final FrameMemory memory;
    final CacheMode mode;
    final int maxRun;
    final int dirtyLimit;          // writers wait (or write back themselves) above this
    /** Background write-back and the pacing of writers (see {@link Flusher}). */
    final Flusher flusher = new Flusher(this);
    /** Background read-ahead fills (a small bounded pool; past its queue the reader fills inline). */
    final ReadaheadPool readahead = new ReadaheadPool();
    final ReadBatch.Contexts batchContexts = new ReadBatch.Contexts();     // for batches of cold reads

    /** Per-entry metadata (key, memory frame, state, pins, dirty flag...), guarded by lock (see {@link FrameMeta}). */
    final FrameMeta meta;
    final DedupMode dedupMode;
    final boolean dedup;      // fill-time duplicate detection (shadow: counted; merge: also shared)
    final boolean merge;
    /** Memory frames: who refers to each, the merge free list, the content index (see {@link MemoryFrames}). */
    final MemoryFrames mem;
    /** What writes, truncates and fills do about frames other keys may share (see {@link Sharing}). */
    final Sharing sharing;
    final int memFrames;
    /** Each file's dirty pages and the dirty counts (see {@link DirtyPages}). */
    final DirtyPages dirty;

    final PageTable table;
    /** Which page goes next when no frame is free (see {@link S3Fifo}). */
    final S3Fifo queues;
    /** Entries no page has had yet, and where a file's pages would best go (see {@link FreeFrames}). */
    final FreeFrames free;

    /** What happened, for the metrics (guarded by lock; see {@link CacheCounters}). */
    final CacheCounters counters = new CacheCounters();
    int validPages, dirtyPages, pinnedPages, sharedPages;

    /** Open files, and closed ones with cached pages (see {@link FileRegistry}). */
    final FileRegistry registry;

    public PageCache(long capacityBytes, CacheMode mode) {
        this(capacityBytes, mode, DedupMode.SHADOW);
    }

    /** @param dedupMode {@code --dedup}: off, shadow (count duplicated fills) or merge (also share their frames) */
    public PageCache(long capacityBytes, CacheMode mode, DedupMode dedupMode) {
        this(capacityBytes, mode, dedupMode, 25, 75);
    }

    /**
     * @param backgroundPercent the background flusher starts once this share of the cache is dirty;
     *        {@link #AUTO}: a share that follows what write-back is worth (see {@link Flusher})
     * @param limitPercent writers wait for write-back once this share is dirty
     */
    public PageCache(long capacityBytes, CacheMode mode, DedupMode dedupMode, int backgroundPercent, int limitPercent) {
        long n = capacityBytes / PAGE_SIZE;
        if (n < 64) throw new IllegalArgumentException("cache size must be at least 256 KiB");
        if (n > (1 << 27)) throw new IllegalArgumentException("cache size must be at most 512 GiB");
        this.memFrames = (int) n;
        this.merge = dedupMode == DedupMode.MERGE;
        this.frames = merge ? 2 * memFrames : memFrames;
        this.mode = mode;
        this.memory = new FrameMemory(memFrames);
        this.maxRun = Math.max(1, Math.min(512, memFrames / 16));
        this.dirtyLimit = (int) ((long) memFrames * limitPercent / 100);
        if (backgroundPercent == AUTO) {
            flusher.bounds((int) ((long) memFrames * Math.min(AUTO_FLOOR, limitPercent) / 100), dirtyLimit - memFrames / 10);
        } else {
            int share = (int) ((long) memFrames * backgroundPercent / 100);
            flusher.bounds(share, share);
        }
        meta = new FrameMeta(frames);
        this.dedupMode = dedupMode;
        this.dedup = dedupMode != DedupMode.OFF;
        for (int i = 0; i < memFrames; i++) meta.setMem(i, i);     // identity unless merging
        mem = new MemoryFrames(memFrames, merge);
        sharing = new Sharing(this);
        dirty = new DirtyPages(this);
        table = new PageTable(frames, meta);
        free = new FreeFrames(frames);
        queues = new S3Fifo(this);
        registry = new FileRegistry(this, MetadataHeap.closedFiles(capacityBytes));
    }

    public long capacityBytes() { return (long) memFrames * PAGE_SIZE; }

    public DedupMode dedupMode() { return dedupMode; }

    /** The bytes of an entry's page (position 0, limit 4096); the caller holds a pin on the entry. */
    ByteBuffer data(int f) {
        return memory.frame(meta.mem(f));
    }

    public CacheMode mode() { return mode; }

    /** Opens (or shares) the cached file for a host path. */
    public CachedFile open(Path path, boolean readOnly) throws IOException {
        return registry.open(path, readOnly);
    }

    /** The cached file of a host file if one is open (one more reference, to close), else null. */
    public CachedFile openIfPresent(FileKey key) {
        return registry.openIfPresent(key);
    }

    /** A cached file's size and change count, as a getattr reports them. */
    public record Attributes(long size, long changes) {
        public static final Attributes NOT_CACHED = new Attributes(-1, 0);
    }

    /**
     * For a getattr on a network thread, given the host file's stamp ({@link FileBackingStore#stampOf}):
     * {@link Attributes#NOT_CACHED} if the cache has no open file of that key (as {@link #openIfPresent});
     * its size and change count if it is clean and the host file is as it last saw it; null when only a
     * revalidation or a write-back, which may wait, can tell. Never waits.
     */
    public Attributes attributesIfCurrent(FileKey key, long stamp) {
        lock.lock();
        try {
            CachedFile f = registry.byKeyLocked(key);
            if (f == null || f.closed) return Attributes.NOT_CACHED;
            if (f.dirtyPages > 0 || f.seenStamp != stamp) return null;
            return new Attributes(f.size, f.changes());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Pins [offset, offset + length) of host file {@code key} if the cache knows the file (open, or closed
     * with pages still cached), the host file's stamp ({@link FileBackingStore#stampOf}) is the one the
     * cache last saw, nothing of it is dirty and every page is resident; null otherwise, having pinned and
     * counted nothing. A reader can so use pages another path (or an earlier open) filled without opening
     * the file. Never waits and never does I/O.
     */
    public PinnedRange pinIfResidentUnchanged(FileKey key, long stamp, IoPath path, long offset, int length) {
        CachedFile f;
        lock.lock();
        try {
            f = registry.byKeyLocked(key);
            if (f == null || f.seenStamp != stamp || f.dirtyPages > 0) return null;
            if (f.closed) registry.used(f);
        } finally {
            lock.unlock();
        }
        if (pinnedOverHalf()) return null;
        return f.reads.pinIfResident(path, offset, length);
    }

    /** Opens (or shares) a cached file over any backing store, which the cache takes over (closing it if this fails). */
    public CachedFile open(FileKey key, BackingStore store, boolean readOnly) throws IOException {
        return registry.register(key, store, readOnly);
    }

    /** Files with a descriptor (closed files with cached pages have none). */
    List<CachedFile> openFiles() {
        lock.lock();
        try {
            return registry.openLocked();
        } finally {
            lock.unlock();
        }
    }

    // ---- the operations below are called with the lock held ----

    /** Looks a page up and pins it; waits while it is being filled. Returns -1 if absent. */
    int lookup(CachedFile file, long page, IoPath path) {
        while (true) {
            int f = lookupNow(file, page, path);
            if (f != BUSY) return f;
            changed.awaitUninterruptibly();
        }
    }

    /** {@link #lookupNow}: the page is being read in. */
    static final int BUSY = -2;

    /** {@link #lookup} that never waits (for a network thread): {@link #BUSY} while the page is being read in. */
    int lookupNow(CachedFile file, long page, IoPath path) {
        int f = table.get(file.id, page);
        if (f < 0) return -1;
        if (meta.state(f) == LOADING) return BUSY;
        hit(f, path);
        return f;
    }

    /** Pins a resident page found by a lookup and counts the hit (and a cross-path hit). */
    void hit(int f, IoPath path) {
        pin(f);
        if (meta.freq(f) < 0) {
            meta.setFreq(f, 0);                  // first use of a read-ahead page is not a reuse
            CachedFile cf = registry.byId(meta.file(f));
            if (cf != null) cf.reads.readaheadUsed();
        } else if (meta.freq(f) < 3) meta.setFreq(f, meta.freq(f) + 1);
        counters.hits[path.ordinal()]++;
        int from = meta.filledBy(f);
        if (from != path.ordinal()) counters.crossHits[from][path.ordinal()]++;
        touch(f, path);
    }

    /** Runs {@code task} (a read-ahead) in the background; false, without running it, if the pool is full or closing. */
    public boolean readAheadInBackground(Runnable task) {
        return readahead.offer(task);
    }

    /** Waits until no background read-ahead is queued or running (tests check invariants at rest). */
    public void quiesce() {
        readahead.quiesce();
    }

    boolean pinnedOverHalf() {
        return pinnedPages > memFrames / 2;
    }

    /** Like {@link #lookup} but never waits: -1 unless the page is resident and VALID. */
    int tryLookup(CachedFile file, long page, IoPath path) {
        return tryLookupAfter(file, page, path, -1);
    }

    /** {@link #tryLookup} of the page after the one in frame {@code before} (-1: none), see {@link PageTable#getAfter}. */
    int tryLookupAfter(CachedFile file, long page, IoPath path, int before) {
        int f = table.getAfter(file.id, page, before);
        if (f < 0 || meta.state(f) != VALID) return -1;
        hit(f, path);
        return f;
    }

    /** The frame of a page without pinning, waiting or counting; -1 if absent. */
    int peek(CachedFile file, long page) {
        return table.get(file.id, page);
    }

    boolean resident(CachedFile file, long page) {
        return table.get(file.id, page) >= 0;
    }

    /**
     * Gives an absent page a frame, pinned and in state LOADING (the caller fills it, or writes all of
     * it, then calls {@link #completeFill}). Returns -1 if no frame can be had right now.
     */
    int allocate(CachedFile file, long page, IoPath path, boolean fill) {
        int f = newEntry(file, page, path);
        if (f < 0) return -1;
        counters.misses[path.ordinal()]++;
        if (queues.admit(f, GhostSet.fingerprint(file.key, page)) && fill) counters.refaults[path.ordinal()]++;
        return f;
    }

    /**
     * A free entry with a private memory frame, keyed, LOADING and pinned but in no queue yet; -1 if none.
     * While entries no page has had remain, a page takes the first at or after its file's start plus its
     * page number ({@link FreeFrames}): a file's pages sit on neighbouring frames in any fill order.
     * Then the eviction policy's victim.
     */
    int newEntry(CachedFile file, long page, IoPath path) {
        int f = free.count() == 0 ? queues.victim() : merge ? free.takeNear(0) : free.takeFor(file.placement, page);
        if (f < 0) return -1;
        if (merge) {
            while (!mem.hasFree()) {
                int e = queues.victim();          // may free no memory (a shared frame): then go on
                if (e < 0) {
                    free.give(f);
                    return -1;
                }
                free.give(e);
            }
            meta.setMem(f, mem.take());
        }
        meta.key(f, file.id, page, path.ordinal());
        pin(f);
        table.put(f);
        return f;
    }

    /** Marks a LOADING frame VALID (unless it was detached meanwhile); counts a fill if it was read. */
    void completeFill(int f, IoPath path, boolean filled) {
        completeFill(f, path, filled, -1, -1);
    }

    /**
     * As {@link #completeFill(int, IoPath, boolean)}, with the filled page's content hash and a matching
     * candidate for duplicate counting and merging ({@link Sharing#filled}).
     */
    void completeFill(int f, IoPath path, boolean filled, long hash, int match) {
        boolean valid = meta.state(f) == LOADING;
        if (valid && registry.byId(meta.file(f)) == null) {
            // a late read-ahead of a file closed and forgotten meanwhile: nobody will ask for this page
            table.remove(f);
            meta.setState(f, DETACHED);      // pinned by its filler, freed by its unpin
            valid = false;
        }
        if (filled) {
            counters.fills[path.ordinal()]++;
            counters.fillBytes[path.ordinal()] += PAGE_SIZE;
        }
        if (valid) {
            if (filled && dedup) sharing.filled(f, path, hash, match);
            becameValid(f);
            touch(f, path);
        }
        changed.signalAll();
    }

    /** An entry (on its final memory frame) becomes VALID: the residency counts take it in. */
    void becameValid(int f) {
        meta.setState(f, VALID);
        validPages++;
        if (meta.touched(f) == 3) sharedPages++;
        mem.becameValid(meta.mem(f));
        registry.residentChanged(meta.file(f), 1);
    }

    /** A VALID entry is dropped or detached: the residency counts let it go. */
    void leftValid(int f) {
        validPages--;
        if (meta.touched(f) == 3) sharedPages--;
        mem.leftValid(meta.mem(f));
        registry.residentChanged(meta.file(f), -1);
    }

    /** An entry became FREE: its memory frame reference goes with it. */
    void freed(int f) {
        meta.setState(f, FREE);
        if (merge) mem.release(meta.mem(f));
    }

    /** A fill failed: the frame is dropped so nobody ever sees its contents. */
    void failFill(CachedFile file, int f) {
        detach(file, f);
        unpin(f);
        changed.signalAll();
    }

    void pin(int f) {
        if (meta.pin(f) == 0) pinnedPages++;
    }

    void unpin(int f) {
        if (meta.unpin(f) == 0) {
            pinnedPages--;
            if (meta.state(f) == DETACHED) freed(f);   // stays in its queue; eviction reclaims it
            changed.signalAll();
        }
    }

    private void touch(int f, IoPath path) {
        int before = meta.touched(f);
        int after = before | path.bit();
        if (before != after) {
            meta.setTouched(f, after);
            if (after == 3 && meta.state(f) == VALID) sharedPages++;
        }
    }

    /** Removes a frame from the page table; a pinned frame is freed by its last unpin. */
    void detach(CachedFile file, int f) {
        if (meta.state(f) == FREE || meta.state(f) == DETACHED) return;
        table.remove(f);
        dirty.clear(file, f);
        sharing.forget(f);
        if (meta.state(f) == VALID) leftValid(f);
        if (meta.pins(f) > 0) meta.setState(f, DETACHED);
        else freed(f);
        changed.signalAll();
    }

    /**
     * Frames of a file (VALID or LOADING) with page index in [fromPage, toPageExclusive). Cost: the
     * range length or the frame count, whichever is cheapest.
     */
    int[] framesOf(CachedFile file, long fromPage, long toPageExclusive) {
        int[] out = new int[16];
        int n = 0;
        if (toPageExclusive - fromPage <= frames) {
            for (long p = fromPage; p < toPageExclusive; p++) {
                int f = table.get(file.id, p);
                if (f < 0) continue;
                if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
                out[n++] = f;
            }
            return java.util.Arrays.copyOf(out, n);
        }
        for (int f = 0; f < frames; f++) {
            if (meta.file(f) != file.id || (meta.state(f) != VALID && meta.state(f) != LOADING)) continue;
            if (meta.page(f) < fromPage || meta.page(f) >= toPageExclusive) continue;
            if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
            out[n++] = f;
        }
        return java.util.Arrays.copyOf(out, n);
    }

    /** How many nice levels below the server the background flusher runs unless told otherwise ({@code --writeback-nice}). */
    public static final int FLUSHER_NICE = 10;
    /** {@code --dirty-background auto}: a background share that follows what write-back is worth, from {@link #AUTO_FLOOR} percent up. */
    public static final int AUTO = 0;
    static final int AUTO_FLOOR = 25;

    /** {@code --write-behind}'s default: a file written sequentially is written back behind its writer once 8 MiB of it are dirty. */
    public static final long WRITE_BEHIND = 8 << 20;

    /**
     * Starts the background flusher, which writes back dirty pages whenever more than the background share
     * is dirty, {@code nice} nice levels below the server's (0-19, as {@code nice -n}; the result is at
     * most 19), and writes files written sequentially back behind their writers once
     * {@code writeBehindBytes} of them are dirty (0: never; see {@link Flusher}).
     */
    public void startBackgroundWriteback(int nice, long writeBehindBytes) {
        flusher.writeBehind(writeBehindBytes);
        flusher.start(nice);
    }

    // ---- public views ----

    /** Evicts every clean, unpinned page (for tests and the `drop caches` operator action). */
    public int dropClean() {
        lock.lock();
        try {
            return queues.evictAllClean();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Recounts the residency and sharing counters from the frames' metadata and checks the sharing
     * rules (see {@link CacheAudit}). Returns what disagrees; empty when all is well.
     */
    public List<String> verify() {
        lock.lock();
        try {
            return CacheAudit.verify(this);
        } finally {
            lock.unlock();
        }
    }

    public CacheStats snapshot() {
        lock.lock();
        try {
            boolean direct = true;
            for (CachedFile f : registry.all()) if (!f.closed) direct &= f.store.directIo();
            return counters.snapshot(this, direct);
        } finally {
            lock.unlock();
        }
    }

    /** Writes back and syncs every open file. */
    public void flushAll() throws IOException {
        IOException first = null;
        for (CachedFile f : openFiles()) {
            try {
                f.flush();
            } catch (IOException e) {
                if (first == null) first = new IOException(f.store + ": " + e.getMessage(), e);
            }
        }
        if (first != null) throw first;
    }

    @Override
    public void close() throws IOException {
        readahead.shutdown();
        batchContexts.close();
        // nothing is interrupted: a write-back in progress finishes before the final flush and before
        // the caller closes the files
        boolean interrupted = false;
        try {
            flusher.stop();
            readahead.awaitTermination(60);
        } catch (InterruptedException e) {
            interrupted = true;
        }
        try {
            flushAll();
        } finally {
            if (interrupted) Thread.currentThread().interrupt();
        }
    }
}
