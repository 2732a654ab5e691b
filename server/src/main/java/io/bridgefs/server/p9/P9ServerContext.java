package io.bridgefs.server.p9;

import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.FileBackingStore;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.protocol.p9.P9;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import org.slf4j.LoggerFactory;

/**
 * What every 9P connection shares: exports, the executor, the shared page cache, the lock table, and
 * a small LRU of recently used files whose cache pages outlive their last Tclunk (so a file read,
 * closed and read again is served from the cache, as a host page cache would).
 */
public final class P9ServerContext {
    final List<P9Export> exports;
    final ExecutorService executor;
    final PageCache cache;
    final int maxMsize;
    /** 9P requests by message type. */
    final io.bridgefs.server.metrics.RequestCounts requests;
    final LockTable locks = new LockTable();
    /** The operations of every open connection (renames update the paths their fids remember). */
    final java.util.Set<P9Ops> sessions = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** The server-wide budget for request and reply bytes. */
    final io.bridgefs.server.net.MemoryBudget budget;
    /**
     * Descriptors fids may hold across all connections, bounded by the process's descriptor limit; past
     * it, descriptors of idle unopened fids are reclaimed (see {@link Fid}).
     */
    volatile int maxFids;
    private final java.util.concurrent.atomic.AtomicInteger fidsInUse = new java.util.concurrent.atomic.AtomicInteger();
    /** Fids of all connections, and how many there may be ({@code --max-fids}; see {@link #mayBindFid}). */
    private final java.util.concurrent.atomic.AtomicInteger fidsBound = new java.util.concurrent.atomic.AtomicInteger();
    private volatile int fidLimit = io.bridgefs.server.config.Limits.DEFAULT_MAX_FIDS;
    private final Map<FileKey, CachedFile> retained;
    /**
     * An O_PATH descriptor of each export's root, opened by the server at start: walks begin there, so
     * a passthrough user needs no search permission on the directories above the export (as under a
     * mount point), only inside it.
     */
    private final Map<P9Export, Integer> roots = new java.util.concurrent.ConcurrentHashMap<>();
    /** The device of each export root on a local file system (where fstat never waits for a network). */
    private final Map<P9Export, Long> localDevs = new java.util.concurrent.ConcurrentHashMap<>();
    /** statfs f_type of file systems whose attributes are in memory once an inode is open. */
    private static final java.util.Set<Long> LOCAL_FS = java.util.Set.of(
            0xEF53L /* ext2/3/4 */, 0x58465342L /* xfs */, 0x9123683EL /* btrfs */, 0x01021994L /* tmpfs */,
            0xF2F52010L /* f2fs */, 0x2FC12FC1L /* zfs */, 0x794C7630L /* overlayfs */, 0x858458F6L /* ramfs */);

    public P9ServerContext(List<P9Export> exports, ExecutorService executor, PageCache cache, int maxMsize, int retainFiles) {
        this(exports, executor, cache, maxMsize, retainFiles, new io.bridgefs.server.metrics.RequestCounts(new com.codahale.metrics.MetricRegistry(), "9p"),
                new io.bridgefs.server.net.MemoryBudget(Long.MAX_VALUE / 4));
    }

    public P9ServerContext(List<P9Export> exports, ExecutorService executor, PageCache cache, int maxMsize, int retainFiles,
                           io.bridgefs.server.metrics.RequestCounts requests, io.bridgefs.server.net.MemoryBudget budget) {
        this.requests = requests;
        this.budget = budget;
        this.exports = List.copyOf(exports);
        this.executor = executor;
        this.cache = cache;
        this.maxMsize = maxMsize;
        for (P9Export e : this.exports) {
            try {
                int fd = io.bridgefs.server.posix.Posix.openat(io.bridgefs.server.posix.Posix.AT_FDCWD, e.root().toString(),
                        io.bridgefs.server.posix.Posix.O_PATH | io.bridgefs.server.posix.Posix.O_DIRECTORY, 0);
                roots.put(e, fd);
                if (LOCAL_FS.contains(io.bridgefs.server.posix.Posix.fstatfs(fd).type())) {
                    localDevs.put(e, io.bridgefs.server.posix.Posix.fstat(fd).dev());
                }
            } catch (IOException x) {
                LoggerFactory.getLogger(P9ServerContext.class).warn("9P export '{}': root {} cannot be opened: {}", e.name(), e.root(), x.toString());
            }
        }
        long fdLimit = 4096;
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.UnixOperatingSystemMXBean u) {
            fdLimit = u.getMaxFileDescriptorCount();
        }
        // files kept open after their last clunk hold up to three descriptors each: at most 3/16 of the
        // limit (1,024 files from a limit of 16,384 up; 64 under 1,024, where 1,024 of them would take
        // every descriptor the process has)
        int retain = (int) Math.min(retainFiles, Math.max(16, fdLimit / 16));
        // leave room for sockets, backing files (three descriptors per cached file) and the JVM
        this.maxFids = (int) Math.max(256, Math.min(1 << 20, fdLimit / 2 - 3L * retain));
        this.maxOpens = (int) Math.max(128, Math.min(1 << 20, fdLimit / 4));
        this.retained = new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<FileKey, CachedFile> eldest) {
                if (size() <= retain) return false;
                closeQuietly(eldest.getValue());
                return true;
            }
        };
    }

    /**
     * Bytes xattr fids may hold in all (values read by Txattrwalk, writes declared by Txattrcreate, each
     * up to 64 KiB): past it, more are refused with ENOMEM until some are clunked. Without it, every fid
     * of every connection could hold 64 KiB.
     */
    static final long XATTR_BUDGET = 16L << 20;
    private final java.util.concurrent.atomic.AtomicLong xattrBytes = new java.util.concurrent.atomic.AtomicLong();

    /** Takes {@code n} bytes of the xattr budget for a fid (given back by {@link P9Ops#release}). */
    void holdXattr(Fid f, int n) throws P9Error {
        if (xattrBytes.addAndGet(n) > XATTR_BUDGET) {
            xattrBytes.addAndGet(-n);
            throw new P9Error(io.bridgefs.protocol.p9.P9.ENOMEM, "xattr values of all connections take " + (XATTR_BUDGET >> 20) + " MiB: clunk some first");
        }
        f.xattrHeld += n;
    }

    void releaseXattr(Fid f) {
        if (f.xattrHeld > 0) xattrBytes.addAndGet(-f.xattrHeld);
        f.xattrHeld = 0;
    }

    long xattrBytesHeld() {
        return xattrBytes.get();
    }

    /** Fids all connections may have together ({@code --max-fids}). */
    public P9ServerContext withFidLimit(int n) {
        fidLimit = n;
        return this;
    }

    /**
     * Whether a connection holding {@code own} fids may bind one more. Each fid takes heap, and a
     * connection may have 65,536: without a bound for all of them, clients with many connections could
     * exhaust the server's heap. Up to half the limit anyone may; past it only a connection holding less
     * than its share, the limit over the connections and one more (room for the next to arrive), so that
     * one connection cannot take it all. (A client with k connections can take k/(k+1) of it: the heap
     * stays bounded, and --max-connections-per-peer bounds k.)
     */
    boolean mayBindFid(int own) {
        int total = fidsBound.get();
        if (total >= fidLimit) return false;
        return total < fidLimit / 2 || own < fidLimit / (sessions.size() + 1);
    }

    void fidsBound(int delta) {
        fidsBound.addAndGet(delta);
    }

    int fidLimit() {
        return fidLimit;
    }

    /** Fids of all connections now. */
    int fidTotal() {
        return fidsBound.get();
    }

    /** For tests: a small descriptor budget, so that reclaiming is exercised. */
    P9ServerContext withDescriptorBudget(int n) {
        maxFids = n;
        return this;
    }

    boolean reserveFid() {
        while (true) {
            int n = fidsInUse.get();
            if (n >= maxFids) return false;
            if (fidsInUse.compareAndSet(n, n + 1)) return true;
        }
    }

    /**
     * Fairness of the descriptor budget. A connection reclaims only its own idle fids' descriptors, so
     * once the budget is spent one that holds few would be refused (EMFILE) while another's idle fids
     * (a guest caching every dentry, or a hostile client) hold them all. So when the budget is spent and
     * {@code requester} holds less than its share (the budget over the connections), the connection
     * holding the most, above its share, gives up an idle one. Called with no connection's lock held.
     */
    void makeRoomFor(P9Ops requester) {
        if (fidsInUse.get() < maxFids) return;
        int share = maxFids / Math.max(1, sessions.size());
        if (requester.descriptorsHeld() >= share) return;       // it reclaims its own
        P9Ops most = null;
        for (P9Ops s : sessions) {
            if (s != requester && (most == null || s.descriptorsHeld() > most.descriptorsHeld())) most = s;
        }
        if (most != null && most.descriptorsHeld() > share) most.giveUpIdle();
    }

    /**
     * Descriptors open files and directories may hold, all connections together (a quarter of the
     * process's limit; fids' own are {@link #maxFids}). Opens cannot be reclaimed as idle fids can: past
     * half of it, a connection whose opens hold more than its share (this over the connections and one,
     * room for the next to arrive) is refused, so one client cannot take it all.
     */
    volatile int maxOpens;
    private final java.util.concurrent.atomic.AtomicInteger opensInUse = new java.util.concurrent.atomic.AtomicInteger();

    /** Takes {@code n} descriptors of the opens' budget for a connection whose opens hold {@code own}; EMFILE if it may not. */
    void holdOpens(int own, int n) throws P9Error {
        int max = maxOpens;
        if (opensInUse.get() >= max / 2 && own + n > max / (sessions.size() + 1)) {
            throw new P9Error(io.bridgefs.protocol.p9.P9.EMFILE, "this connection's open files hold its share of the descriptors ("
                    + max / (sessions.size() + 1) + ")");
        }
        if (opensInUse.addAndGet(n) > max) {
            opensInUse.addAndGet(-n);
            throw new P9Error(io.bridgefs.protocol.p9.P9.EMFILE, "open files of all connections hold " + max + " descriptors");
        }
    }

    void releaseOpens(int n) {
        opensInUse.addAndGet(-n);
    }

    /** The shared cached file of a regular file (one reference for the caller). */
    CachedFile openData(Fid f, Stat st) throws IOException {
        FileKey key = new FileKey(st.dev(), st.ino());
        CachedFile cf = cache.openIfPresent(key);
        if (cf == null && st.nlink() == 0) {
            // removed, and open nowhere: its last close dropped what was never written back; a path would
            // not lead to it either (diod answers ENOENT), nor may an old fid open it now
            throw new Posix.ErrnoException("opening a file no name leads to any more", P9.ENOENT);
        }
        if (cf == null) {
            cf = cache.open(key, FileBackingStore.open(Path.of(f.procPath()), f.export.readOnly()), f.export.readOnly());
            cf.readaheadIfUnset(f.export.readahead());     // an NBD export of the same file keeps its own
        } else {
            cf.revalidate();     // changed by another host process since we cached it?
        }
        if (st.nlink() > 0) retain(cf);     // a removed file's last close is its last fid's
        return cf;
    }

    /** Directory entries read ahead ({@link DirAhead}), all connections together: at most 512 directories' worth. */
    static final long AHEAD_BUDGET = 512L * DirAhead.SIZE;
    private final java.util.concurrent.atomic.AtomicLong aheadBytes = new java.util.concurrent.atomic.AtomicLong();

    /** Room for one directory's entries read ahead; false when the budget is spent (the directory is read as it is asked for). */
    boolean holdAhead() {
        if (aheadBytes.addAndGet(DirAhead.SIZE) <= AHEAD_BUDGET) return true;
        aheadBytes.addAndGet(-DirAhead.SIZE);
        return false;
    }

    void releaseAhead() {
        aheadBytes.addAndGet(-DirAhead.SIZE);
    }

    /** Bytes held by directory entries read ahead (tests: back to 0 when every connection is gone). */
    long aheadBytesHeld() {
        return aheadBytes.get();
    }

    /** Descriptors open files and directories hold now, all connections together. */
    int opensInUse() {
        return opensInUse.get();
    }

    /** For tests: a small budget of opens. */
    P9ServerContext withOpenBudget(int n) {
        maxOpens = n;
        return this;
    }

    /** A walk onto an existing fid number replaced nothing: count it even at the limit (it holds a descriptor). */
    void reserveFidAnyway() {
        fidsInUse.incrementAndGet();
    }

    void releaseFid() {
        fidsInUse.decrementAndGet();
    }

    /** See {@link P9Ops#renamed}: applied to the fids of every connection. */
    void renamed(P9Export export, List<String> from, List<String> to) {
        for (P9Ops o : sessions) o.renamed(export, from, to);
    }

    /** Fids held by all connections. */
    public int fids() {
        int n = 0;
        for (P9Ops o : sessions) n += o.fidCount();
        return n;
    }

    P9Export find(String aname) {
        for (P9Export e : exports) if (e.name().equals(aname)) return e;
        return aname.isEmpty() && !exports.isEmpty() ? exports.get(0) : null;
    }

    /** Keeps one extra reference to a file so its pages stay cached after the clients close it. */
    synchronized void retain(CachedFile f) {
        if (retained.get(f.key()) != null) return;
        CachedFile ref = cache.openIfPresent(f.key());
        if (ref != null) retained.put(f.key(), ref);
    }

    /**
     * A name of the file {@code key} was unlinked (removed, or replaced by a rename): the retained
     * reference goes, so that when nobody has the file open any more its last close finds whether a name
     * still leads to it, and if none does drops its pages instead of writing them back. Null: nothing.
     */
    void unlinked(FileKey key) {
        if (key == null) return;
        CachedFile ref;
        synchronized (this) {
            ref = retained.remove(key);
        }
        if (ref != null) closeQuietly(ref);
    }

    /**
     * Releases the retained references of files no name leads to any more: removed on the host, where
     * no Tremove told {@link #unlinked}. Without it a host's {@code rm} of a large file would not give its
     * blocks back (the server holding it open) until the file left the retention list, which with a
     * thousand files may be never. The server's timer calls it every few seconds ({@link #SWEEP_SECONDS}).
     * Returns how many it released.
     */
    public int releaseRemoved() {
        List<Map.Entry<FileKey, CachedFile>> kept;
        synchronized (this) {
            kept = List.copyOf(retained.entrySet());
        }
        int released = 0;
        for (var e : kept) {
            // a reference of our own while we look, without the list's lock (an fstat on a hung network
            // file system must not stall every clunk): the kept one may be released meanwhile, and its
            // descriptor closed and reused, but not this one's
            CachedFile own = cache.openIfPresent(e.getKey());
            if (own == null) continue;
            try {
                if (!own.noNameLeft()) continue;
                boolean removed;
                synchronized (this) {
                    removed = retained.remove(e.getKey(), e.getValue());
                }
                if (removed) {
                    closeQuietly(e.getValue());
                    released++;
                }
            } finally {
                closeQuietly(own);          // the last reference if no fid has it: its pages are dropped
            }
        }
        return released;
    }

    /** How often the server looks for retained files removed on the host ({@link #releaseRemoved}). */
    public static final int SWEEP_SECONDS = 5;

    /** Drops the retained references (shutdown). */
    public synchronized void releaseAll() {
        retained.values().forEach(P9ServerContext::closeQuietly);
        retained.clear();
        roots.values().forEach(io.bridgefs.server.posix.Posix::close);
        roots.clear();
    }

    /** The export root's descriptor (owned here), or -1 if it could not be opened. */
    int rootFd(P9Export e) {
        Integer fd = roots.get(e);
        return fd == null ? -1 : fd;
    }

    /** Whether a fid's attributes may be read on a network thread: it is on the export root's local file system. */
    boolean localAttributes(Fid f) {
        Long dev = localDevs.get(f.export);
        return dev != null && dev == f.dev;
    }

    static void closeQuietly(CachedFile f) {
        try {
            f.close();
        } catch (IOException e) {
            LoggerFactory.getLogger(P9ServerContext.class).warn("closing {} failed: {}", f.key(), e.toString());
        }
    }
}
