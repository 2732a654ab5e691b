package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.FileBackingStore;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The 9P2000.L operations of one connection over host directories. Every host path is resolved one
 * component at a time with openat(O_PATH | O_NOFOLLOW) from the export root: symlinks are never
 * followed, ".." stops at the root, names with '/' or "."/".." are refused, and device files, FIFOs and
 * sockets are never opened. Regular-file data goes through the shared page cache, keyed by the host
 * (device, inode), the same frames the NBD path uses.
 */
final class P9Ops {
    /** Fids per connection (a fid costs memory; its descriptor is reclaimed when the budget runs out). */
    static final int MAX_FIDS = 65536;
    static final int MAX_NAME = 255;
    static final int MAX_XATTR = 64 * 1024;
    private static final ThreadLocal<com.sun.jna.Memory> DENTS = ThreadLocal.withInitial(() -> new com.sun.jna.Memory(64 * 1024));

    private final P9ServerContext server;
    private final Object session;
    private final Map<Integer, Fid> fids = new HashMap<>();
    /** Fids holding a descriptor, least recently used first (guarded by this). */
    private final java.util.LinkedHashMap<Fid, Boolean> withDescriptor = new java.util.LinkedHashMap<>(64, 0.75f, true);
    /** Whether this thread runs the current request with the attaching user's credentials (passthrough). */
    private static final ThreadLocal<boolean[]> SWITCHED = ThreadLocal.withInitial(() -> new boolean[1]);

    /** Fids a request on this thread looked up: in use until the request ends. */
    private static final ThreadLocal<List<Fid>> ACQUIRED = ThreadLocal.withInitial(ArrayList::new);
    volatile int msize = 8192;
    /** The client's address, for exports served only to some hosts (set when the connection starts). */
    volatile java.net.SocketAddress peer;
    /** The connection has ended: no fid may be bound any more (guarded by this). */
    private boolean closed;
    /** The export this connection attached to last: where its refusals are counted. */
    private volatile P9Export lastExport;

    P9Ops(P9ServerContext server, Object session) {
        this.server = server;
        this.session = session;
        server.sessions.add(this);
    }

    // ---- fid table ----

    /** The fid numbered {@code n}, in use (its descriptor held, reopened if it was reclaimed) until the request ends. */
    private synchronized Fid fid(int n) throws P9Error {
        Fid f = fids.get(n);
        if (f == null) throw new P9Error(P9.EBADF, "unknown fid " + n);
        actAs(f.export, f.uid);
        if (f.fd < 0) reopen(f);
        else withDescriptor.get(f);          // most recently used
        f.users++;
        ACQUIRED.get().add(f);
        return f;
    }

    /** End of a request: the fids it looked up may be reclaimed again. */
    private synchronized void releaseAcquired(List<Fid> acquired) {
        for (Fid f : acquired) {
            f.users--;
            if (f.users == 0 && f.dropped) release(f);     // clunked with the connection while in use
        }
        acquired.clear();
    }

    /** Counts a new fid's descriptor against the server's budget (see {@link #reserveDescriptor}). */
    private boolean holdDescriptor(Fid f) {
        if (!reserveDescriptor()) return false;
        track(f);
        return true;
    }

    /**
     * Takes one descriptor from the server's budget, first closing descriptors of idle fids of this
     * connection if the budget is spent. False if nothing could be reclaimed.
     */
    private boolean reserveDescriptor() {
        while (!server.reserveFid()) {
            if (!reclaimOne()) return false;
        }
        return true;
    }

    /** A fid now holds a counted descriptor and may be reclaimed once idle. */
    private void track(Fid f) {
        f.counted = true;
        withDescriptor.put(f, Boolean.TRUE);
    }

    /** Closes the descriptor of the least recently used idle, unopened fid; false if there is none. */
    private boolean reclaimOne() {
        for (Fid f : withDescriptor.keySet()) {
            if (f.reclaimable()) {
                reclaim(f);
                return true;
            }
        }
        return false;
    }

    /** Reclaims a fid's descriptor, remembering the file's handle to check a later reopen against. */
    private void reclaim(Fid f) {
        f.handle = Posix.fileHandle(f.fd);
        dropDescriptor(f);
    }

    private void dropDescriptor(Fid f) {
        withDescriptor.remove(f);
        if (f.fd >= 0) Posix.close(f.fd);
        f.fd = -1;
        if (f.counted) server.releaseFid();
        f.counted = false;
    }

    /** A reclaimed fid is used again: its path is resolved from the export root and must lead to the same inode. */
    private void reopen(Fid f) throws P9Error {
        if (!reserveDescriptor()) {
            throw new P9Error(P9.EMFILE, "no descriptor for fid (" + server.maxFids + " in all, every one in use)");
        }
        int fd;
        try {
            fd = resolve(f.export, f.path);
            Stat st = Posix.fstat(fd);
            // the same inode number may be a new file (numbers are reused): the handle has its generation
            if (st.ino() != f.qid.path() || (f.handle != null && !java.util.Arrays.equals(f.handle, Posix.fileHandle(fd)))) {
                Posix.close(fd);
                throw new P9Error(P9.ESTALE, "/" + String.join("/", f.path) + " is no longer the file of this fid");
            }
        } catch (P9Error | IOException e) {
            server.releaseFid();
            throw e instanceof P9Error p && p.errno == P9.ESTALE ? p
                    : new P9Error(P9.ESTALE, "fid's file is gone: /" + String.join("/", f.path));
        }
        f.fd = fd;
        f.handle = null;
        track(f);
    }

    private synchronized void bind(int n, Fid f) throws P9Error {
        if (closed) {
            release(f);
            throw new P9Error(P9.EBADF, "connection closed");
        }
        if (fids.containsKey(n)) {
            release(f);
            throw new P9Error(P9.EBADF, "fid " + n + " already in use");
        }
        if (fids.size() >= MAX_FIDS || !holdDescriptor(f)) {
            release(f);
            throw new P9Error(P9.EMFILE, "fid limit reached (" + MAX_FIDS + " per connection, " + server.maxFids + " descriptors in all)");
        }
        fids.put(n, f);
    }

    private synchronized void replace(int n, Fid f) throws P9Error {
        if (closed) {
            release(f);
            throw new P9Error(P9.EBADF, "connection closed");
        }
        Fid old = fids.put(n, f);
        if (old != null && old != f) release(old);
        if (!holdDescriptor(f)) {
            server.reserveFidAnyway();       // over budget: a walk onto its own fid still succeeds
            f.counted = true;
        }
    }

    private synchronized Fid unbind(int n) throws P9Error {
        Fid f = fids.remove(n);
        if (f == null) throw new P9Error(P9.EBADF, "unknown fid " + n);
        return f;
    }

    private synchronized void release(Fid f) {
        if (f.file != null) P9ServerContext.closeQuietly(f.file);
        f.file = null;
        if (f.dirFd >= 0) Posix.close(f.dirFd);
        f.dirFd = -1;
        dropDescriptor(f);
    }

    /**
     * Tversion and connection end: every fid is clunked. A fid a running request still uses keeps its
     * descriptor until that request ends (then it is released), so nothing is closed under a worker.
     */
    synchronized void clunkAll() {
        for (Fid f : fids.values()) {
            if (f.users > 0) f.dropped = true;
            else release(f);
        }
        fids.clear();
        server.locks.releaseSession(session);
    }

    /** The connection ended: every fid is released, and none can be bound by requests still running. */
    synchronized void close() {
        closed = true;
        clunkAll();
        server.sessions.remove(this);
    }

    /** Fids of this connection (for tests and gauges). */
    synchronized int fidCount() {
        return fids.size();
    }

    /**
     * A directory or file at {@code from} (names from the export root) is now at {@code to}: fids at or
     * below it remember the new path, so ".." and reopening a reclaimed descriptor find the right file.
     */
    synchronized void renamed(P9Export export, List<String> from, List<String> to) {
        for (Fid f : fids.values()) {
            List<String> p = f.path;
            if (f.export != export || p.size() < from.size() || !p.subList(0, from.size()).equals(from)) continue;
            List<String> np = new ArrayList<>(to);
            np.addAll(p.subList(from.size(), p.size()));
            f.path = List.copyOf(np);
        }
    }

    /** A request answered Rlerror: counted in bridgefs_io_errors_total of the export this connection attached to last (else the first). */
    void countError() {
        P9Export e = lastExport;
        if (e == null && !server.exports.isEmpty()) e = server.exports.get(0);
        if (e != null) e.metrics().errors.inc();
    }

    /** Fails with the host's errno (EACCES) unless the request's user may open the fid's file for that access. */
    private static void mayOpen(Fid f, boolean read, boolean write) throws IOException {
        int mode = read && write ? Posix.O_RDWR : write ? 1 : Posix.O_RDONLY;     // O_WRONLY = 1
        Posix.close(Posix.open(f.procPath(), mode));
    }

    interface IoCall<T> {
        T call() throws IOException;
    }

    /** Runs shared-cache work (opening a file's one backing store) as the server, then the user again. */
    private static <T> T asServer(Fid f, IoCall<T> work) throws IOException {
        if (!SWITCHED.get()[0]) return work.call();     // not switched (root acting as root)
        Credentials.restore();
        try {
            return work.call();
        } finally {
            Credentials.become(Credentials.identity(f.export.hostUid(f.uid)));
        }
    }

    /**
     * security=passthrough: the rest of this request runs with the host credentials of {@code uid} (the
     * attaching user; root squashed with root=squash), so the host's permission checks apply. Once per
     * request: the first fid looked up decides.
     */
    private static void actAs(P9Export e, int uid) throws P9Error {
        if (!e.passthrough()) return;
        boolean[] on = SWITCHED.get();
        if (on[0]) return;
        int hostUid = e.hostUid(uid);
        if (hostUid == 0 && Credentials.SERVER_IS_ROOT) return;    // root acting as root: nothing to switch
        try {
            Credentials.become(Credentials.identity(hostUid));
        } catch (IOException x) {
            throw new P9Error(P9.EPERM, "cannot act as uid " + uid + ": " + x.getMessage());
        }
        on[0] = true;
    }

    // ---- helpers ----

    static void checkName(String name) throws P9Error {
        if (name.isEmpty() || name.equals(".") || name.equals("..") || name.indexOf('/') >= 0 || name.indexOf('\0') >= 0) {
            throw new P9Error(P9.EINVAL, "bad name '" + name + "'");
        }
        if (name.getBytes(StandardCharsets.UTF_8).length > MAX_NAME) throw new P9Error(P9.ENAMETOOLONG, "name too long");
    }

    /** The directory fid in which a new entry {@code name} is to be made: writable export, valid name. */
    private Fid newEntryIn(int dirFid, String name) throws P9Error {
        Fid d = fid(dirFid);
        writable(d);
        checkName(name);
        return d;
    }

    private static void writable(Fid f) throws P9Error {
        if (f.export.readOnly()) throw new P9Error(P9.EROFS, "export '" + f.export.name() + "' is read-only");
    }

    static Qid qid(Stat st, long changes) {
        int type = st.isDir() ? Qid.QTDIR : st.isSymlink() ? Qid.QTSYMLINK : Qid.QTFILE;
        long v = st.mtimeSec() * 1_000_000_007L + st.mtimeNsec() + st.size() * 31 + changes * 1_000_003L;
        return new Qid(type, st.isRegular() ? (int) (v ^ (v >>> 32)) : 0, st.ino());
    }

    /** Opens the export root and walks {@code names} without following anything. */
    private int resolve(P9Export e, List<String> names) throws P9Error {
        int fd;
        try {
            int root = server.rootFd(e);
            if (root < 0) throw new IOException("not open");
            fd = Posix.dup(root);
        } catch (IOException x) {
            throw new P9Error(P9.EIO, "export root " + e.root() + ": " + x.getMessage());
        }
        for (String n : names) {
            try {
                int next = Posix.openat(fd, n, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
                Posix.close(fd);
                fd = next;
            } catch (IOException x) {
                Posix.close(fd);
                throw P9Error.from(x);
            }
        }
        return fd;
    }

    private int uidFor(Fid f) { return f.export.squash() ? f.export.squashUid() : f.uid; }

    private int gidFor(Fid f, int gid) { return f.export.squash() ? f.export.squashGid() : gid; }

    /**
     * Gives a new node the creating client's ownership (or the export's squash ownership); under
     * mapped, records the guest's owner, mode ({@code mode}, with its type) and device ({@code rdev}, -1: none).
     */
    private void own(Fid dir, String name, int gid, int mode, long rdev) throws IOException {
        if (dir.export.mapped()) {
            mappedOwn(dir, name, gid, mode, rdev);
            return;
        }
        if (dir.export.passthrough()) {
            // created with the user's fsuid and fsgid already; the group the client asks for, if the host lets it
            try {
                if (gid != -1 && gid != Credentials.identity(dir.export.hostUid(dir.uid)).gid()) {
                    Posix.fchownat(dir.fd, name, -1, gid, Posix.AT_SYMLINK_NOFOLLOW);
                }
            } catch (Posix.ErrnoException e) {
                // not a member of that group: the file keeps the user's own
            }
            return;
        }
        if (!dir.export.squash() && dir.uid == 0 && gid == 0) return;
        Posix.fchownat(dir.fd, name, uidFor(dir), gidFor(dir, gid), Posix.AT_SYMLINK_NOFOLLOW);
    }

    /** The qid of the new entry {@code name} in {@code d}, as the client sees it. */
    private static Qid statQid(Fid d, String name) throws IOException {
        int fd = Posix.openat(d.fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        try {
            return qid(stat(d.export, fd), 0);
        } finally {
            Posix.close(fd);
        }
    }

    /** The inode at {@code fd} as the client sees it: under security=mapped, with the guest's owner, mode and device. */
    static Stat stat(P9Export e, int fd) throws IOException {
        Stat st = Posix.fstat(fd);
        return e.mapped() ? Mapped.overlay("/proc/self/fd/" + fd, st) : st;
    }

    /**
     * security=mapped: records the creating guest user's view of the new entry {@code name} in {@code d}
     * (reached without following anything; the xattrs never land on a symlink's target).
     */
    private static void mappedOwn(Fid d, String name, int gid, int mode, long rdev) throws IOException {
        int fd = Posix.openat(d.fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        try {
            Mapped.set("/proc/self/fd/" + fd, d.uid, gid, mode, rdev);
        } finally {
            Posix.close(fd);
        }
    }

    /** The shared cached file of a regular file (one reference for the caller). */
    private CachedFile openData(Fid f, Stat st) throws IOException {
        FileKey key = new FileKey(st.dev(), st.ino());
        CachedFile cf = server.cache.openIfPresent(key);
        if (cf == null) {
            cf = server.cache.open(key, FileBackingStore.open(Path.of(f.procPath()), f.export.readOnly()), f.export.readOnly());
            cf.readaheadIfUnset(f.export.readahead());     // an NBD export of the same file keeps its own
        } else {
            cf.revalidate();     // changed by another host process since we cached it?
        }
        server.retain(cf);
        return cf;
    }

    // ---- operations ----

    Rattach attach(Tattach m) throws P9Error, IOException {
        P9Export e = server.find(m.aname());
        if (e == null) throw new P9Error(P9.ENOENT, "no 9P export named '" + m.aname() + "'");
        int uid = m.nuname() == -1 ? 0 : m.nuname();
        if (!io.bridgefs.server.config.Cidr.admits(e.hosts(), peer)) {
            throw new P9Error(P9.EACCES, "export '" + e.name() + "' is not served to " + peer);
        }
        actAs(e, uid);
        int fd = resolve(e, List.of());
        Stat st = stat(e, fd);
        Fid f = new Fid(e, List.of(), fd, qid(st, 0), uid);
        bind(m.fid(), f);
        lastExport = e;
        return new Rattach(m.tag(), f.qid);
    }

    Rwalk walk(Twalk m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if (m.names().size() > P9.MAXWELEM) throw new P9Error(P9.EINVAL, "walk of " + m.names().size() + " names");
        // walking from an open fid is allowed (diod does; the new fid is never open)
        if (m.newfid() != m.fid()) {
            synchronized (this) {
                if (fids.containsKey(m.newfid())) throw new P9Error(P9.EBADF, "newfid " + m.newfid() + " in use");
            }
        }
        List<String> path = new ArrayList<>(f.path);
        int fd = Posix.dup(f.fd);
        Qid q = f.qid;
        List<Qid> qids = new ArrayList<>();
        for (String name : m.names()) {
            int next;
            try {
                if (name.equals("..")) {
                    if (!path.isEmpty()) path.remove(path.size() - 1);   // at the root ".." stays at the root
                    next = resolve(f.export, path);
                } else if (name.equals(".")) {
                    if ((q.type() & Qid.QTDIR) == 0) throw new P9Error(P9.ENOTDIR, "walk through a non-directory");
                    next = Posix.dup(fd);
                } else {
                    checkName(name);
                    if ((q.type() & Qid.QTDIR) == 0) throw new P9Error(P9.ENOTDIR, "walk through a non-directory");
                    next = Posix.openat(fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
                    path.add(name);
                }
                q = qid(stat(f.export, next), 0);
            } catch (P9Error | IOException x) {
                Posix.close(fd);
                if (qids.isEmpty()) throw x instanceof P9Error p ? p : P9Error.from((IOException) x);
                return new Rwalk(m.tag(), qids);            // partial walk: newfid stays unbound
            }
            Posix.close(fd);
            fd = next;
            qids.add(q);
        }
        Fid nf = new Fid(f.export, path, fd, q, f.uid);
        if (m.newfid() == m.fid()) replace(m.newfid(), nf);
        else bind(m.newfid(), nf);
        return new Rwalk(m.tag(), qids);
    }

    Rlopen lopen(Tlopen m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if (f.opened) throw new P9Error(P9.EBADF, "fid already open");
        open(f, m.flags());
        return new Rlopen(m.tag(), f.qid, iounit());
    }

    private int iounit() { return msize - P9.IOHDRSZ; }

    private void open(Fid f, int flags) throws P9Error, IOException {
        Stat st = stat(f.export, f.fd);
        int acc = flags & P9.O_ACCMODE;
        boolean modifies = acc != P9.O_RDONLY || (flags & P9.O_TRUNC) != 0;
        if (modifies) writable(f);
        if (st.isSymlink()) throw new P9Error(P9.ELOOP, "open of a symlink");
        if (st.isDir()) {
            if (acc != P9.O_RDONLY) throw new P9Error(P9.EISDIR, "directory opened for writing");
            f.dirFd = Posix.openat(f.fd, ".", Posix.O_RDONLY | Posix.O_DIRECTORY, 0);
        } else if (st.isRegular()) {
            if ((flags & P9.O_DIRECTORY) != 0) throw new P9Error(P9.ENOTDIR, "not a directory");
            if (f.export.passthrough()) {
                // the data comes from the shared cache, opened once by the server: the host decides here,
                // with the user's credentials, whether this user may open the file this way
                mayOpen(f, acc != P9.O_WRONLY, modifies);
                f.file = asServer(f, () -> openData(f, st));
            } else {
                f.file = openData(f, st);
            }
            if ((flags & P9.O_TRUNC) != 0 && f.file.size() != 0) f.file.truncate(0);
            int writer = f.export.passthrough() ? f.export.hostUid(f.uid) : uidFor(f);
        f.clearPrivileges = acc != P9.O_RDONLY && writer != 0 && (st.mode() & (Posix.S_ISUID | Posix.S_ISGID)) != 0;
        } else {
            throw new P9Error(P9.EPERM, "device files, FIFOs and sockets are not opened on the host");
        }
        f.opened = true;
        f.openFlags = flags;
    }

    Rlcreate lcreate(Tlcreate m) throws P9Error, IOException {
        Fid d = newEntryIn(m.fid(), m.name());
        if (!d.isDir() || d.opened) throw new P9Error(P9.ENOTDIR, "create in a non-directory");
        int flags = m.flags();
        int create = Posix.O_CREAT | Posix.O_NOFOLLOW | Posix.O_RDONLY;
        boolean created = true;
        int tmp;
        try {
            tmp = Posix.openat(d.fd, m.name(), create | Posix.O_EXCL, d.export.mapped() ? Mapped.FILE_MODE : m.mode() & 07777);
        } catch (Posix.ErrnoException x) {
            if (x.errno() != P9.EEXIST || (flags & P9.O_EXCL) != 0) throw x;
            tmp = Posix.openat(d.fd, m.name(), Posix.O_RDONLY | Posix.O_NOFOLLOW, 0);
            created = false;
        }
        Posix.close(tmp);
        if (created) own(d, m.name(), m.gid(), Posix.S_IFREG | (m.mode() & 07777), -1);
        int fd = Posix.openat(d.fd, m.name(), Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        List<String> path = new ArrayList<>(d.path);
        path.add(m.name());
        Fid f = new Fid(d.export, path, fd, qid(stat(d.export, fd), 0), d.uid);
        open(f, flags & ~(P9.O_CREAT | P9.O_EXCL));
        replace(m.fid(), f);
        return new Rlcreate(m.tag(), f.qid, iounit());
    }

    Rsymlink symlink(Tsymlink m) throws P9Error, IOException {
        Fid d = newEntryIn(m.fid(), m.name());
        if (m.target().isEmpty() || m.target().length() > 4095) throw new P9Error(P9.EINVAL, "bad symlink target");
        if (d.export.mapped()) {
            // as QEMU's mapped-xattr: a regular file holding the target
            int fd = Posix.openat(d.fd, m.name(), Posix.O_CREAT | Posix.O_EXCL | Posix.O_NOFOLLOW | Posix.O_RDWR, Mapped.FILE_MODE);
            try {
                byte[] t = m.target().getBytes(StandardCharsets.UTF_8);
                java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect(t.length).put(t).flip();
                if (Posix.pwrite(fd, b, 0) != t.length) throw new P9Error(P9.EIO, "short write of a symlink's target");
            } finally {
                Posix.close(fd);
            }
        } else {
            Posix.symlinkat(m.target(), d.fd, m.name());   // stored, never followed by the server
        }
        own(d, m.name(), m.gid(), Posix.S_IFLNK | 0777, -1);
        return new Rsymlink(m.tag(), statQid(d, m.name()));
    }

    Rmknod mknod(Tmknod m) throws P9Error, IOException {
        Fid d = newEntryIn(m.dfid(), m.name());
        int type = m.mode() & Posix.S_IFMT;
        long dev = 0;
        if (type == Posix.S_IFCHR || type == Posix.S_IFBLK) {
            if (!d.export.devices() && !d.export.mapped()) throw new P9Error(P9.EPERM, "device nodes are not created on this export (option 'devices')");
            long major = m.major() & 0xFFFFFFFFL, minor = m.minor() & 0xFFFFFFFFL;   // glibc's makedev
            dev = ((major & 0xFFFFF000L) << 32) | ((major & 0xFFFL) << 8) | ((minor & 0xFFFFFF00L) << 12) | (minor & 0xFFL);
        } else if (type != Posix.S_IFREG && type != Posix.S_IFIFO && type != Posix.S_IFSOCK) {
            throw new P9Error(P9.EINVAL, "unknown file type in mknod");
        }
        if (d.export.mapped()) {
            Posix.mknodat(d.fd, m.name(), Posix.S_IFREG | Mapped.FILE_MODE, 0);   // only the guest sees a device, FIFO or socket
        } else {
            Posix.mknodat(d.fd, m.name(), type | (m.mode() & 07777), dev);
        }
        own(d, m.name(), m.gid(), type | (m.mode() & 07777), dev);
        return new Rmknod(m.tag(), statQid(d, m.name()));
    }

    Rmkdir mkdir(Tmkdir m) throws P9Error, IOException {
        Fid d = newEntryIn(m.dfid(), m.name());
        Posix.mkdirat(d.fd, m.name(), d.export.mapped() ? Mapped.DIR_MODE : m.mode() & 07777);
        own(d, m.name(), m.gid(), Posix.S_IFDIR | (m.mode() & 07777), -1);
        return new Rmkdir(m.tag(), statQid(d, m.name()));
    }

    Rrename rename(Trename m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        Fid d = fid(m.dfid());
        writable(f);
        checkName(m.name());
        List<String> path = f.path;
        if (path.isEmpty()) throw new P9Error(P9.EBUSY, "cannot rename the export root");
        int parent = resolve(f.export, path.subList(0, path.size() - 1));
        try {
            Posix.renameat(parent, path.get(path.size() - 1), d.fd, m.name());
        } finally {
            Posix.close(parent);
        }
        List<String> np = new ArrayList<>(d.path);
        np.add(m.name());
        server.renamed(f.export, path, np);
        return new Rrename(m.tag());
    }

    Rrenameat renameat(Trenameat m) throws P9Error, IOException {
        Fid od = fid(m.olddirfid());
        Fid nd = fid(m.newdirfid());
        writable(od);
        checkName(m.oldname());
        checkName(m.newname());
        Posix.renameat(od.fd, m.oldname(), nd.fd, m.newname());
        List<String> from = new ArrayList<>(od.path);
        from.add(m.oldname());
        List<String> to = new ArrayList<>(nd.path);
        to.add(m.newname());
        server.renamed(od.export, from, to);
        return new Rrenameat(m.tag());
    }

    Runlinkat unlinkat(Tunlinkat m) throws P9Error, IOException {
        Fid d = newEntryIn(m.dirfid(), m.name());
        Posix.unlinkat(d.fd, m.name(), m.flags() & P9.AT_REMOVEDIR);
        return new Runlinkat(m.tag());
    }

    Rlink link(Tlink m) throws P9Error, IOException {
        Fid d = fid(m.dfid());
        Fid f = fid(m.fid());
        writable(d);
        checkName(m.name());
        Posix.linkat(f.fd, "", d.fd, m.name(), Posix.AT_EMPTY_PATH);
        return new Rlink(m.tag());
    }

    Rreadlink readlink(Treadlink m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if ((f.qid.type() & Qid.QTSYMLINK) == 0) throw new P9Error(P9.EINVAL, "not a symlink");
        if (f.export.mapped() && Posix.fstat(f.fd).isRegular()) return new Rreadlink(m.tag(), mappedTarget(f));
        return new Rreadlink(m.tag(), Posix.readlinkat(f.fd, ""));
    }

    /** security=mapped: a symlink is a regular file holding its target. */
    private static String mappedTarget(Fid f) throws IOException {
        int fd = Posix.open(f.procPath(), Posix.O_RDONLY);     // the magic link reopens this very inode (checked regular)
        try {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect(4096);
            int n = Posix.pread(fd, b, 0);
            byte[] t = new byte[Math.max(0, n)];
            b.get(0, t);
            return new String(t, StandardCharsets.UTF_8);
        } finally {
            Posix.close(fd);
        }
    }

    Rgetattr getattr(Tgetattr m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        Stat st = stat(f.export, f.fd);
        long size = st.size();
        long changes = 0;
        if (st.isRegular()) {
            CachedFile cf = server.cache.openIfPresent(new FileKey(st.dev(), st.ino()));
            if (cf != null) {
                try {
                    cf.revalidate();
                    if (cf.dirty()) {
                        cf.writeback(false);      // so the host's size and mtime are current
                        st = stat(f.export, f.fd);
                    }
                    size = Math.max(st.size(), cf.size());
                    changes = cf.changes();
                } finally {
                    P9ServerContext.closeQuietly(cf);
                }
            }
        }
        return new Rgetattr(m.tag(), P9.GETATTR_BASIC, qid(st, changes), st.mode(), st.uid(), st.gid(), st.nlink(), st.rdev(),
                size, st.blksize(), st.blocks(), st.atimeSec(), st.atimeNsec(), st.mtimeSec(), st.mtimeNsec(),
                st.ctimeSec(), st.ctimeNsec(), 0, 0, 0, 0);
    }

    Rsetattr setattr(Tsetattr m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        writable(f);
        int v = m.valid();
        Stat st = Posix.fstat(f.fd);
        if (f.export.mapped()) {
            setMapped(f, m);
        } else {
            if ((v & P9.SETATTR_MODE) != 0 && !st.isSymlink()) Posix.fchmodat(Posix.AT_FDCWD, f.procPath(), m.mode() & 07777);
            if ((v & (P9.SETATTR_UID | P9.SETATTR_GID)) != 0 && !f.export.squash()) {
                Posix.fchownat(f.fd, "", (v & P9.SETATTR_UID) != 0 ? m.uid() : -1, (v & P9.SETATTR_GID) != 0 ? m.gid() : -1,
                        Posix.AT_EMPTY_PATH | Posix.AT_SYMLINK_NOFOLLOW);
            }
        }
        CachedFile cf = !st.isRegular() ? null : f.export.passthrough() ? asServer(f, () -> openData(f, st)) : openData(f, st);
        try {
            if ((v & P9.SETATTR_SIZE) != 0) {
                if (cf == null) throw new P9Error(st.isDir() ? P9.EISDIR : P9.EINVAL, "size of a non-file");
                if (m.size() < 0) throw new P9Error(P9.EINVAL, "negative size");
                if (f.export.passthrough()) mayOpen(f, false, true);      // truncate(2) needs write permission
                cf.truncate(m.size());
            }
            if ((v & (P9.SETATTR_ATIME | P9.SETATTR_MTIME)) != 0) {
                if (cf != null && cf.dirty()) cf.writeback(false);   // a later write-back must not move mtime
                long aS = 0, aN = Posix.UTIME_OMIT, mS = 0, mN = Posix.UTIME_OMIT;
                if ((v & P9.SETATTR_ATIME) != 0) {
                    aS = m.atimeSec();
                    aN = (v & P9.SETATTR_ATIME_SET) != 0 ? m.atimeNsec() : Posix.UTIME_NOW;
                }
                if ((v & P9.SETATTR_MTIME) != 0) {
                    mS = m.mtimeSec();
                    mN = (v & P9.SETATTR_MTIME_SET) != 0 ? m.mtimeNsec() : Posix.UTIME_NOW;
                }
                if (st.isSymlink()) {
                    // the link's own times (utimensat cannot take an O_PATH descriptor of a symlink): by name
                    // from its parent, never following it
                    if (f.path.isEmpty()) throw new P9Error(P9.EINVAL, "the export root is not a symlink");
                    int parent = resolve(f.export, f.path.subList(0, f.path.size() - 1));
                    try {
                        Stat now = Posix.fstatat(parent, f.path.get(f.path.size() - 1), Posix.AT_SYMLINK_NOFOLLOW);
                        if (now.ino() != st.ino()) throw new P9Error(P9.ESTALE, "symlink replaced");
                        Posix.utimensat(parent, f.path.get(f.path.size() - 1), aS, aN, mS, mN, Posix.AT_SYMLINK_NOFOLLOW);
                    } finally {
                        Posix.close(parent);
                    }
                } else {
                    Posix.utimensat(Posix.AT_FDCWD, f.procPath(), aS, aN, mS, mN, 0);
                }
            }
        } finally {
            if (cf != null) P9ServerContext.closeQuietly(cf);
        }
        return new Rsetattr(m.tag());
    }

    /** security=mapped chmod/chown: only the guest's view changes (the host file stays the server's, 0600/0700). */
    private static void setMapped(Fid f, Tsetattr m) throws IOException {
        int v = m.valid();
        if ((v & (P9.SETATTR_MODE | P9.SETATTR_UID | P9.SETATTR_GID)) == 0) return;
        Stat seen = stat(f.export, f.fd);
        if (seen.isSymlink() && (v & (P9.SETATTR_UID | P9.SETATTR_GID)) == 0) return;    // a symlink's mode never changes
        Mapped.set(f.procPath(), (v & P9.SETATTR_UID) != 0 ? m.uid() : -1, (v & P9.SETATTR_GID) != 0 ? m.gid() : -1,
                (v & P9.SETATTR_MODE) != 0 && !seen.isSymlink() ? seen.type() | (m.mode() & 07777) : -1, -1);
    }

    Rstatfs statfs(Tstatfs m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        Posix.StatFs s = Posix.fstatfs(f.fd);
        return new Rstatfs(m.tag(), (int) s.type(), (int) s.bsize(), s.blocks(), s.bfree(), s.bavail(), s.files(), s.ffree(),
                s.fsid(), (int) s.namelen());
    }

    /** Tread: the reply is encoded here, with the data read from the cache straight into it. */
    ByteBuf read(Tread m, ByteBufAllocator alloc) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if (f.xattrValue == null) {
            try (var t = f.export.metrics().read.time()) {
                return readData(f, m, alloc);
            }
        }
        return readData(f, m, alloc);
    }

    private ByteBuf readData(Fid f, Tread m, ByteBufAllocator alloc) throws P9Error, IOException {
        int count = Math.max(0, Math.min(m.count(), iounit()));
        if (f.xattrValue != null) {
            int from = (int) Math.min(Math.max(0, m.offset()), f.xattrValue.length);
            int n = Math.min(count, f.xattrValue.length - from);
            ByteBuf b = header(alloc, 117, m.tag(), 4 + n);
            b.writeIntLE(n).writeBytes(f.xattrValue, from, n);
            return b;
        }
        if (!f.opened || f.file == null) throw new P9Error(f.isDir() ? P9.EISDIR : P9.EBADF, "read of a fid not open for reading");
        if ((f.openFlags & P9.O_ACCMODE) == P9.O_WRONLY) throw new P9Error(P9.EBADF, "fid open write-only");
        long size = f.file.size();
        int n = m.offset() < 0 || m.offset() >= size ? 0 : (int) Math.min(count, size - m.offset());
        ByteBuf b = header(alloc, 117, m.tag(), 4 + n);
        try {
            b.writeIntLE(n);
            if (n > 0) {
                f.file.read(IoPath.NINEP, m.offset(), b.nioBuffer(b.writerIndex(), n));
                b.writerIndex(b.writerIndex() + n);
            }
            f.export.metrics().readBytes.inc(n);
            return b;
        } catch (IOException | RuntimeException e) {
            b.release();
            throw e;
        }
    }

    private static ByteBuf header(ByteBufAllocator alloc, int type, int tag, int bodySize) {
        ByteBuf b = alloc.directBuffer(P9.HEADER + bodySize);
        b.writeIntLE(P9.HEADER + bodySize).writeByte(type).writeShortLE(tag);
        return b;
    }

    Rwrite write(Twrite m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if (f.xattrWrite == null) {
            try (var t = f.export.metrics().write.time()) {
                return writeData(f, m);
            }
        }
        return writeData(f, m);
    }

    private Rwrite writeData(Fid f, Twrite m) throws P9Error, IOException {
        int n = m.data().readableBytes();
        if (f.xattrWrite != null) {
            if (f.xattrWrite.size() + (long) n > f.xattrSize) throw new P9Error(P9.ERANGE, "xattr data beyond the declared size");
            m.data().getBytes(m.data().readerIndex(), f.xattrWrite, n);
            return new Rwrite(m.tag(), n);
        }
        writable(f);
        if (!f.opened || f.file == null) throw new P9Error(f.isDir() ? P9.EISDIR : P9.EBADF, "write to a fid not open for writing");
        if ((f.openFlags & P9.O_ACCMODE) == P9.O_RDONLY) throw new P9Error(P9.EBADF, "fid open read-only");
        if (m.offset() < 0) throw new P9Error(P9.EINVAL, "offset beyond 2^63");
        long at = (f.openFlags & P9.O_APPEND) != 0 ? f.file.size() : m.offset();
        boolean sync = (f.openFlags & P9.O_SYNC) == P9.O_SYNC;
        if (f.clearPrivileges) {
            // the kernel clears them whoever writes; under passthrough the writer may not chmod the file itself
            if (f.export.passthrough()) asServer(f, () -> dropSetId(f));
            else dropSetId(f);
        }
        f.file.write(IoPath.NINEP, at, m.data().nioBuffers(), sync);
        f.export.metrics().writeBytes.inc(n);
        return new Rwrite(m.tag(), n);
    }

    /**
     * A write by anyone but root clears setuid, and setgid where the group may execute (the kernel's
     * file_remove_privs, which would not act here: the server writes as root).
     */
    private static Void dropSetId(Fid f) throws IOException {
        f.clearPrivileges = false;
        int mode = stat(f.export, f.fd).mode();
        int drop = (mode & Posix.S_ISUID) | ((mode & (Posix.S_ISGID | 010)) == (Posix.S_ISGID | 010) ? Posix.S_ISGID : 0);
        if (drop == 0) return null;
        if (f.export.mapped()) Mapped.set(f.procPath(), -1, -1, mode & ~drop, -1);
        else Posix.fchmodat(Posix.AT_FDCWD, f.procPath(), mode & 07777 & ~drop);
        return null;
    }

    Rclunk clunk(Tclunk m) throws P9Error, IOException {
        Fid f = unbind(m.fid());
        try {
            if (f.xattrWrite != null) commitXattr(f);
        } finally {
            release(f);
        }
        return new Rclunk(m.tag());
    }

    private static void commitXattr(Fid f) throws P9Error, IOException {
        byte[] v = f.xattrWrite.toByteArray();
        if (v.length != f.xattrSize) throw new P9Error(P9.EINVAL, "xattr data shorter than declared");
        if (v.length == 0 && (f.xattrFlags & 2) != 0) {
            Posix.removexattr(f.procPath(), f.xattrName);   // XATTR_REPLACE with no value: removal
        } else {
            Posix.setxattr(f.procPath(), f.xattrName, v, f.xattrFlags);
        }
    }

    Rremove remove(Tremove m) throws P9Error, IOException {
        Fid f = unbind(m.fid());
        try {
            writable(f);
            if (f.path.isEmpty()) throw new P9Error(P9.EBUSY, "cannot remove the export root");
            int parent = resolve(f.export, f.path.subList(0, f.path.size() - 1));
            try {
                Posix.unlinkat(parent, f.path.get(f.path.size() - 1), f.isDir() ? Posix.AT_REMOVEDIR : 0);
            } finally {
                Posix.close(parent);
            }
        } finally {
            release(f);
        }
        return new Rremove(m.tag());
    }

    Rxattrwalk xattrwalk(Txattrwalk m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if ((f.qid.type() & Qid.QTSYMLINK) != 0) throw new P9Error(P9.ENODATA, "no xattrs on symlinks here");
        byte[] value;
        if (m.name().isEmpty()) {
            value = Posix.listxattr(f.procPath());
            if (f.export.mapped()) value = Mapped.hide(value);
        } else {
            value = f.export.mapped() && Mapped.reserved(m.name()) ? null : Posix.getxattr(f.procPath(), m.name());
        }
        if (value == null) throw new P9Error(P9.ENODATA, "no xattr " + m.name());
        Fid x = new Fid(f.export, f.path, Posix.dup(f.fd), f.qid, f.uid);
        x.xattrValue = value;
        if (m.newfid() == m.fid()) replace(m.newfid(), x);
        else bind(m.newfid(), x);
        return new Rxattrwalk(m.tag(), value.length);
    }

    Rxattrcreate xattrcreate(Txattrcreate m) throws P9Error {
        Fid f = fid(m.fid());
        writable(f);
        if (m.size() < 0 || m.size() > MAX_XATTR) throw new P9Error(P9.E2BIG, "xattr of " + m.size() + " bytes");
        if (m.name().isEmpty()) throw new P9Error(P9.EINVAL, "empty xattr name");
        if (f.export.mapped() && !Mapped.allowed(m.name())) {
            // the server's own user.virtfs.* are refused as QEMU does; other namespaces would act on the host file itself
            throw Mapped.reserved(m.name()) ? new P9Error(P9.EACCES, "xattr " + m.name() + " is the server's")
                    : new P9Error(P9.EOPNOTSUPP, "only user.* xattrs under security=mapped");
        }
        f.xattrName = m.name();
        f.xattrSize = m.size();
        f.xattrFlags = m.flags();
        f.xattrWrite = new ByteArrayOutputStream((int) m.size());
        return new Rxattrcreate(m.tag());
    }

    /** Treaddir: entries from getdents64; each entry's offset is the host's d_off, a stable resume cookie. */
    ByteBuf readdir(Treaddir m, ByteBufAllocator alloc) throws P9Error, IOException {
        Fid f = fid(m.fid());
        if (!f.opened || f.dirFd < 0) throw new P9Error(P9.ENOTDIR, "readdir of a fid not open as a directory");
        int count = Math.max(0, Math.min(m.count(), iounit()));
        ByteBuf b = header(alloc, 41, m.tag(), 4 + count);
        int countAt = b.writerIndex();
        b.writeIntLE(0);
        try {
            synchronized (f) {
                if (Posix.lseek(f.dirFd, m.offset(), 0) < 0) throw new P9Error(P9.EINVAL, "bad readdir offset");
                com.sun.jna.Memory buf = DENTS.get();
                outer:
                while (true) {
                    int n = Posix.getdents64(f.dirFd, buf);
                    if (n <= 0) break;
                    for (int pos = 0; pos < n; ) {
                        long ino = buf.getLong(pos);
                        long off = buf.getLong(pos + 8);
                        int reclen = buf.getShort(pos + 16) & 0xFFFF;
                        int dtype = buf.getByte(pos + 18) & 0xFF;
                        if (f.export.mapped() && dtype != 4) dtype = 0;    // DT_UNKNOWN: the guest's type is in the xattrs, as QEMU says
                        byte[] name = nameBytes(buf, pos + 19, reclen - 19);
                        int need = Qid.SIZE + 8 + 1 + 2 + name.length;
                        if (b.writerIndex() - countAt - 4 + need > count) break outer;
                        int qt = dtype == 4 ? Qid.QTDIR : dtype == 10 ? Qid.QTSYMLINK : Qid.QTFILE;
                        b.writeByte(qt).writeIntLE(0).writeLongLE(ino);
                        b.writeLongLE(off).writeByte(dtype).writeShortLE(name.length).writeBytes(name);
                        pos += reclen;
                    }
                }
            }
            int len = b.writerIndex() - countAt - 4;
            b.setIntLE(countAt, len);
            b.setIntLE(0, b.writerIndex());
            return b;
        } catch (P9Error | IOException | RuntimeException e) {
            b.release();
            throw e;
        }
    }

    private static byte[] nameBytes(com.sun.jna.Memory buf, int at, int max) {
        int len = 0;
        while (len < max && buf.getByte(at + len) != 0) len++;
        return buf.getByteArray(at, len);
    }

    Rfsync fsync(Tfsync m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        try (var t = f.export.metrics().flush.time()) {
            if (f.file != null) f.file.flush();
        }
        return new Rfsync(m.tag());
    }

    Rlock lock(Tlock m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        Stat st = Posix.fstat(f.fd);
        var owner = new LockTable.Owner(session, m.clientId(), m.procId());
        return new Rlock(m.tag(), server.locks.lock(new FileKey(st.dev(), st.ino()), owner, m.type(), m.start(), m.length()));
    }

    Rgetlock getlock(Tgetlock m) throws P9Error, IOException {
        Fid f = fid(m.fid());
        Stat st = Posix.fstat(f.fd);
        var owner = new LockTable.Owner(session, m.clientId(), m.procId());
        LockTable.Holder h = server.locks.test(new FileKey(st.dev(), st.ino()), owner, m.type(), m.start(), m.length());
        if (h == null) return new Rgetlock(m.tag(), P9.LOCK_TYPE_UNLCK, m.start(), m.length(), m.procId(), m.clientId());
        return new Rgetlock(m.tag(), h.type(), h.start(), h.length(), h.procId(), h.clientId());
    }

    /** Dispatches one request (not Tversion/Tflush, which the session handles). Returns a message or an encoded ByteBuf. */
    Object handle(P9Message m, ByteBufAllocator alloc) throws P9Error, IOException {
        List<Fid> acquired = ACQUIRED.get();
        try {
            return dispatch(m, alloc);
        } finally {
            boolean[] on = SWITCHED.get();
            if (on[0]) {
                Credentials.restore();
                on[0] = false;
            }
            if (!acquired.isEmpty()) releaseAcquired(acquired);
        }
    }

    private Object dispatch(P9Message m, ByteBufAllocator alloc) throws P9Error, IOException {
        if (m instanceof Tread r) return read(r, alloc);
        if (m instanceof Twrite w) return write(w);
        if (m instanceof Twalk w) return walk(w);
        if (m instanceof Tgetattr g) return getattr(g);
        if (m instanceof Tclunk c) return clunk(c);
        if (m instanceof Tlopen o) return lopen(o);
        if (m instanceof Treaddir r) return readdir(r, alloc);
        if (m instanceof Txattrwalk x) return xattrwalk(x);
        if (m instanceof Tlcreate c) return lcreate(c);
        if (m instanceof Tsetattr s) return setattr(s);
        if (m instanceof Tattach a) return attach(a);
        if (m instanceof Tmkdir d) return mkdir(d);
        if (m instanceof Tunlinkat u) return unlinkat(u);
        if (m instanceof Trenameat r) return renameat(r);
        if (m instanceof Tsymlink s) return symlink(s);
        if (m instanceof Treadlink r) return readlink(r);
        if (m instanceof Tlink l) return link(l);
        if (m instanceof Tmknod n) return mknod(n);
        if (m instanceof Trename r) return rename(r);
        if (m instanceof Tremove r) return remove(r);
        if (m instanceof Tstatfs s) return statfs(s);
        if (m instanceof Tfsync s) return fsync(s);
        if (m instanceof Tlock l) return lock(l);
        if (m instanceof Tgetlock g) return getlock(g);
        if (m instanceof Txattrcreate x) return xattrcreate(x);
        // no authentication: ENOENT is how 9P2000.L servers (diod) say "auth not required, attach directly"
        if (m instanceof Tauth) throw new P9Error(P9.ENOENT, "authentication not required");
        throw new P9Error(P9.EOPNOTSUPP, "not a request: " + m.getClass().getSimpleName());
    }
}
