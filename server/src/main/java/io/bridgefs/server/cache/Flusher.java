package io.bridgefs.server.cache;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Write-back in the background and the pacing of writers: the flusher thread writes back the file
 * with the most dirty pages, a chunk at a time in page order, while more than the background share of
 * the cache is dirty ({@code --dirty-background}); a writer above the dirty limit
 * ({@code --dirty-limit}, three quarters) waits for it (at most 2 s), or, without a flusher or when it makes no progress (failing
 * storage), writes back its own file.
 * <p>
 * The background share is a fixed percent, or, by default ({@code auto}), follows what the write-back
 * is worth, as read-ahead does: it starts at a quarter of the cache; each page the flusher wrote that
 * is written again while still cached (its write-back done for nothing: the page must be written once
 * more) raises it by {@link #REWRITE_STEP} pages, up to a tenth of the cache below the dirty limit; each
 * page the eviction policy frees lowers it by one, down to the quarter (the cache is wanted for other
 * pages, and dirty ones cannot be evicted: what the flusher cleans is what eviction can take); and a
 * writer that finds the dirty limit reached, or eviction that has to wait for write-back, puts it back
 * to the quarter at once (the flusher started too late). So it rises only while pages the flusher wrote
 * are written again at more than a quarter of the rate pages are evicted. A writer rewriting a region that fits
 * the cache (a database, a guest's disk) stops paying for write-back that its next writes undo; a
 * writer streaming through more than the cache, or readers cycling other pages through it, keep it at
 * the quarter.
 * <p>
 * Write-behind ({@code --write-behind}, 8 MiB by default): a file written sequentially into pages the
 * cache did not hold is written back while it is written, a chunk at a time, once its stream has run
 * that far and that much of it is dirty, however little of the cache is dirty. A guest streaming a new
 * file or image then finds most of it on disk when it sends FLUSH, which waits for the last chunks
 * only: the disk's time overlaps the network's instead of following it. Only new pages make a stream:
 * a writer going over pages the cache holds (a guest rewriting a region, a log going round) is left to
 * the background share, which {@code auto} raises for it, and random writes never form one.
 */
final class Flusher {
    /** What the background flusher writes back between two looks at the threshold: 8 MiB (four of the largest runs). */
    static final int CHUNK_PAGES = 2048;
    /** How many pages one page written again after the flusher wrote it raises the background share (one evicted lowers it by 1). */
    static final int REWRITE_STEP = 4;
    private final PageCache cache;
    private final Condition flushNeeded;
    /** The background share now, in pages (guarded by the cache lock), and its bounds (equal: a fixed share). */
    int background;
    private int floor, ceiling;
    /** Pages the flusher wrote that were written again before they left the cache (guarded by the cache lock). */
    long rewrittenPages;
    private Thread thread;                 // guarded by the cache lock
    /** Write-behind's threshold in pages (0: off) and in bytes, and the file it is writing behind (guarded by the cache lock). */
    private int behindPages;
    private long behindBytes;
    private CachedFile behind;
    /**
     * How far before and after the end of one of a file's streams a write may start and still belong to
     * it (requests complete out of order: qemu-img convert keeps eight of up to 2 MiB in flight), and
     * how many streams a file's writers may run at once (nbdcopy's connections each write their own region).
     */
    static final long STREAM_BEHIND = 16 << 20, STREAM_AHEAD = 2 << 20;
    static final int STREAMS = 4;
    private volatile boolean stopping;

    Flusher(PageCache cache) {
        this.cache = cache;
        this.flushNeeded = cache.lock.newCondition();
    }

    /** The background share's bounds, in pages: equal for a fixed share. */
    void bounds(int floor, int ceiling) {
        this.floor = floor;
        this.ceiling = Math.max(floor, ceiling);
        this.background = floor;
    }

    /** Write-behind's threshold ({@code --write-behind}; 0: off), set before the flusher starts. */
    void writeBehind(long bytes) {
        behindPages = (int) Math.min(Integer.MAX_VALUE, bytes / PageCache.PAGE_SIZE);
        behindBytes = (long) behindPages * PageCache.PAGE_SIZE;
    }

    /**
     * With the cache lock held: a write put bytes [from, to) of {@code file} in the cache, into new frames
     * only if {@code fresh}. Follows the file's streams ({@link #STREAMS} at most: clients with several
     * connections write several regions at once) and starts write-behind of the file (see the class
     * notes). A write belongs to a stream if it starts at most {@link #STREAM_BEHIND} before the
     * stream's end or {@link #STREAM_AHEAD} after it. Into new frames, it lengthens the stream by what
     * it adds past the end (a write that arrives after a later one adds nothing, so random writes in a
     * region never make a long stream); into cached pages, it ends the stream; a write into new frames
     * that belongs to none starts a stream in place of the oldest.
     */
    void wrote(CachedFile file, long from, long to, boolean fresh) {
        if (behindPages == 0) return;
        if (file.streamEnds == null) file.streamEnds = new long[2 * STREAMS];   // ends, then lengths
        long[] s = file.streamEnds;
        int k = 0;
        while (k < STREAMS && !(s[STREAMS + k] > 0 && from >= s[k] - STREAM_BEHIND && from <= s[k] + STREAM_AHEAD)) k++;
        if (k == STREAMS) {
            if (!fresh) return;
            k = file.streamNext;
            file.streamNext = (k + 1) % STREAMS;
            s[k] = to;
            s[STREAMS + k] = to - from;
        } else if (fresh) {
            s[STREAMS + k] += Math.max(0, to - Math.max(from, s[k]));
            s[k] = Math.max(s[k], to);
        } else {
            s[STREAMS + k] = 0;
            return;
        }
        // only the stream this write lengthened starts write-behind: an old long stream left in its slot
        // must not let writes elsewhere (random ones) start it
        if (behind == null && thread != null && s[STREAMS + k] >= behindBytes && behindDue(file)) {
            behind = file;
            flushNeeded.signal();
        }
    }

    /**
     * With the cache lock held: whether write-behind of {@code file} may go on: it is open, one of its
     * streams has run the threshold (a write into cached pages ends a stream, and with it the
     * write-behind it started), and that much of it is dirty.
     */
    private boolean behindDue(CachedFile file) {
        if (file.closed || file.dirtyPages < behindPages || file.streamEnds == null) return false;
        for (int k = 0; k < STREAMS; k++) {
            if (file.streamEnds[STREAMS + k] >= behindBytes) return true;
        }
        return false;
    }

    /** With the cache lock held: a page the flusher wrote back is dirty again (see the class notes). */
    void rewritten() {
        rewrittenPages++;
        background = Math.min(ceiling, background + REWRITE_STEP);
    }

    /** With the cache lock held: the eviction policy freed a page. Wakes the flusher if that puts the dirty pages above the share. */
    void evicted() {
        if (background > floor) {
            background--;
            if (cache.dirtyPages > background) dirtied();
        }
    }

    /**
     * Called by writers after a write: above the dirty limit they wait for the background flusher, or,
     * without one (or when it makes no progress, e.g. failing storage), write back this file themselves.
     */
    void throttle(CachedFile file) throws IOException {
        boolean selfWriteback;
        ReentrantLock lock = cache.lock;
        lock.lock();
        try {
            if (cache.dirtyPages <= cache.dirtyLimit) return;
            background = floor;                    // the flusher started too late
            selfWriteback = thread == null;
            if (!selfWriteback) {
                flushNeeded.signal();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                while (cache.dirtyPages > cache.dirtyLimit) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        selfWriteback = true;
                        break;
                    }
                    cache.changed.awaitNanos(Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)));
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

    /**
     * Starts the background flusher thread (once), {@code nice} nice levels below the server (0: at its priority).
     * Write-back in the background is work no request waits for: below the request path's priority it
     * runs on CPU the network threads and the clients leave idle, and it still cannot fall behind for good,
     * since writers above the dirty limit stop and leave it the CPU. Measured on 2 cores (fio 1 MiB
     * writes over a 1 GiB image in a 1.5 GiB cache): the network thread waited 1.1-1.5 s of 10 for a CPU
     * beside the flusher at nice 0 and 0.5-0.9 s at nice 10; the row ran 2.2-2.6 GB/s against 3.0-3.3.
     */
    void start(int nice) {
        cache.lock.lock();
        try {
            if (thread != null) return;
            thread = io.bridgefs.server.posix.ServerThreads.daemon("bridgefs-flusher", () -> {
                if (nice > 0 && !io.bridgefs.server.posix.Posix.niceThisThread(nice)) {
                    org.slf4j.LoggerFactory.getLogger(PageCache.class)
                            .warn("could not lower the background flusher's priority: it runs at the server's");
                }
                flushLoop();
            });
            thread.start();
        } finally {
            cache.lock.unlock();
        }
    }

    /** With the cache lock held: more than the background threshold is dirty. */
    void dirtied() {
        if (thread != null) flushNeeded.signal();
    }

    /** Stops the flusher; a write-back it is doing finishes first (nothing is interrupted). */
    void stop() throws InterruptedException {
        stopping = true;
        Thread t;
        cache.lock.lock();
        try {
            flushNeeded.signalAll();
            t = thread;
        } finally {
            cache.lock.unlock();
        }
        if (t != null) t.join(60_000);
    }

    private void flushLoop() {
        while (!stopping) {
            CachedFile victim = null;
            boolean writingBehind;
            cache.lock.lock();
            try {
                while (!stopping && cache.dirtyPages <= background && behind == null) flushNeeded.awaitUninterruptibly();
                writingBehind = cache.dirtyPages <= background;
                if (writingBehind) {
                    if (behind == null || !behindDue(behind)) {     // stopping; or its stream ended, or it is clean enough now
                        behind = null;
                        continue;
                    }
                    victim = behind;
                } else {
                    for (CachedFile f : cache.registry.all()) {
                        if (f.closed) continue;
                        if (victim == null || f.dirtyPages > victim.dirtyPages) victim = f;
                    }
                }
            } finally {
                cache.lock.unlock();
            }
            if (victim == null || stopping) continue;
            try {
                // a chunk at a time, the threshold checked in between: the flusher stops once under it
                int written = victim.writes.writebackSome(CHUNK_PAGES);
                if (written == 0 && !writingBehind) victim.writeback(false);
                if (writingBehind && written == 0) endBehind(victim);
            } catch (IOException e) {
                endBehind(victim);
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

    /**
     * Ends write-behind of {@code file} when a chunk of it wrote nothing or failed (whether it is still due
     * is checked before each chunk, at the loop's top).
     */
    private void endBehind(CachedFile file) {
        cache.lock.lock();
        try {
            if (behind == file) behind = null;
        } finally {
            cache.lock.unlock();
        }
    }

    /**
     * With the cache lock held, when no frame could be allocated and the caller holds no pins: writes back
     * dirty pages if
     * that is what blocks eviction, else waits briefly for a frame to be unpinned. May drop the lock.
     */
    void awaitFrame() throws IOException {
        PageCache c = cache;
        if (c.dirtyPages > 0) {
            CachedFile victim = null;
            for (CachedFile f : c.registry.all()) {
                if (f.dirtyPages > 0) { victim = f; break; }
            }
            if (victim != null) {
                background = floor;                // eviction had to wait for write-back
                c.lock.unlock();
                try {
                    victim.writeback(false);
                } finally {
                    c.lock.lock();
                }
                return;
            }
        }
        try {
            c.changed.await(20, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting for a cache frame");
        }
    }
}
