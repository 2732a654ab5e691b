package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Dirents;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Opening, creating, reading, writing, syncing and listing: the 9P operations on a file's or directory's
 * contents, regular-file data through the shared page cache. Part of one connection's {@link P9Ops}, which holds its fid table, credentials and
 * boundary rules.
 */
final class P9DataOps {
    private final P9Ops ops;
    private final P9ServerContext server;

    P9DataOps(P9Ops ops, P9ServerContext server) {
        this.ops = ops;
        this.server = server;
    }

    Rlopen lopen(Tlopen m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        open(f, m.flags());             // an open fid, or one being opened, is refused EBADF where its descriptors are held
        return new Rlopen(m.tag(), f.qid, iounit());
    }

    int iounit() { return ops.msize - P9.IOHDRSZ; }

    /**
     * Tlopen of a directory for reading on the network thread (see {@link P9Ops#tryFast}): as the fid's
     * user, with "." looked up in the dentry cache only ({@link Posix#openDirCached}), on a local file
     * system; null where any of that does not hold, and the executor opens it as {@link #lopen} does.
     */
    Rlopen tryOpenDir(Tlopen m) {
        if ((m.flags() & P9.O_ACCMODE) != P9.O_RDONLY || (m.flags() & P9.O_TRUNC) != 0) return null;
        Fid f = ops.fidNow(m.fid());
        if (f == null) return null;
        int fd = -1;
        try {
            if (f.opened || !f.isDir() || f.export.mapped() || !server.localAttributes(f) || !RequestUser.actAsIfKnown(f)) return null;
            fd = Posix.openDirCached(f.fd);
            if (fd < 0 || !ops.openedDir(f, fd, m.flags())) return null;
            fd = -1;                            // the fid's now
            DirAhead.soon(ops, server, f);
            return new Rlopen(m.tag(), f.qid, iounit());
        } catch (P9Error | IOException e) {
            return null;
        } finally {
            if (fd >= 0) Posix.close(fd);
            ops.doneFast(f);
        }
    }

    void open(Fid f, int flags) throws P9Error, IOException {
        Stat st = P9Ops.stat(f.export, f.fd);
        ops.holdOpen(f, st.isDir() ? 1 : st.isRegular() ? 2 : 0);
        boolean done = false;
        try {
            openHeld(f, flags, st);
            done = true;
        } finally {
            if (!done) ops.openFailed(f);
        }
    }

    private void openHeld(Fid f, int flags, Stat st) throws P9Error, IOException {
        int acc = flags & P9.O_ACCMODE;
        boolean modifies = acc != P9.O_RDONLY || (flags & P9.O_TRUNC) != 0;
        if (modifies) P9Ops.writable(f);
        if (st.isSymlink()) throw new P9Error(P9.ELOOP, "open of a symlink");
        if (st.isDir()) {
            if (acc != P9.O_RDONLY) throw new P9Error(P9.EISDIR, "directory opened for writing");
            f.dirFd = Posix.openat(f.fd, ".", Posix.O_RDONLY | Posix.O_DIRECTORY, 0);
        } else if (st.isRegular()) {
            if ((flags & P9.O_DIRECTORY) != 0) throw new P9Error(P9.ENOTDIR, "not a directory");
            if (f.export.passthrough()) {
                // the data comes from the shared cache, opened once by the server: the host decides here,
                // with the user's credentials, whether this user may open the file this way
                RequestUser.mayOpen(f, acc != P9.O_WRONLY, modifies);
                f.file = Credentials.asServer(() -> server.openData(f, st));
            } else {
                f.file = server.openData(f, st);
            }
            if ((flags & P9.O_TRUNC) != 0 && f.file.size() != 0) f.file.truncate(0);
            int writer = f.export.passthrough() ? f.export.hostUid(f.uid) : ops.uidFor(f);
        f.clearPrivileges = acc != P9.O_RDONLY && writer != 0 && (st.mode() & (Posix.S_ISUID | Posix.S_ISGID)) != 0;
        } else {
            throw new P9Error(P9.EPERM, "device files, FIFOs and sockets are not opened on the host");
        }
        f.opened = true;
        f.openFlags = flags;
    }

    Rlcreate lcreate(Tlcreate m) throws P9Error, IOException {
        Fid d = ops.newEntryIn(m.fid(), m.name());
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
        if (created) ops.nodes.own(d, m.name(), m.gid(), Posix.S_IFREG | (m.mode() & 07777), -1);
        int fd = Posix.openat(d.fd, m.name(), Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        List<String> path = new ArrayList<>(d.path);
        path.add(m.name());
        Posix.Stat st = P9Ops.stat(d.export, fd);
        Fid f = new Fid(d.export, path, fd, P9Ops.qid(st, 0), d.uid, st.dev());
        try {
            open(f, flags & ~(P9.O_CREAT | P9.O_EXCL));
        } catch (P9Error | IOException | RuntimeException x) {
            ops.release(f);       // never bound: its descriptor would be left open
            throw x;
        }
        ops.replace(m.fid(), f);
        return new Rlcreate(m.tag(), f.qid, iounit());
    }

    /** Tread: the reply is encoded here, with the data read from the cache straight into it. */
    /** Tread on the network thread when every page it asks for is resident (see {@link P9Ops#tryFast}); else null. */
    ByteBuf tryResidentRead(Tread m, ByteBufAllocator alloc) {
        Fid f = ops.openFidNow(m.fid());
        if (f == null) return null;
        try {
            CachedFile file = f.file;       // read once: a concurrent Tclunk (a client's own race) may clear it
            if (file == null || f.xattrValue != null || (f.openFlags & P9.O_ACCMODE) == P9.O_WRONLY) return null;
            long size = file.size();
            int count = Math.max(0, Math.min(m.count(), iounit()));
            int n = m.offset() < 0 || m.offset() >= size ? 0 : (int) Math.min(count, size - m.offset());
            long t0 = System.nanoTime();
            ByteBuf b = header(alloc, 117, m.tag(), 4 + n);
            b.writeIntLE(n);
            if (n > 0 && !file.readIfResident(IoPath.NINEP, m.offset(), b.nioBuffer(b.writerIndex(), n))) {
                b.release();
                return null;
            }
            b.writerIndex(b.writerIndex() + n);
            f.export.metrics().readBytes.inc(n);
            f.export.metrics().read.update(System.nanoTime() - t0, java.util.concurrent.TimeUnit.NANOSECONDS);
            return b;
        } finally {
            ops.doneFast(f);
        }
    }

    ByteBuf read(Tread m, ByteBufAllocator alloc) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if (f.xattrValue == null) {
            try (var t = f.export.metrics().read.time()) {
                return readData(f, m, alloc);
            }
        }
        return readData(f, m, alloc);
    }

    ByteBuf readData(Fid f, Tread m, ByteBufAllocator alloc) throws P9Error, IOException {
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

    static ByteBuf header(ByteBufAllocator alloc, int type, int tag, int bodySize) {
        ByteBuf b = alloc.directBuffer(P9.HEADER + bodySize);
        b.writeIntLE(P9.HEADER + bodySize).writeByte(type).writeShortLE(tag);
        return b;
    }

    /**
     * Twrite on the network thread when it cannot wait: a plain write (not append, sync, xattr or one
     * that must first clear setuid bits) into pages that are all resident, within the file, with room
     * under the dirty limit ({@link CachedFile#writeIfResident}), or one that takes new frames without
     * waiting and reads nothing first, growing the file as it may ({@link CachedFile#writeIfNoWait}: a
     * file written from start to end). Null otherwise, having written nothing or some of the same bytes
     * the executor then writes again.
     */
    Rwrite tryResidentWrite(Twrite m) {
        Fid f = ops.openFidNow(m.fid());
        if (f == null) return null;
        try {
            CachedFile file = f.file;
            int mode = f.openFlags;
            if (file == null || f.xattrWrite != null || f.clearPrivileges || f.export.readOnly() || m.offset() < 0
                    || (mode & P9.O_ACCMODE) == P9.O_RDONLY || (mode & P9.O_APPEND) != 0 || (mode & P9.O_SYNC) == P9.O_SYNC) {
                return null;
            }
            long t0 = System.nanoTime();
            int n = m.data().readableBytes();
            java.nio.ByteBuffer[] data = m.data().nioBuffers();    // a declined write leaves them as they were
            if (!file.writeIfResident(IoPath.NINEP, m.offset(), data) && !file.writeIfNoWait(IoPath.NINEP, m.offset(), data)) {
                return null;
            }
            f.export.metrics().writeBytes.inc(n);
            f.export.metrics().write.update(System.nanoTime() - t0, java.util.concurrent.TimeUnit.NANOSECONDS);
            return new Rwrite(m.tag(), n);
        } finally {
            ops.doneFast(f);
        }
    }

    Rwrite write(Twrite m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if (f.xattrWrite == null) {
            try (var t = f.export.metrics().write.time()) {
                return writeData(f, m);
            }
        }
        return writeData(f, m);
    }

    Rwrite writeData(Fid f, Twrite m) throws P9Error, IOException {
        int n = m.data().readableBytes();
        if (f.xattrWrite != null) {
            if (f.xattrWrite.size() + (long) n > f.xattrSize) throw new P9Error(P9.ERANGE, "xattr data beyond the declared size");
            m.data().getBytes(m.data().readerIndex(), f.xattrWrite, n);
            return new Rwrite(m.tag(), n);
        }
        P9Ops.writable(f);
        if (!f.opened || f.file == null) throw new P9Error(f.isDir() ? P9.EISDIR : P9.EBADF, "write to a fid not open for writing");
        if ((f.openFlags & P9.O_ACCMODE) == P9.O_RDONLY) throw new P9Error(P9.EBADF, "fid open read-only");
        if (m.offset() < 0) throw new P9Error(P9.EINVAL, "offset beyond 2^63");
        long at = (f.openFlags & P9.O_APPEND) != 0 ? f.file.size() : m.offset();
        boolean sync = (f.openFlags & P9.O_SYNC) == P9.O_SYNC;
        if (f.clearPrivileges) {
            // the kernel clears them whoever writes; under passthrough the writer may not chmod the file itself
            if (f.export.passthrough()) Credentials.asServer(() -> dropSetId(f));
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
    static Void dropSetId(Fid f) throws IOException {
        f.clearPrivileges = false;
        int mode = P9Ops.stat(f.export, f.fd).mode();
        int drop = (mode & Posix.S_ISUID) | ((mode & (Posix.S_ISGID | 010)) == (Posix.S_ISGID | 010) ? Posix.S_ISGID : 0);
        if (drop == 0) return null;
        if (f.export.mapped()) Mapped.set(f.procPath(), -1, -1, mode & ~drop, -1);
        else Posix.fchmodat(Posix.AT_FDCWD, f.procPath(), mode & 07777 & ~drop);
        return null;
    }

    /** Treaddir: entries from getdents64; each entry's offset is the host's d_off, a stable resume cookie. */
    ByteBuf readdir(Treaddir m, ByteBufAllocator alloc) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if (!f.opened || f.dirFd < 0) throw new P9Error(P9.ENOTDIR, "readdir of a fid not open as a directory");
        int count = Math.max(0, Math.min(m.count(), iounit()));
        ByteBuf b = header(alloc, 41, m.tag(), 4 + count);
        b.writeIntLE(0);
        try {
            synchronized (f) {      // after the read-ahead, if one is running
                if (!DirAhead.serve(ops, server, f, m.offset(), count, b)) {
                    if (Posix.lseek(f.dirFd, m.offset(), 0) < 0) throw new P9Error(P9.EINVAL, "bad readdir offset");
                    DirAhead.encode(f.dirFd, f.export.mapped(), b, count);
                }
            }
            return entriesDone(b);
        } catch (P9Error | IOException | RuntimeException e) {
            b.release();
            throw e;
        }
    }

    /**
     * Treaddir on the network thread: from the entries read ahead right after the directory's open on
     * the network thread ({@link #tryOpenDir}), if it asks where they begin; else null.
     */
    ByteBuf tryReaddirAhead(Treaddir m, ByteBufAllocator alloc) {
        Fid f = ops.openFidNow(m.fid());
        if (f == null) return null;
        try {
            if (f.ahead == null) return null;
            int count = Math.max(0, Math.min(m.count(), iounit()));
            ByteBuf b = header(alloc, 41, m.tag(), 4 + count);
            b.writeIntLE(0);
            if (!DirAhead.serve(ops, server, f, m.offset(), count, b)) {
                b.release();
                return null;
            }
            return entriesDone(b);
        } finally {
            ops.doneFast(f);
        }
    }

    /** Rreaddir's sizes, once its entries are written after the count field. */
    private static ByteBuf entriesDone(ByteBuf b) {
        b.setIntLE(P9.HEADER, b.writerIndex() - P9.HEADER - 4);
        b.setIntLE(0, b.writerIndex());
        return b;
    }

    Rfsync fsync(Tfsync m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        try (var t = f.export.metrics().flush.time()) {
            if (f.file != null) f.file.flush();
        }
        return new Rfsync(m.tag());
    }
}
