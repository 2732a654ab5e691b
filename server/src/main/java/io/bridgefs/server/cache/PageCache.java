package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.AccessDeniedException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The shared host page cache: one per server, read and written by the NBD and the 9P paths alike.
 *
 * <h2>Identity</h2>
 * A page is keyed by (file, page index), where the file is a host (device, inode) pair interned to a
 * small integer id on open. The same host file reached through NBD, 9P or a hard link is one
 * {@link CachedFile} and maps to the same frames.
 *
 * <h2>Memory</h2>
 * {@link FrameMemory} holds a fixed number of 4 KiB frames off-heap, sized once. Per-frame metadata
 * lives in primitive arrays indexed by frame number (key, state, pins, dirty flag and write generation,
 * S3-FIFO frequency and queue, which paths touched it). The page table ({@link PageTable}) and the
 * ghost ({@link GhostSet}) are open-addressing tables of primitives: the hot path makes no per-page
 * heap objects beyond a short-lived buffer view.
 *
 * <h2>Concurrency</h2>
 * One lock guards all metadata, queues and counters; it is held for bookkeeping only, never across I/O
 * or while copying page data. A thread that wants a page takes the lock, looks it up and pins it (or
 * allocates a frame for it in state LOADING, pinned), drops the lock, then copies or does I/O. A frame
 * that is pinned is never evicted nor reassigned, so its contents and key are stable for the pinner.
 * Threads that find a LOADING frame wait on {@link #changed} until the filler finishes, so each page
 * is read from backing storage once. A thread never waits while it holds pins, which rules out
 * deadlock: reads and writes process one page (or one run of missing pages) at a time and unpin it
 * before moving on. Copies into the same page by concurrent requests are not atomic with respect to
 * each other, as on a disk.
 *
 * <h2>Dirty pages</h2>
 * A writer copies into the frame, then, under the lock, sets the dirty flag and bumps the frame's
 * write generation; only then is the write acknowledged. Write-back pins the dirty frames, notes their
 * generations, copies and writes them without the lock, and clears the dirty flag only where the
 * generation is unchanged: a write that raced with the write-back keeps its page dirty. Dirty frames
 * are never evicted; when every unpinned frame is dirty the allocating thread writes some back first.
 * A failed write-back leaves pages dirty, so data that was acknowledged is never dropped.
 *
 * <h2>Eviction</h2>
 * S3-FIFO: new pages enter a small FIFO (10% of frames); pages hit again while there move to the main
 * FIFO, the rest are evicted early. Main-queue pages with hits get another round (frequency 0..3).
 * Evicted keys are remembered as fingerprints in the ghost; a fill whose key is in the ghost is a
 * refault and goes straight to main. A one-pass sequential read therefore flows through the small
 * queue without flushing the hot set in main.
 *
 * <h2>Entries and memory frames; merging</h2>
 * The metadata above describes <em>entries</em> (one per resident key); the bytes live in a
 * <em>memory frame</em> {@code fMem[entry]}. Without merging the two are one to one. With
 * {@link DedupMode#MERGE} there are twice as many entries as memory frames, and a fill whose bytes
 * equal a clean resident page (hash match, then byte compare) drops its own memory frame and maps its
 * entry onto that one (KSM's pages_shared / pages_sharing). A memory frame referenced by more than one
 * entry is never written in place: a writer first replaces its entry with a private copy
 * ({@link #breakShare}, counted in {@code dedup_cow_breaks}), and zeroing a shared tail on truncate
 * drops the page instead, so no other key ever sees the change. {@code fMem} of an entry changes only
 * while the entry is LOADING and pinned by its filler, so a pinner can read it without the lock.
 */
public final class PageCache implements AutoCloseable {
    public static final int PAGE_SIZE = 4096;
    public static final int PAGE_SHIFT = 12;

    static final byte FREE = 0, LOADING = 1, VALID = 2, DETACHED = 3;
    static final byte Q_NONE = 0, Q_SMALL = 1, Q_MAIN = 2;
    private static final int EVICT_SCAN_LIMIT = 8192;

    final ReentrantLock lock = new ReentrantLock();
    final Condition changed = lock.newCondition();

    final int frames;
    final FrameMemory memory;
    final CacheMode mode;
    final int maxRun;
    final int dirtyLimit;          // writers wait (or write back themselves) above this
    final int backgroundDirty;     // the background flusher starts above this
    private Thread flusher;
    final java.util.concurrent.atomic.AtomicInteger readaheadPending = new java.util.concurrent.atomic.AtomicInteger();
    /** Background read-ahead fills (a small bounded pool; past its queue the reader fills inline). */
    final java.util.concurrent.ThreadPoolExecutor readahead = new java.util.concurrent.ThreadPoolExecutor(4, 4, 30,
            TimeUnit.SECONDS, new java.util.concurrent.ArrayBlockingQueue<>(64), r -> {
                Thread t = new Thread(r, "bridgefs-readahead");
                t.setDaemon(true);
                return t;
            });
    private final Condition flushNeeded = lock.newCondition();
    private volatile boolean stopping;

    // per-frame metadata, guarded by lock
    final int[] fFile;
    final long[] fPage;
    final byte[] fState;
    final int[] fPins;
    final boolean[] fDirty;
    final int[] fGen;
    final byte[] fFreq;
    final byte[] fQueue;
    final byte[] fFilledBy;
    final byte[] fTouched;
    final DedupMode dedupMode;
    final boolean dedup;      // fill-time duplicate detection (shadow: counted; merge: also shared)
    private final boolean merge;
    private final ContentIndex content;   // indexed by memory frame
    private final boolean[] fZero;      // resident all-zero page (filled from storage)
    private final boolean[] fDup;       // resident page whose content was already resident at fill
    final int memFrames;
    final int[] fMem;                   // per entry: the memory frame holding its bytes
    private final int[] memRef;         // per memory frame: entries referring to it (merge only)
    private final int[] memValid;       // per memory frame: VALID entries referring to it
    private final int[] memFree;        // free memory frames (merge only)
    private final int[] memHolds;       // per memory frame: fillers comparing against it (merge only)
    private int memTop;
    final int[] dNext;        // per-file intrusive list of dirty frames; -1 ends it
    final int[] dPrev;

    private final PageTable table;
    private final IntRing small;
    private final IntRing main;
    private final int smallTarget;
    private final int[] freeStack;
    private int freeTop;
    private final GhostSet ghost;

    // counters, guarded by lock
    private final long[] hits = new long[2], misses = new long[2], fills = new long[2], fillBytes = new long[2], refaults = new long[2];
    private final long[][] crossHits = new long[2][2];
    private long evictions;
    /** Pages read ahead, and those of them evicted never read (guarded by lock). */
    long readaheadPages, readaheadUnusedPages;
    private final long[] dupFills = new long[2], dupFillBytes = new long[2];
    private int zeroPages, dupPages;
    private int residentFrames, pagesShared, pagesSharing;   // memory frames held by VALID entries; KSM counts
    private long cowBreaks;
    private int validPages, dirtyPages, pinnedPages, sharedPages;
    long writebackBytes;

    private final Map<FileKey, CachedFile> files = new HashMap<>();     // open files, and closed ones with cached pages
    private final Map<Integer, CachedFile> byId = new HashMap<>();
    private final Map<FileKey, Integer> ids = new HashMap<>();
    private int nextId = 1;

    public PageCache(long capacityBytes, CacheMode mode) {
        this(capacityBytes, mode, DedupMode.SHADOW);
    }

    /** @param dedupMode {@code --dedup}: off, shadow (count duplicated fills) or merge (also share their frames) */
    public PageCache(long capacityBytes, CacheMode mode, DedupMode dedupMode) {
        long n = capacityBytes / PAGE_SIZE;
        if (n < 64) throw new IllegalArgumentException("cache size must be at least 256 KiB");
        if (n > (1 << 27)) throw new IllegalArgumentException("cache size must be at most 512 GiB");
        this.memFrames = (int) n;
        this.merge = dedupMode == DedupMode.MERGE;
        this.frames = merge ? 2 * memFrames : memFrames;
        this.mode = mode;
        this.memory = new FrameMemory(memFrames);
        this.maxRun = Math.max(1, Math.min(512, memFrames / 16));
        this.dirtyLimit = memFrames / 4 * 3;
        this.backgroundDirty = memFrames / 4;
        fFile = new int[frames];
        fPage = new long[frames];
        fState = new byte[frames];
        fPins = new int[frames];
        fDirty = new boolean[frames];
        fGen = new int[frames];
        fFreq = new byte[frames];
        fQueue = new byte[frames];
        fFilledBy = new byte[frames];
        fTouched = new byte[frames];
        this.dedupMode = dedupMode;
        this.dedup = dedupMode != DedupMode.OFF;
        content = new ContentIndex(memFrames);
        fMem = new int[frames];
        for (int i = 0; i < memFrames; i++) fMem[i] = i;     // identity unless merging
        memRef = new int[merge ? memFrames : 0];
        memValid = new int[memFrames];
        memFree = new int[merge ? memFrames : 0];
        memHolds = new int[merge ? memFrames : 0];
        for (int i = 0; i < memFree.length; i++) memFree[i] = memFrames - 1 - i;
        memTop = memFree.length;
        fZero = new boolean[frames];
        fDup = new boolean[frames];
        dNext = new int[frames];
        dPrev = new int[frames];
        table = new PageTable(frames, fFile, fPage);
        small = new IntRing(frames);
        main = new IntRing(frames);
        smallTarget = Math.max(1, frames / 10);
        freeStack = new int[frames];
        for (int i = 0; i < frames; i++) freeStack[i] = frames - 1 - i;
        freeTop = frames;
        ghost = new GhostSet(frames - smallTarget);
    }

    public long capacityBytes() { return (long) memFrames * PAGE_SIZE; }

    public DedupMode dedupMode() { return dedupMode; }

    /** The bytes of an entry's page (position 0, limit 4096); the caller holds a pin on the entry. */
    ByteBuffer data(int f) {
        return memory.frame(fMem[f]);
    }

    public CacheMode mode() { return mode; }

    /** Opens (or shares) the cached file for a host path. */
    public CachedFile open(Path path, boolean readOnly) throws IOException {
        FileKey key = FileKey.of(path);
        lock.lock();
        try {
            CachedFile f = files.get(key);
            if (f != null && !f.closed) {
                if (!readOnly && f.readOnly) throw new AccessDeniedException(path.toString(), null, "already open read-only");
                f.refs++;
                return f;
            }
        } finally {
            lock.unlock();
        }
        return register(key, FileBackingStore.open(path, readOnly), readOnly);
    }

    /** The cached file of a host file if one is open (one more reference, to close), else null. */
    public CachedFile openIfPresent(FileKey key) {
        lock.lock();
        try {
            CachedFile f = files.get(key);
            if (f == null || f.closed) return null;
            f.refs++;
            return f;
        } finally {
            lock.unlock();
        }
    }

    /** Opens (or shares) a cached file over any backing store; used by tests with fault-injecting stores. */
    public CachedFile open(FileKey key, BackingStore store, boolean readOnly) throws IOException {
        return register(key, store, readOnly);
    }

    private CachedFile register(FileKey key, BackingStore store, boolean readOnly) throws IOException {
        long size = store.size();
        CachedFile reopened = null;
        lock.lock();
        try {
            CachedFile existing = files.get(key);
            if (existing != null && existing.closed) {
                existing.reopen(store, readOnly);
                reopened = existing;
            } else if (existing != null) {
                existing.refs++;
                store.close();
                return existing;
            } else {
                int id = ids.computeIfAbsent(key, k -> nextId++);
                CachedFile f = new CachedFile(this, id, key, store, size, readOnly);
                files.put(key, f);
                byId.put(id, f);
                return f;
            }
        } finally {
            lock.unlock();
        }
        try {
            reopened.revalidate();     // changed on the host while it was closed? then its pages go
        } catch (IOException e) {
            reopened.close();
            throw e;
        }
        return reopened;
    }

    /** With the lock held: the file's last reference is gone and its descriptor about to be closed. */
    void closed(CachedFile f) {
        f.closed = true;
        if (f.resident == 0) forget(f);
    }

    private void forget(CachedFile f) {
        files.remove(f.key);
        byId.remove(f.id);
    }

    /** A page of a file became VALID (+1) or stopped being VALID (-1); a closed file without pages is forgotten. */
    private void residentChanged(int fileId, int delta) {
        CachedFile cf = byId.get(fileId);
        if (cf == null) return;
        cf.resident += delta;
        if (cf.resident == 0 && cf.closed) forget(cf);
    }

    /** Files with a descriptor (closed files with cached pages have none). */
    List<CachedFile> openFiles() {
        lock.lock();
        try {
            List<CachedFile> out = new ArrayList<>();
            for (CachedFile f : files.values()) if (!f.closed) out.add(f);
            return out;
        } finally {
            lock.unlock();
        }
    }

    // ---- the operations below are called with the lock held ----

    /** Looks a page up and pins it; waits while it is being filled. Returns -1 if absent. */
    int lookup(CachedFile file, long page, IoPath path) {
        while (true) {
            int f = table.get(file.id, page);
            if (f < 0) return -1;
            if (fState[f] == LOADING) {
                changed.awaitUninterruptibly();
                continue;
            }
            hit(f, path);
            return f;
        }
    }

    /** Pins a resident page found by a lookup and counts the hit (and a cross-path hit). */
    private void hit(int f, IoPath path) {
        pin(f);
        if (fFreq[f] < 0) {
            fFreq[f] = 0;                        // first use of a read-ahead page is not a reuse
            CachedFile cf = byId.get(fFile[f]);
            if (cf != null) cf.readaheadUsed();
        } else if (fFreq[f] < 3) fFreq[f]++;
        hits[path.ordinal()]++;
        int from = fFilledBy[f];
        if (from != path.ordinal()) crossHits[from][path.ordinal()]++;
        touch(f, path);
    }

    /** Waits until no background read-ahead is queued or running (tests check invariants at rest). */
    public void quiesce() {
        while (readaheadPending.get() > 0) Thread.onSpinWait();
    }

    boolean pinnedOverHalf() {
        return pinnedPages > memFrames / 2;
    }

    /** Like {@link #lookup} but never waits: -1 unless the page is resident and VALID. */
    int tryLookup(CachedFile file, long page, IoPath path) {
        int f = table.get(file.id, page);
        if (f < 0 || fState[f] != VALID) return -1;
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
        misses[path.ordinal()]++;
        long fp = GhostSet.fingerprint(file.id, page);
        boolean refault = ghost.contains(fp);
        if (refault) {
            ghost.remove(fp);
            if (fill) refaults[path.ordinal()]++;
        }
        fQueue[f] = refault ? Q_MAIN : Q_SMALL;
        (refault ? main : small).add(f);
        return f;
    }

    /** A free entry with a private memory frame, keyed, LOADING and pinned but in no queue yet; -1 if none. */
    private int newEntry(CachedFile file, long page, IoPath path) {
        int f = freeTop > 0 ? freeStack[--freeTop] : evict();
        if (f < 0) return -1;
        if (merge) {
            while (memTop == 0) {
                int e = evict();          // may free no memory (a shared frame): then go on
                if (e < 0) {
                    freeStack[freeTop++] = f;
                    return -1;
                }
                freeStack[freeTop++] = e;
            }
            int m = memFree[--memTop];
            fMem[f] = m;
            memRef[m] = 1;
        }
        fFile[f] = file.id;
        fPage[f] = page;
        fState[f] = LOADING;
        fDirty[f] = false;
        fFreq[f] = 0;
        fFilledBy[f] = (byte) path.ordinal();
        fTouched[f] = 0;
        pin(f);
        table.put(f);
        return f;
    }

    /**
     * Before a writer copies into a VALID entry it has pinned: returns the entry to write into (a private
     * copy if the memory frame was shared; the old entry is then unpinned), or -1, holding nothing, when
     * no copy can be had now. The bytes leave the content index first, so no fill can merge onto a page
     * while it is being written.
     */
    int prepareWrite(CachedFile file, int f, IoPath path) {
        if (sharedFrame(f)) {
            int n = breakShare(file, f, path);
            unpin(f);
            if (n < 0) return -1;
            f = n;
        }
        content.remove(fMem[f]);
        return f;
    }

    /**
     * Before zeroing the tail of a VALID page in place (truncate): true if that may be done; false if
     * its frame is shared, in which case the (clean) page is dropped instead and read again when needed.
     */
    boolean prepareZeroTail(CachedFile file, int f) {
        if (sharedFrame(f)) {
            detach(file, f);
            return false;
        }
        content.remove(fMem[f]);
        return true;
    }

    /** Whether other entries (or a detached reader) share this entry's memory frame: it must not be written in place. */
    boolean sharedFrame(int f) {
        return merge && memRef[fMem[f]] > 1;
    }

    /**
     * Copy-on-write: replaces a VALID entry whose memory frame is shared (pinned by the caller) with a new
     * entry for the same key holding a private copy of the bytes, VALID and pinned. The old entry is
     * detached (readers that pinned it keep the old bytes) and stays pinned by the caller, who unpins it.
     * Returns the new entry, or -1 (old entry still detached: it was clean, so nothing is lost) when no
     * frame can be had now.
     */
    int breakShare(CachedFile file, int f, IoPath path) {
        long page = fPage[f];
        byte freq = fFreq[f], filledBy = fFilledBy[f], touched = fTouched[f], queue = fQueue[f];
        detach(file, f);
        int n = newEntry(file, page, path);
        if (n < 0) return -1;
        data(n).put(data(f));
        fFreq[n] = freq;
        fFilledBy[n] = filledBy;
        fQueue[n] = queue == Q_MAIN ? Q_MAIN : Q_SMALL;
        (fQueue[n] == Q_MAIN ? main : small).add(n);
        fTouched[n] = touched;
        becameValid(n);
        cowBreaks++;
        return n;
    }

    /** Marks a LOADING frame VALID (unless it was detached meanwhile); counts a fill if it was read. */
    void completeFill(int f, IoPath path, boolean filled) {
        completeFill(f, path, filled, -1, -1);
    }

    /**
     * A memory frame whose content is indexed under {@code hash} (a resident page that may hold the same
     * bytes as a page being filled), held so that it is neither freed nor reused while the filler
     * compares the bytes without the lock; -1 if none. Release it with {@link #releaseCandidate}.
     */
    int holdCandidate(long hash) {
        for (int m = content.first(hash); m >= 0; m = content.next(m)) {
            if (memValid[m] == 0) continue;
            if (merge) memHolds[m]++;
            else pin(m);                 // without merging, memory frame m is entry m
            return m;
        }
        return -1;
    }

    void releaseCandidate(int m) {
        if (!merge) {
            unpin(m);
        } else {
            memHolds[m]--;
            freeIfUnused(m);
        }
    }

    /**
     * As {@link #completeFill(int, IoPath, boolean)}, with the content hash of a filled page
     * ({@code 0}: all zeros; {@code -1}: not hashed) and {@code match}, a held candidate frame the
     * filler found to hold the same bytes (or -1): a fill whose bytes equal a page resident under
     * another key is a duplicated fill (the backing store was read again for data already in memory).
     * The match counts only if the candidate is still resident and indexed under the same hash, that
     * is, unchanged since it was compared (a writer takes a frame out of the index before writing).
     */
    void completeFill(int f, IoPath path, boolean filled, long hash, int match) {
        boolean valid = fState[f] == LOADING;
        if (valid && !byId.containsKey(fFile[f])) {
            // a late read-ahead of a file closed and forgotten meanwhile: nobody will ask for this page
            table.remove(f);
            fState[f] = DETACHED;      // pinned by its filler, freed by its unpin
            valid = false;
        }
        if (filled) {
            fills[path.ordinal()]++;
            fillBytes[path.ordinal()] += PAGE_SIZE;
        }
        if (valid) {
            int same = -1;
            if (filled && dedup && hash == 0) {
                fZero[f] = true;
                zeroPages++;
            } else if (filled && dedup && hash != -1) {
                if (match >= 0 && memValid[match] > 0 && content.isIndexed(match) && content.hashOf(match) == hash) same = match;
                if (same >= 0) {
                    dupFills[path.ordinal()]++;
                    dupFillBytes[path.ordinal()] += PAGE_SIZE;
                    if (!merge) {
                        fDup[f] = true;
                        dupPages++;
                    }
                }
                if (merge && same >= 0) {
                    int own = fMem[f];
                    fMem[f] = same;
                    memRef[same]++;
                    releaseMemory(own);
                } else {
                    content.add(fMem[f], hash);
                }
            }
            becameValid(f);
            touch(f, path);
        }
        changed.signalAll();
    }

    /** An entry (on its final memory frame) becomes VALID: the residency counts take it in. */
    private void becameValid(int f) {
        fState[f] = VALID;
        validPages++;
        if (fTouched[f] == 3) sharedPages++;
        frameBecameValid(fMem[f]);
        residentChanged(fFile[f], 1);
    }

    /** A VALID entry is dropped or detached: the residency counts let it go. */
    private void leftValid(int f) {
        validPages--;
        if (fTouched[f] == 3) sharedPages--;
        frameLeftValid(fMem[f]);
        residentChanged(fFile[f], -1);
    }

    private void frameBecameValid(int m) {
        int v = ++memValid[m];
        if (v == 1) {
            residentFrames++;
        } else {
            pagesSharing++;
            if (v == 2) pagesShared++;
        }
    }

    /** An entry on memory frame {@code m} stops being VALID; the last one takes the bytes out of the index. */
    private void frameLeftValid(int m) {
        int v = memValid[m]--;
        if (v == 1) {
            residentFrames--;
            content.remove(m);
        } else {
            pagesSharing--;
            if (v == 2) pagesShared--;
        }
    }

    /** Drops one entry's reference to a memory frame (merge only); the last one frees it, unless a filler holds it. */
    private void releaseMemory(int m) {
        memRef[m]--;
        freeIfUnused(m);
    }

    /** A memory frame nothing refers to or holds goes back to the free list (merge only). */
    private void freeIfUnused(int m) {
        if (memRef[m] == 0 && memHolds[m] == 0) memFree[memTop++] = m;
    }

    /** An entry became FREE: its memory frame reference goes with it. */
    private void freed(int f) {
        fState[f] = FREE;
        if (merge) releaseMemory(fMem[f]);
    }

    /** The page's content is about to change or go: it no longer counts as zero or duplicate. */
    private void forgetContent(int f) {
        if (fZero[f]) {
            fZero[f] = false;
            zeroPages--;
        }
        if (fDup[f]) {
            fDup[f] = false;
            dupPages--;
        }
    }

    /** A fill failed: the frame is dropped so nobody ever sees its contents. */
    void failFill(CachedFile file, int f) {
        detach(file, f);
        unpin(f);
        changed.signalAll();
    }

    void pin(int f) {
        if (fPins[f]++ == 0) pinnedPages++;
    }

    void unpin(int f) {
        if (--fPins[f] == 0) {
            pinnedPages--;
            if (fState[f] == DETACHED) freed(f);   // stays in its queue; eviction reclaims it
            changed.signalAll();
        }
    }

    void markDirty(CachedFile file, int f) {
        assert !sharedFrame(f) : "a shared frame is never written in place";
        forgetContent(f);
        content.remove(fMem[f]);
        if (!fDirty[f]) {
            fDirty[f] = true;
            dirtyPages++;
            file.dirtyPages++;
            dPrev[f] = -1;
            dNext[f] = file.dirtyHead;
            if (file.dirtyHead >= 0) dPrev[file.dirtyHead] = f;
            file.dirtyHead = f;
            if (dirtyPages > backgroundDirty && flusher != null) flushNeeded.signal();
        }
        fGen[f]++;
    }

    void markClean(CachedFile file, int f) {
        if (fDirty[f]) {
            fDirty[f] = false;
            dirtyPages--;
            file.dirtyPages--;
            if (dPrev[f] >= 0) dNext[dPrev[f]] = dNext[f];
            else file.dirtyHead = dNext[f];
            if (dNext[f] >= 0) dPrev[dNext[f]] = dPrev[f];
        }
    }

    private void touch(int f, IoPath path) {
        int before = fTouched[f];
        int after = before | path.bit();
        if (before != after) {
            fTouched[f] = (byte) after;
            if (after == 3 && fState[f] == VALID) sharedPages++;
        }
    }

    /** Removes a frame from the page table; a pinned frame is freed by its last unpin. */
    void detach(CachedFile file, int f) {
        if (fState[f] == FREE || fState[f] == DETACHED) return;
        table.remove(f);
        markClean(file, f);
        forgetContent(f);
        if (fState[f] == VALID) leftValid(f);
        if (fPins[f] > 0) fState[f] = DETACHED;
        else freed(f);
        changed.signalAll();
    }

    /**
     * Frames of a file (VALID or LOADING) with page index in [fromPage, toPageExclusive); with
     * {@code dirtyOnly}, the file's VALID dirty frames from its dirty list, whatever the range.
     * Cost: the dirty count, the range length or the frame count, whichever is cheapest.
     */
    int[] framesOf(CachedFile file, long fromPage, long toPageExclusive, boolean dirtyOnly) {
        int[] out = new int[16];
        int n = 0;
        if (dirtyOnly) {
            for (int f = file.dirtyHead; f >= 0; f = dNext[f]) {
                if (fState[f] != VALID) continue;
                if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
                out[n++] = f;
            }
            return java.util.Arrays.copyOf(out, n);
        }
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
            if (fFile[f] != file.id || (fState[f] != VALID && fState[f] != LOADING)) continue;
            if (fPage[f] < fromPage || fPage[f] >= toPageExclusive) continue;
            if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
            out[n++] = f;
        }
        return java.util.Arrays.copyOf(out, n);
    }

    /**
     * Called when no frame could be allocated and the caller holds no pins: writes back dirty pages if
     * that is what blocks eviction, else waits briefly for a frame to be unpinned. May drop the lock.
     */
    void awaitFrame() throws IOException {
        if (dirtyPages > 0) {
            CachedFile victim = null;
            for (CachedFile f : files.values()) {
                if (f.dirtyPages > 0) { victim = f; break; }
            }
            if (victim != null) {
                lock.unlock();
                try {
                    victim.writeback(false);
                } finally {
                    lock.lock();
                }
                return;
            }
        }
        try {
            changed.await(20, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting for a cache frame");
        }
    }

    /**
     * Called by writers after a write: above the dirty limit they wait for the background flusher, or,
     * without one (or when it makes no progress, e.g. failing storage), write back this file themselves.
     */
    void throttle(CachedFile file) throws IOException {
        boolean selfWriteback;
        lock.lock();
        try {
            if (dirtyPages <= dirtyLimit) return;
            selfWriteback = flusher == null;
            if (!selfWriteback) {
                flushNeeded.signal();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                while (dirtyPages > dirtyLimit) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        selfWriteback = true;
                        break;
                    }
                    changed.awaitNanos(Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)));
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting for write-back");
        } finally {
            lock.unlock();
        }
        if (selfWriteback) file.writeback(false);
    }

    /** Starts the background flusher: it writes back dirty pages whenever more than 1/4 of the cache is dirty. */
    public void startBackgroundWriteback() {
        lock.lock();
        try {
            if (flusher != null) return;
            flusher = new Thread(this::flushLoop, "bridgefs-flusher");
            flusher.setDaemon(true);
            flusher.start();
        } finally {
            lock.unlock();
        }
    }

    private void flushLoop() {
        while (!stopping) {
            CachedFile victim = null;
            lock.lock();
            try {
                while (!stopping && dirtyPages <= backgroundDirty) flushNeeded.awaitUninterruptibly();
                for (CachedFile f : files.values()) {
                    if (f.closed) continue;
                    if (victim == null || f.dirtyPages > victim.dirtyPages) victim = f;
                }
            } finally {
                lock.unlock();
            }
            if (victim == null || stopping) continue;
            try {
                victim.writeback(false);
            } catch (IOException e) {
                org.slf4j.LoggerFactory.getLogger(PageCache.class)
                        .warn("background write-back of {} failed (pages stay dirty): {}", victim.store, e.toString());
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException ie) {
                    return;
                }
            }
        }
    }

    private int evict() {
        for (int budget = Math.min(2 * frames + 16, EVICT_SCAN_LIMIT); budget > 0; budget--) {
            if (small.size() == 0 && main.size() == 0) return -1;
            boolean fromSmall = small.size() > smallTarget || main.size() == 0;
            IntRing q = fromSmall ? small : main;
            int f = q.poll();
            if (fState[f] == FREE) {
                fQueue[f] = Q_NONE;
                return f;
            }
            if (fState[f] != VALID || fPins[f] > 0 || fDirty[f]) {
                if (fromSmall && fFreq[f] > 0) {
                    fFreq[f] = 0;
                    fQueue[f] = Q_MAIN;
                    main.add(f);
                } else {
                    q.add(f);
                }
                continue;
            }
            if (fFreq[f] > 0) {
                if (fromSmall) {
                    fFreq[f] = 0;
                    fQueue[f] = Q_MAIN;
                    main.add(f);
                } else {
                    fFreq[f]--;
                    main.add(f);
                }
                continue;
            }
            evictFrame(f);
            fQueue[f] = Q_NONE;
            return f;
        }
        return -1;
    }

    /** Drops a clean, unpinned VALID page, remembering its key in the ghost. */
    private void evictFrame(int f) {
        if (fFreq[f] < 0) {
            readaheadUnusedPages++;
            CachedFile cf = byId.get(fFile[f]);
            if (cf != null) cf.readaheadWasted();
        }
        ghost.add(GhostSet.fingerprint(fFile[f], fPage[f]));
        table.remove(f);
        forgetContent(f);
        leftValid(f);
        freed(f);
        evictions++;
    }

    // ---- public views ----

    /** Evicts every clean, unpinned page (for tests and the `drop caches` operator action). */
    public int dropClean() {
        lock.lock();
        try {
            int n = 0;
            for (int f = 0; f < frames; f++) {
                if (fState[f] == VALID && fPins[f] == 0 && !fDirty[f]) {
                    evictFrame(f);
                    n++;
                }
            }
            return n;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Recounts the residency and sharing counters from the frames' metadata and checks the sharing
     * rules (no dirty page on a shared frame, every key found in the page table). Returns what
     * disagrees; empty when all is well. Takes the lock for a full pass over the frames.
     */
    public List<String> verify() {
        lock.lock();
        try {
            List<String> bad = new ArrayList<>();
            int valid = 0, dirty = 0, pinned = 0, shared = 0;
            int[] refs = new int[memFrames], valids = new int[memFrames];
            for (int f = 0; f < frames; f++) {
                if (fPins[f] > 0) pinned++;
                if (fState[f] == FREE) continue;
                refs[fMem[f]]++;
                if (fState[f] != VALID) continue;
                valid++;
                valids[fMem[f]]++;
                if (fTouched[f] == 3) shared++;
                if (fDirty[f]) dirty++;
                if (table.get(fFile[f], fPage[f]) != f) bad.add("entry " + f + " is not found under its key");
            }
            int resident = 0, pShared = 0, pSharing = 0;
            for (int m = 0; m < memFrames; m++) {
                if (valids[m] > 0) resident++;
                if (valids[m] > 1) {
                    pShared++;
                    pSharing += valids[m] - 1;
                }
                if (valids[m] != memValid[m]) bad.add("frame " + m + ": " + valids[m] + " valid entries, counted " + memValid[m]);
                if (merge && refs[m] != memRef[m]) bad.add("frame " + m + ": " + refs[m] + " entries, counted " + memRef[m]);
            }
            for (int f = 0; f < frames; f++) {
                if (fState[f] == VALID && fDirty[f] && refs[fMem[f]] > 1) bad.add("dirty entry " + f + " is on a shared frame");
            }
            Map<Integer, Integer> perFile = new HashMap<>();
            for (int f = 0; f < frames; f++) if (fState[f] == VALID) perFile.merge(fFile[f], 1, Integer::sum);
            for (CachedFile cf : files.values()) {
                int n = perFile.getOrDefault(cf.id, 0);
                if (n != cf.resident) bad.add("file " + cf.key + ": " + n + " resident pages, counted " + cf.resident);
                if (cf.closed && (cf.dirtyPages > 0 || n == 0)) bad.add("closed file " + cf.key + " kept with " + n + " pages, " + cf.dirtyPages + " dirty");
            }
            for (int id : perFile.keySet()) if (!byId.containsKey(id)) bad.add("resident pages of forgotten file id " + id);
            int unused = 0;
            for (int m = 0; m < memFrames; m++) if (refs[m] == 0 && (!merge || memHolds[m] == 0)) unused++;
            if (merge && unused != memTop) bad.add(unused + " frames unused, " + memTop + " on the free list");
            check(bad, "resident pages", valid, validPages);
            check(bad, "dirty pages", dirty, dirtyPages);
            check(bad, "pinned pages", pinned, pinnedPages);
            check(bad, "shared pages", shared, sharedPages);
            check(bad, "resident frames", resident, residentFrames);
            if (merge) {
                check(bad, "pages shared", pShared, pagesShared);
                check(bad, "pages sharing", pSharing, pagesSharing);
            }
            return bad;
        } finally {
            lock.unlock();
        }
    }

    private static void check(List<String> bad, String what, long recounted, long counted) {
        if (recounted != counted) bad.add(what + ": recounted " + recounted + ", counted " + counted);
    }

    public CacheStats snapshot() {
        lock.lock();
        try {
            boolean direct = true;
            for (CachedFile f : files.values()) if (!f.closed) direct &= f.store.directIo();
            return new CacheStats(hits.clone(), misses.clone(), fills.clone(), fillBytes.clone(), refaults.clone(),
                    new long[][] {crossHits[0].clone(), crossHits[1].clone()}, evictions,
                    (long) residentFrames * PAGE_SIZE, (long) dirtyPages * PAGE_SIZE, writebackBytes, pinnedPages,
                    sharedPages, capacityBytes(), direct, dupFills.clone(), dupFillBytes.clone(), zeroPages,
                    dedupMode, merge ? pagesShared : 0, merge ? pagesSharing : dupPages, cowBreaks, validPages,
                    readaheadPages * PAGE_SIZE, readaheadUnusedPages * PAGE_SIZE);
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
        stopping = true;
        readahead.shutdown();
        Thread f;
        lock.lock();
        try {
            flushNeeded.signalAll();
            f = flusher;
        } finally {
            lock.unlock();
        }
        // nothing is interrupted: a write-back in progress finishes before the final flush and before
        // the caller closes the files
        boolean interrupted = false;
        try {
            if (f != null) f.join(60_000);
            readahead.awaitTermination(60, java.util.concurrent.TimeUnit.SECONDS);
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
