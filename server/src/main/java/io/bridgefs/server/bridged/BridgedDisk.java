package io.bridgefs.server.bridged;

import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.FileBackingStore;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.cache.PinnedRange;
import io.bridgefs.server.cache.Readahead;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A host directory served as a read-only ext4 image ({@link Ext4Image}): generated blocks are made on
 * demand, data blocks are read through the shared page cache as pages of the host file they belong to,
 * under its (device, inode) key, so they are the very frames the 9P path and image exports of that file
 * use. The tree's shape is a snapshot (see {@link #rescan}); file contents are live, served up to the
 * size recorded at the scan and as zeros past the file's current end. A file replaced on the host
 * since the scan (another inode at its path) reads as zeros.
 */
public final class BridgedDisk implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BridgedDisk.class);
    private static final int OPEN_FILES = 256;          // descriptors kept open between requests
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(256 * 1024).asReadOnlyBuffer();

    private final PageCache cache;
    private final Path dir;
    private final String name;
    private final Readahead readahead;
    private final DirDescriptors dirs;                  // directories' descriptors, to stat and open names in
    private final AtomicReference<Ext4Image> image = new AtomicReference<>();
    private final Map<HostTree.Node, CachedFile> open = new LinkedHashMap<>(64, 0.75f, true);   // guarded by itself
    private final java.util.Set<HostTree.Node> gone = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** Where the last reads ended (image offsets), to tell a sequential reader; guarded by itself, as is aheadTo. */
    private final long[] recentEnds = new long[4];
    private final int[] recentRuns = new int[4];                  // how many reads in a row each of them continued
    private int recentNext;
    private long aheadTo;                                 // the image offset up to which data was read ahead
    private final AtomicInteger reading = new AtomicInteger();        // reads in progress
    private final AtomicInteger aheadRunning = new AtomicInteger();   // read-aheads queued or running
    private volatile boolean closing;

    private final int maxEntries;

    private BridgedDisk(PageCache cache, Path dir, String name, Readahead readahead, int openDirs, int maxEntries) {
        this.dirs = new DirDescriptors(dir, openDirs);
        this.cache = cache;
        this.dir = dir;
        this.name = name;
        this.readahead = readahead;
        this.maxEntries = maxEntries;
    }

    /** Scans {@code dir} and lays the image out. */
    public static BridgedDisk open(PageCache cache, Path dir, String name, Readahead readahead) throws IOException {
        return open(cache, dir, name, readahead, HostTree.DEFAULT_MAX_ENTRIES);
    }

    /** As {@link #open(PageCache, Path, String, Readahead)}; a tree of more than {@code maxEntries} names is refused ({@link HostTree#scan}). */
    public static BridgedDisk open(PageCache cache, Path dir, String name, Readahead readahead, int maxEntries) throws IOException {
        return open(cache, dir, name, readahead, DirDescriptors.KEPT, maxEntries);
    }

    /** As {@link #open(PageCache, Path, String, Readahead, int)}, keeping at most {@code openDirs} directory descriptors (tests use few). */
    static BridgedDisk open(PageCache cache, Path dir, String name, Readahead readahead, int openDirs, int maxEntries) throws IOException {
        BridgedDisk d = new BridgedDisk(cache, dir, name, readahead, openDirs, maxEntries);
        d.rescan();
        return d;
    }

    /**
     * Takes a new snapshot of the tree's shape. The image's size may change: only call it while no
     * client is connected (the caller's rule); descriptors of the old snapshot are closed.
     */
    private synchronized Ext4Image rescan() throws IOException {
        long t0 = System.nanoTime();
        Ext4Image next = Ext4Image.of(HostTree.scan(dir, maxEntries), name);
        image.set(next);
        awaitReadAhead();
        closeOpenFiles();
        dirs.closeAll();
        gone.clear();
        log.info("bridged image '{}' of {}: {} entries, {} MiB of data, image {} MiB, built in {} ms", name, dir, next.tree.entries(),
                (next.usedEnd - next.dataStart) * Ext4Image.BS >> 20, next.size() >> 20, (System.nanoTime() - t0) / 1_000_000);
        return next;
    }

    public Ext4Image image() { return image.get(); }

    private int clients;              // guarded by this
    private boolean rescanWanted;     // guarded by this: asked for while clients were connected

    /** An NBD connection starts using the image (after any rescan in progress). */
    public synchronized void attach() {
        clients++;
    }

    /** An NBD connection ended; the last one to go runs a rescan that was asked for while it was connected. */
    public void detach() {
        synchronized (this) {
            if (--clients > 0 || !rescanWanted) return;
            rescanWanted = false;
        }
        Thread t = io.bridgefs.server.posix.ServerThreads.daemon("bridgefs-rescan-" + name, () -> {
            try {
                rescanIfIdle();
            } catch (IOException | RuntimeException e) {
                log.warn("bridged image '{}': rescan of {} failed, the previous snapshot stays: {}", name, dir, e.toString());
            }
        });
        t.start();
    }

    /**
     * A rescan now if no client is connected (returns the new image); with clients connected, null: the
     * rescan is remembered and runs when the last of them disconnects (their image must not change under them).
     */
    public synchronized Ext4Image rescanIfIdle() throws IOException {
        if (clients > 0) {
            rescanWanted = true;
            return null;
        }
        return rescan();
    }

    public synchronized int clients() { return clients; }

    public long size() { return image.get().size(); }

    /** The bytes of a read, in order, and what to do once they have been sent (unpin, close). */
    public record Pieces(ByteBuffer[] buffers, Runnable release) {}

    /** Reads [offset, offset + length) of the image; data blocks pinned in the cache where it can (zero-copy). */
    public Pieces read(IoPath path, long offset, int length) throws IOException {
        Ext4Image img = image.get();
        reading.incrementAndGet();
        try {
            readAheadAcrossFiles(path, img, offset, offset + length);
            return readNow(path, img, offset, length);
        } finally {
            reading.decrementAndGet();
        }
    }

    /**
     * A read that continues a run of reads, each starting where one of the last few ended, with no other
     * read in flight (a reader that waits for each reply: a guest's tar or cp going file by file), reads
     * the data blocks of the next window of the image ahead, in the background: the next files' pages,
     * which no per-file read-ahead reaches, since each of them is a file of its own. The run must be
     * three reads long (a random reader rarely lands on an end twice running) and the window grows with
     * it, from the export's initial read-ahead to its largest; a new window is read once less than half
     * of the last one is left ahead of the reader. Not for a client with many requests in flight
     * (nbdcopy), which is ahead of itself already; not with {@code readahead=off}.
     */
    private void readAheadAcrossFiles(IoPath path, Ext4Image img, long offset, long end) {
        long dataEnd = img.usedEnd * Ext4Image.BS;
        long from, to;
        synchronized (recentEnds) {
            int run = 0;
            for (int i = 0; i < recentEnds.length; i++) if (recentEnds[i] == offset) run = Math.max(run, recentRuns[i] + 1);
            recentEnds[recentNext] = end;
            recentRuns[recentNext] = run;
            recentNext = (recentNext + 1) % recentEnds.length;
            if (run < 2 || readahead.maxPages() == 0 || reading.get() > 1 || end < img.dataStart * Ext4Image.BS || end >= dataEnd) return;
            long window = (long) Math.min(readahead.maxPages(), readahead.initialPages() << Math.min(run - 2, 16)) * Ext4Image.BS;
            boolean aheadOfThis = aheadTo > end && aheadTo <= end + window;
            if (aheadOfThis && aheadTo - end >= window / 2) return;
            from = aheadOfThis ? aheadTo : end;
            to = Math.min(end + window, dataEnd);
            aheadTo = to;
        }
        aheadRunning.incrementAndGet();
        boolean queued = cache.readAheadInBackground(() -> {
            try {
                if (!closing) readAhead(path, img, from, to);
            } catch (IOException | RuntimeException e) {
                log.debug("bridged image '{}': read-ahead of [{}, {}) failed: {}", name, from, to, e.toString());
            } finally {
                aheadRunning.decrementAndGet();
            }
        });
        if (!queued) aheadRunning.decrementAndGet();
    }

    /** The files' pages of the image range [from, to), read into the cache as read-ahead (until the disk closes). */
    private void readAhead(IoPath path, Ext4Image img, long from, long to) throws IOException {
        eachFilePart(img, from, to, (f, at, n) -> {
            f.readAhead(path, at, n);
            return !closing;
        });
    }

    /** What to do with {@code n} bytes of a host file at {@code at}; false stops the walk. */
    private interface FilePart {
        boolean accept(CachedFile f, long at, long n) throws IOException;
    }

    /**
     * Walks the data blocks of the image range [from, to): for each host file's part of it that the file
     * holds (up to its recorded and its current size), hands its cached file (one reference, closed
     * after) to {@code part}.
     */
    private void eachFilePart(Ext4Image img, long from, long to, FilePart part) throws IOException {
        long pos = Math.max(from, img.dataStart * Ext4Image.BS);
        long end = Math.min(to, img.usedEnd * Ext4Image.BS);
        while (pos < end) {
            Ext4Image.FilePage fp = img.filePage(pos >>> 12);
            int in = (int) (pos & (Ext4Image.BS - 1));
            long n = Math.min(fp.run() * Ext4Image.BS - in, end - pos);
            long at = (fp.page() << 12) + in;
            pos += n;
            if (servable(fp.node(), fp.node().size, at, n) == 0) continue;
            CachedFile f = acquire(fp.node());
            if (f == null) continue;
            try {
                long have = servable(fp.node(), f.size(), at, n);
                if (have > 0 && !part.accept(f, at, have)) return;
            } finally {
                closeQuietly(f);
            }
        }
    }

    /** Waits (at most 10 s) until no read-ahead of this disk runs: before its files are closed. */
    private void awaitReadAhead() {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (aheadRunning.get() > 0 && System.nanoTime() < deadline) java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
    }

    private Pieces readNow(IoPath path, Ext4Image img, long offset, int length) throws IOException {
        List<ByteBuffer> out = new ArrayList<>();
        List<Runnable> release = new ArrayList<>();
        try {
            long pos = offset;
            long end = offset + length;
            byte[] pending = null;
            int pendingLen = 0;
            byte[] block = null;
            while (pos < end) {
                long b = pos >>> 12;
                int in = (int) (pos & (Ext4Image.BS - 1));
                if (b < img.dataStart) {
                    int n = (int) Math.min(Ext4Image.BS - in, end - pos);
                    if (block == null) block = new byte[Ext4Image.BS];
                    Ext4Blocks.block(img, b, block);
                    if (pending == null) pending = new byte[(int) Math.min(end - pos, (img.dataStart << 12) - pos)];
                    System.arraycopy(block, in, pending, pendingLen, n);
                    pendingLen += n;
                    pos += n;
                    continue;
                }
                if (pending != null) {
                    out.add(ByteBuffer.wrap(pending, 0, pendingLen));
                    pending = null;
                }
                if (b >= img.usedEnd) {
                    zeros(out, end - pos);
                    break;
                }
                Ext4Image.FilePage fp = img.filePage(b);
                int n = (int) Math.min(fp.run() * Ext4Image.BS - in, end - pos);
                fileData(path, fp.node(), (fp.page() << 12) + in, n, out, release);
                pos += n;
            }
            if (pending != null) out.add(ByteBuffer.wrap(pending, 0, pendingLen));
        } catch (IOException | RuntimeException | Error e) {
            release.forEach(Runnable::run);
            throw e;
        }
        return new Pieces(out.toArray(ByteBuffer[]::new), () -> release.forEach(Runnable::run));
    }

    private static void zeros(List<ByteBuffer> out, long n) {
        while (n > 0) {
            int k = (int) Math.min(n, ZEROS.capacity());
            out.add(ZEROS.duplicate().limit(k));
            n -= k;
        }
    }

    /**
     * {@code n} bytes of a host file at {@code at}: its pages pinned in the cache, or copied under pin
     * pressure; zeros past its current end, or for all of it if the path now leads to another file. The
     * host file is stat'ed (one call, in its directory's cached descriptor): if it is unchanged and its
     * pages are resident, they are used without opening it.
     */
    private void fileData(IoPath path, HostTree.Node node, long at, int n, List<ByteBuffer> out, List<Runnable> release) throws IOException {
        Posix.Stat st = statBeneath(node);
        if (st == null || !scanned(st, node)) {
            markGone(node);
            zeros(out, n);
            return;
        }
        long have = servable(node, st.size(), at, n);
        PinnedRange r = have == 0 ? null
                : cache.pinIfResidentUnchanged(new FileKey(node.dev, node.ino), FileBackingStore.stampOf(st), path, at, (int) have);
        if (r == null && have > 0) {
            CachedFile f = acquire(node);
            if (f == null) {
                zeros(out, n);
                return;
            }
            release.add(() -> closeQuietly(f));
            f.revalidate();                          // changed on the host since its pages were cached? they go
            have = servable(node, f.size(), at, n);
            if (have > 0) {
                r = f.pin(path, at, (int) have);
                if (r == null) {
                    ByteBuffer copy = ByteBuffer.allocate((int) have);
                    f.read(path, at, copy);
                    out.add(copy.flip());
                }
            }
        }
        if (r != null) {
            release.add(0, r::release);              // unpinned before any reference is closed
            for (ByteBuffer v : r.views()) out.add(v);
        }
        zeros(out, n - have);
    }

    /** How many of the {@code n} bytes at {@code at} the file holds: up to its recorded size and its current one; zeros after. */
    private static long servable(HostTree.Node node, long currentSize, long at, long n) {
        return Math.max(0, Math.min(n, Math.min(node.size, currentSize) - at));
    }

    /** The path now leads elsewhere or nowhere: its blocks read as zeros (said once per file). */
    private void markGone(HostTree.Node node) {
        if (gone.add(node)) log.info("bridged image '{}': {} was replaced or removed on the host since the scan; it reads as zeros", name, node.path);
    }

    /** Brings the data pages of [offset, offset + length) into the cache (NBD_CMD_CACHE). */
    public void prefetch(IoPath path, long offset, long length) throws IOException {
        eachFilePart(image.get(), offset, offset + length, (f, at, n) -> {
            f.prefetch(path, at, n);
            return true;
        });
    }

    /** The extent at {@code offset}: data up to the end of the used blocks (inode table blocks of unused inodes excepted), a hole after. */
    public io.bridgefs.server.cache.BackingStore.Extent extentAt(long offset, long limit) {
        Ext4Image img = image.get();
        long b = offset >>> 12;
        long usedEnd = img.usedEnd << 12;
        if (offset >= usedEnd) return new io.bridgefs.server.cache.BackingStore.Extent(limit - offset, true);
        boolean hole = img.emptyTableBlock(b);
        long e = b + 1;
        while ((e << 12) < limit && e < img.usedEnd && img.emptyTableBlock(e) == hole) {
            if (!hole && e < img.itStart) e = img.itStart;                 // skip whole regions at a time
            else if (!hole && e >= img.metaStart) e = img.usedEnd;
            else e++;
        }
        return new io.bridgefs.server.cache.BackingStore.Extent(Math.min(limit, e << 12) - offset, hole);
    }

    /**
     * The cached file of a node, one reference for the caller to close; null if the host file is gone or
     * is not the one scanned. Opened below the export root one component at a time with O_NOFOLLOW.
     */
    private CachedFile acquire(HostTree.Node node) throws IOException {
        synchronized (open) {
            if (open.get(node) != null) {
                CachedFile f = cache.openIfPresent(new FileKey(node.dev, node.ino));
                if (f != null) return f;
            }
        }
        if (gone.contains(node)) return null;
        int fd = openBeneath(node);
        if (fd < 0) {
            markGone(node);
            return null;
        }
        // the checked descriptor becomes the store's, and the store the cache's (each closes it if it fails)
        CachedFile f = cache.open(new FileKey(node.dev, node.ino), FileBackingStore.adopt(fd, node.dev, node.path), true);
        f.readaheadIfUnset(readahead);
        CachedFile evicted = null;
        synchronized (open) {
            if (open.containsKey(node)) return f;                          // another thread raced us; ours is the caller's
            CachedFile kept = cache.openIfPresent(f.key());               // the table's own reference
            if (kept == null) return f;
            open.put(node, kept);
            if (open.size() > OPEN_FILES) {
                var it = open.entrySet().iterator();
                evicted = it.next().getValue();
                it.remove();
            }
        }
        if (evicted != null) closeQuietly(evicted);
        return f;
    }

    /** A descriptor of the scanned file, or -1 if the path now leads elsewhere (a symlink, another inode) or nowhere. */
    private int openBeneath(HostTree.Node node) throws IOException {
        int fd;
        try {
            fd = dirs.inParent(node.path, (dirFd, name) -> Posix.openat(dirFd, name, Posix.O_RDONLY | Posix.O_NOFOLLOW | 0x800, 0));   // O_NONBLOCK
        } catch (Posix.ErrnoException e) {
            return -1;
        }
        if (scanned(Posix.fstat(fd), node)) return fd;
        Posix.close(fd);
        return -1;
    }

    /** Whether {@code st} is still the regular file the scan recorded (same device and inode). */
    private static boolean scanned(Posix.Stat st, HostTree.Node node) {
        return st.dev() == node.dev && st.ino() == node.ino && st.isRegular();
    }

    /** lstat of the scanned file's path now, or null if nothing is there. */
    private Posix.Stat statBeneath(HostTree.Node node) {
        try {
            return dirs.inParent(node.path, (dirFd, name) -> Posix.fstatat(dirFd, name, Posix.AT_SYMLINK_NOFOLLOW));
        } catch (Posix.ErrnoException e) {
            return null;
        }
    }

    private void closeOpenFiles() {
        List<CachedFile> all;
        synchronized (open) {
            all = new ArrayList<>(open.values());
            open.clear();
        }
        all.forEach(BridgedDisk::closeQuietly);
    }

    private static void closeQuietly(CachedFile f) {
        try {
            f.close();
        } catch (IOException e) {
            log.debug("closing {}: {}", f.key(), e.toString());
        }
    }

    @Override
    public void close() {
        closing = true;
        awaitReadAhead();
        closeOpenFiles();
        dirs.closeAll();
    }
}
