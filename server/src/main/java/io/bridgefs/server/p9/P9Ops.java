package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
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

    private final P9ServerContext server;
    final Object session;
    final P9DataOps data;
    final P9NodeOps nodes;
    final P9AttrOps attrs;
    private final Map<Integer, Fid> fids = new HashMap<>();
    /** The descriptors this connection's fids and opens hold (guarded by this). */
    private final FidDescriptors descriptors;

    /** Fids a request on this thread looked up: in use until the request ends. */
    private static final ThreadLocal<List<Fid>> ACQUIRED = ThreadLocal.withInitial(ArrayList::new);
    volatile int msize = 8192;
    /** The client's address, for exports served only to some hosts (set when the connection starts). */
    volatile java.net.SocketAddress peer;
    /** Runs work once the replies of the requests being read now are written: the connection's event loop. */
    volatile java.util.concurrent.Executor afterReplies = Runnable::run;
    /** The connection has ended: no fid may be bound any more (guarded by this). */
    private boolean closed;
    /** The export this connection attached to last: where its refusals are counted. */
    private volatile P9Export lastExport;

    P9Ops(P9ServerContext server, Object session) {
        this.server = server;
        this.session = session;
        this.data = new P9DataOps(this, server);
        this.nodes = new P9NodeOps(this, server);
        this.attrs = new P9AttrOps(this, server);
        this.descriptors = new FidDescriptors(server);
        server.sessions.add(this);
    }

    // ---- fid table ----

    /** The fid numbered {@code n}, in use (its descriptor held, reopened if it was reclaimed) until the request ends. */
    Fid fid(int n) throws P9Error {
        makeRoom();
        return fidLocked(n);
    }

    private synchronized Fid fidLocked(int n) throws P9Error {
        Fid f = fids.get(n);
        if (f == null) throw new P9Error(P9.EBADF, "unknown fid " + n);
        RequestUser.actAs(f.export, f.uid);
        if (f.fd < 0) reopen(f);
        else descriptors.used(f);
        f.users++;
        ACQUIRED.get().add(f);
        return f;
    }

    /**
     * Answers on the calling (network) thread a request that cannot block — a read of pages all resident
     * in the cache from an open file, a clunk of a fid that holds no open file (its O_PATH descriptor, a
     * directory's), a getattr or write that needs no write-back, a walk the kernel's dentry cache answers,
     * a directory's open for reading, a directory's read from its entries read ahead ({@link DirAhead}) —
     * or returns null: the request then goes to the executor as usual. Only a walk and a directory's open
     * switch credentials (to the user's, kept on this thread after it: {@link Credentials#hold}); a read
     * or write of an open file was permitted when it was opened. So everything else here may run as
     * whichever user walked last on this thread, and makes only calls the kernel does not check against
     * the caller's credentials (fstat, pread, close of a descriptor), or makes the thread the server again
     * first (a mapped export's getattr reads xattrs through /proc; writing cached pages back always runs
     * as the server).
     */
    Object tryFast(P9Message m, ByteBufAllocator alloc) {
        if (m instanceof Tread r) return data.tryResidentRead(r, alloc);
        if (m instanceof Tclunk c) return clunkIdle(c);
        if (m instanceof Tgetattr g) return attrs.tryGetattr(g);
        if (m instanceof Twrite w) return data.tryResidentWrite(w);
        if (m instanceof Twalk w) return nodes.tryWalk(w);
        if (m instanceof Tlopen o) return data.tryOpenDir(o);
        if (m instanceof Treaddir r) return data.tryReaddirAhead(r, alloc);
        return null;
    }

    /** An opened fid, in use until {@link #doneFast}; null if it is unknown, not open or reclaimed. */
    synchronized Fid openFidNow(int n) {
        Fid f = fids.get(n);
        if (f == null || !f.opened || f.fd < 0) return null;
        f.users++;
        return f;
    }

    /** A fid with a descriptor, in use until {@link #doneFast}; null if it is unknown or reclaimed. */
    synchronized Fid fidNow(int n) {
        Fid f = fids.get(n);
        if (f == null || f.fd < 0) return null;
        f.users++;
        return f;
    }

    synchronized void doneFast(Fid f) {
        f.users--;
        if (f.users == 0 && f.dropped) release(f);     // a last close's write-back runs as the server (FileBackingStore)
    }

    private synchronized Rclunk clunkIdle(Tclunk m) {
        Fid f = fids.get(m.fid());
        if (f == null || f.users > 0 || f.file != null || f.xattrWrite != null) return null;     // an open directory's close: at once too
        fids.remove(m.fid());
        server.fidsBound(-1);
        release(f);
        return new Rclunk(m.tag());
    }

    /** End of a request: the fids it looked up may be reclaimed again. */
    private synchronized void releaseAcquired(List<Fid> acquired) {
        for (Fid f : acquired) {
            f.users--;
            if (f.users == 0 && f.dropped) release(f);     // clunked with the connection while in use
        }
        acquired.clear();
    }


    /** Descriptors this connection's fids hold (for the fair share; no lock needed). */
    int descriptorsHeld() {
        return descriptors.held();
    }

    /**
     * Before this connection may take a descriptor: when the server's budget is spent, a connection
     * below its fair share gets one from the connection holding the most (see
     * {@link P9ServerContext#makeRoomFor}). Never with this connection's lock held, so that two
     * connections never wait for each other's.
     */
    private void makeRoom() {
        if (!Thread.holdsLock(this)) server.makeRoomFor(this);
    }

    /**
     * An open of {@code f} holds {@code n} more descriptors (a regular file's two, buffered and O_DIRECT,
     * or a directory's for getdents64): they come from the budget of opens ({@link P9ServerContext#holdOpens}),
     * else one client opening thousands of files fills the process's descriptor table and the server can
     * accept no connection.
     */
    void holdOpen(Fid f, int n) throws P9Error {
        makeRoom();
        holdOpenLocked(f, n);
    }

    private synchronized void holdOpenLocked(Fid f, int n) throws P9Error {
        if (openedOrOpening(f)) throw new P9Error(P9.EBADF, "fid already open");
        descriptors.holdOpen(f, n);
    }

    /**
     * Whether {@code f} is open, or an open of it holds its descriptors already (under this lock): of two
     * Tlopens of one fid racing on two threads, the second is refused, not left to overwrite the first's
     * descriptor or cached file, which nothing would then close.
     */
    private boolean openedOrOpening(Fid f) {
        return f.opened || f.openHeld > 0 || f.dirFd >= 0 || f.file != null;
    }

    /**
     * A directory opened on the network thread becomes {@code f}'s open, holding one descriptor of the
     * budget of opens; false if the fid was opened meanwhile (a client's two Tlopens racing), and EMFILE
     * as {@link #holdOpen}. The caller closes {@code dirFd} unless it was taken.
     */
    boolean openedDir(Fid f, int dirFd, int flags) throws P9Error {
        makeRoom();
        synchronized (this) {
            if (openedOrOpening(f)) return false;
            descriptors.holdOpen(f, 1);
            f.dirFd = dirFd;
            f.openFlags = flags;
            f.opened = true;
            return true;
        }
    }

    /** One more use of a fid this thread already uses ({@link #doneFast} ends it); false if it was let go meanwhile. */
    synchronized boolean holdAgain(Fid f) {
        if (f.dropped) return false;
        f.users++;
        return true;
    }

    /** An open failed: what it held goes (the fid stays, unopened). */
    synchronized void openFailed(Fid f) {
        if (f.file != null) P9ServerContext.closeQuietly(f.file);
        f.file = null;
        if (f.dirFd >= 0) Posix.close(f.dirFd);
        f.dirFd = -1;
        descriptors.releaseOpen(f);
    }

    /** Another connection is short of descriptors: the least recently used idle fid gives up its own. */
    synchronized boolean giveUpIdle() {
        return !closed && descriptors.reclaimOne();
    }


    /** A reclaimed fid is used again: its path is resolved from the export root and must lead to the same inode. */
    private void reopen(Fid f) throws P9Error {
        if (!descriptors.reserve()) {
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
        descriptors.track(f);
    }

    void bind(int n, Fid f) throws P9Error {
        makeRoom();
        bindLocked(n, f);
    }

    private synchronized void bindLocked(int n, Fid f) throws P9Error {
        if (closed) {
            release(f);
            throw new P9Error(P9.EBADF, "connection closed");
        }
        if (fids.containsKey(n)) {
            release(f);
            throw new P9Error(P9.EBADF, "fid " + n + " already in use");
        }
        if (fids.size() >= MAX_FIDS || !server.mayBindFid(fids.size()) || !descriptors.hold(f)) {
            release(f);
            throw new P9Error(P9.EMFILE, "fid limit reached (" + MAX_FIDS + " per connection, " + server.fidLimit() + " in all with a share each, "
                    + server.maxFids + " descriptors in all)");
        }
        fids.put(n, f);
        server.fidsBound(1);
    }

    void replace(int n, Fid f) throws P9Error {
        makeRoom();
        replaceLocked(n, f);
    }

    private synchronized void replaceLocked(int n, Fid f) throws P9Error {
        if (closed) {
            release(f);
            throw new P9Error(P9.EBADF, "connection closed");
        }
        Fid old = fids.put(n, f);
        if (old == null) server.fidsBound(1);
        if (old != null && old != f) retire(old);
        if (!descriptors.hold(f)) {
            server.reserveFidAnyway();       // over budget: a walk onto its own fid still succeeds
            f.counted = true;
        }
    }

    synchronized boolean bound(int n) {
        return fids.containsKey(n);
    }

    synchronized Fid unbind(int n) throws P9Error {
        Fid f = fids.remove(n);
        if (f == null) throw new P9Error(P9.EBADF, "unknown fid " + n);
        server.fidsBound(-1);
        return f;
    }

    synchronized void release(Fid f) {
        if (f.file != null) P9ServerContext.closeQuietly(f.file);
        f.file = null;
        if (f.dirFd >= 0) Posix.close(f.dirFd);
        f.dirFd = -1;
        DirAhead.drop(server, f);
        f.xattrValue = null;
        f.xattrWrite = null;
        server.releaseXattr(f);
        descriptors.releaseOpen(f);
        descriptors.drop(f);
    }

    /**
     * A fid taken out of the table (Tclunk, Tremove, a walk or create onto it, Tversion, the connection's
     * end) is released now, or by the last request still using it: a running Treaddir or Tread keeps its
     * descriptors until it ends. Released at once, they would be closed under it, and the number reused
     * by the next open anywhere in the server: its getdents64 or pread would read another fid's file,
     * another connection's or export's, and send it to this client.
     */
    synchronized void retire(Fid f) {
        if (f.users > 0) f.dropped = true;
        else release(f);
    }

    /**
     * Tversion and connection end: every fid is clunked. A fid a running request still uses keeps its
     * descriptor until that request ends (then it is released), so nothing is closed under a worker.
     */
    synchronized void clunkAll() {
        for (Fid f : fids.values()) retire(f);
        server.fidsBound(-fids.size());
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

    // ---- helpers ----

    static void checkName(String name) throws P9Error {
        if (name.isEmpty() || name.equals(".") || name.equals("..") || name.indexOf('/') >= 0 || name.indexOf('\0') >= 0) {
            throw new P9Error(P9.EINVAL, "bad name '" + name + "'");
        }
        if (name.getBytes(StandardCharsets.UTF_8).length > MAX_NAME) throw new P9Error(P9.ENAMETOOLONG, "name too long");
    }

    /** The directory fid in which a new entry {@code name} is to be made: writable export, valid name. */
    Fid newEntryIn(int dirFid, String name) throws P9Error {
        Fid d = fid(dirFid);
        writable(d);
        checkName(name);
        return d;
    }

    static void writable(Fid f) throws P9Error {
        if (f.export.readOnly()) throw new P9Error(P9.EROFS, "export '" + f.export.name() + "' is read-only");
    }

    static Qid qid(Stat st, long changes) {
        int type = st.isDir() ? Qid.QTDIR : st.isSymlink() ? Qid.QTSYMLINK : Qid.QTFILE;
        long v = st.mtimeSec() * 1_000_000_007L + st.mtimeNsec() + st.size() * 31 + changes * 1_000_003L;
        return new Qid(type, st.isRegular() ? (int) (v ^ (v >>> 32)) : 0, st.ino());
    }

    /** Opens the export root and walks {@code names} without following anything. */
    int resolve(P9Export e, List<String> names) throws P9Error {
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

    int uidFor(Fid f) { return f.export.squash() ? f.export.squashUid() : f.uid; }

    int gidFor(Fid f, int gid) { return f.export.squash() ? f.export.squashGid() : gid; }

    /** The inode at {@code fd} as the client sees it: under security=mapped, with the guest's owner, mode and device. */
    static Stat stat(P9Export e, int fd) throws IOException {
        Stat st = Posix.fstat(fd);
        return e.mapped() ? Mapped.overlay("/proc/self/fd/" + fd, st) : st;
    }

    // ---- operations ----

    Rattach attach(Tattach m) throws P9Error, IOException {
        P9Export e = server.find(m.aname());
        if (e == null) throw new P9Error(P9.ENOENT, "no 9P export named '" + m.aname() + "'");
        int uid = m.nuname() == -1 ? 0 : m.nuname();
        if (!io.bridgefs.server.config.Cidr.admits(e.hosts(), peer)) {
            throw new P9Error(P9.EACCES, "export '" + e.name() + "' is not served to " + peer);
        }
        RequestUser.actAs(e, uid);
        int fd = resolve(e, List.of());
        Stat st = stat(e, fd);
        Fid f = new Fid(e, List.of(), fd, qid(st, 0), uid, st.dev());
        bind(m.fid(), f);
        lastExport = e;
        return new Rattach(m.tag(), f.qid);
    }

    Rclunk clunk(Tclunk m) throws P9Error, IOException {
        Fid f = unbind(m.fid());
        try {
            if (f.xattrWrite != null) {
                RequestUser.actAs(f.export, f.uid);     // the xattr is set now, by the fid's user (a clunk itself needs no one)
                attrs.commitXattr(f);
            }
        } finally {
            retire(f);
        }
        return new Rclunk(m.tag());
    }

    /** Dispatches one request (not Tversion/Tflush, which the session handles). Returns a message or an encoded ByteBuf. */
    Object handle(P9Message m, ByteBufAllocator alloc) throws P9Error, IOException {
        List<Fid> acquired = ACQUIRED.get();
        RequestUser.requestBegins(m);
        try {
            return dispatch(m, alloc);
        } finally {
            RequestUser.requestEnded();
            if (!acquired.isEmpty()) releaseAcquired(acquired);
        }
    }

    private Object dispatch(P9Message m, ByteBufAllocator alloc) throws P9Error, IOException {
        if (m instanceof Tread r) return data.read(r, alloc);
        if (m instanceof Twrite w) return data.write(w);
        if (m instanceof Twalk w) return nodes.walk(w);
        if (m instanceof Tgetattr g) return attrs.getattr(g);
        if (m instanceof Tclunk c) return clunk(c);
        if (m instanceof Tlopen o) return data.lopen(o);
        if (m instanceof Treaddir r) return data.readdir(r, alloc);
        if (m instanceof Txattrwalk x) return attrs.xattrwalk(x);
        if (m instanceof Tlcreate c) return data.lcreate(c);
        if (m instanceof Tsetattr s) return attrs.setattr(s);
        if (m instanceof Tattach a) return attach(a);
        if (m instanceof Tmkdir d) return nodes.mkdir(d);
        if (m instanceof Tunlinkat u) return nodes.unlinkat(u);
        if (m instanceof Trenameat r) return nodes.renameat(r);
        if (m instanceof Tsymlink s) return nodes.symlink(s);
        if (m instanceof Treadlink r) return nodes.readlink(r);
        if (m instanceof Tlink l) return nodes.link(l);
        if (m instanceof Tmknod n) return nodes.mknod(n);
        if (m instanceof Trename r) return nodes.rename(r);
        if (m instanceof Tremove r) return nodes.remove(r);
        if (m instanceof Tstatfs s) return attrs.statfs(s);
        if (m instanceof Tfsync s) return data.fsync(s);
        if (m instanceof Tlock l) return attrs.lock(l);
        if (m instanceof Tgetlock g) return attrs.getlock(g);
        if (m instanceof Txattrcreate x) return attrs.xattrcreate(x);
        // no authentication: ENOENT is how 9P2000.L servers (diod) say "auth not required, attach directly"
        if (m instanceof Tauth) throw new P9Error(P9.ENOENT, "authentication not required");
        throw new P9Error(P9.EOPNOTSUPP, "not a request: " + m.getClass().getSimpleName());
    }
}
