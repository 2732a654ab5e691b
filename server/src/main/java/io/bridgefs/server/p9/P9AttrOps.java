package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.FileBackingStore;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import java.io.ByteArrayOutputStream;
import java.io.IOException;

/**
 * Attributes, extended attributes, file-system statistics and POSIX locks. Part of one connection's {@link P9Ops}, which holds its fid table, credentials and
 * boundary rules.
 */
final class P9AttrOps {
    private final P9Ops ops;
    private final P9ServerContext server;

    P9AttrOps(P9Ops ops, P9ServerContext server) {
        this.ops = ops;
        this.server = server;
    }

    /**
     * Tgetattr on the network thread when nothing in it can wait: the fid is on the export root's local
     * file system (fstat of an open inode reads memory) and its cached file, if any, is clean and current.
     * Null, having answered nothing, otherwise: the executor then runs {@link #getattr}.
     */
    Rgetattr tryGetattr(Tgetattr m) {
        Fid f = ops.fidNow(m.fid());
        if (f == null) return null;
        try {
            if (!server.localAttributes(f)) return null;
            if (f.export.mapped()) Credentials.serverAgain();    // xattrs through /proc/self/fd
            Stat st = P9Ops.stat(f.export, f.fd);
            PageCache.Attributes cached = PageCache.Attributes.NOT_CACHED;
            if (st.isRegular()) {
                cached = server.cache.attributesIfCurrent(new FileKey(st.dev(), st.ino()), FileBackingStore.stampOf(st));
                if (cached == null) return null;
            }
            return reply(m, st, Math.max(st.size(), cached.size()), cached.changes());
        } catch (IOException e) {
            return null;        // the executor runs it again and answers the error
        } finally {
            ops.doneFast(f);
        }
    }

    Rgetattr getattr(Tgetattr m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        Stat st = P9Ops.stat(f.export, f.fd);
        long size = st.size();
        long changes = 0;
        if (st.isRegular()) {
            CachedFile cf = server.cache.openIfPresent(new FileKey(st.dev(), st.ino()));
            if (cf != null) {
                try {
                    cf.revalidate();
                    if (cf.dirty()) {
                        cf.writeback(false);      // so the host's size and mtime are current
                        st = P9Ops.stat(f.export, f.fd);
                    }
                    size = Math.max(st.size(), cf.size());
                    changes = cf.changes();
                } finally {
                    P9ServerContext.closeQuietly(cf);
                }
            }
        }
        return reply(m, st, size, changes);
    }

    private static Rgetattr reply(Tgetattr m, Stat st, long size, long changes) {
        return new Rgetattr(m.tag(), P9.GETATTR_BASIC, P9Ops.qid(st, changes), st.mode(), st.uid(), st.gid(), st.nlink(), st.rdev(),
                size, st.blksize(), st.blocks(), st.atimeSec(), st.atimeNsec(), st.mtimeSec(), st.mtimeNsec(),
                st.ctimeSec(), st.ctimeNsec(), 0, 0, 0, 0);
    }

    Rsetattr setattr(Tsetattr m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        P9Ops.writable(f);
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
        CachedFile cf = !st.isRegular() ? null : f.export.passthrough() ? Credentials.asServer(() -> server.openData(f, st)) : server.openData(f, st);
        try {
            if ((v & P9.SETATTR_SIZE) != 0) {
                if (cf == null) throw new P9Error(st.isDir() ? P9.EISDIR : P9.EINVAL, "size of a non-file");
                if (m.size() < 0) throw new P9Error(P9.EINVAL, "negative size");
                if (f.export.passthrough()) RequestUser.mayOpen(f, false, true);      // truncate(2) needs write permission
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
                    int parent = ops.resolve(f.export, f.path.subList(0, f.path.size() - 1));
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
    static void setMapped(Fid f, Tsetattr m) throws IOException {
        int v = m.valid();
        if ((v & (P9.SETATTR_MODE | P9.SETATTR_UID | P9.SETATTR_GID)) == 0) return;
        Stat seen = P9Ops.stat(f.export, f.fd);
        if (seen.isSymlink() && (v & (P9.SETATTR_UID | P9.SETATTR_GID)) == 0) return;    // a symlink's mode never changes
        Mapped.set(f.procPath(), (v & P9.SETATTR_UID) != 0 ? m.uid() : -1, (v & P9.SETATTR_GID) != 0 ? m.gid() : -1,
                (v & P9.SETATTR_MODE) != 0 && !seen.isSymlink() ? seen.type() | (m.mode() & 07777) : -1, -1);
    }

    Rstatfs statfs(Tstatfs m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        Posix.StatFs s = Posix.fstatfs(f.fd);
        return new Rstatfs(m.tag(), (int) s.type(), (int) s.bsize(), s.blocks(), s.bfree(), s.bavail(), s.files(), s.ffree(),
                s.fsid(), (int) s.namelen());
    }

    static void commitXattr(Fid f) throws P9Error, IOException {
        byte[] v = f.xattrWrite.toByteArray();
        if (v.length != f.xattrSize) throw new P9Error(P9.EINVAL, "xattr data shorter than declared");
        if (v.length == 0 && (f.xattrFlags & 2) != 0) {
            Posix.removexattr(f.procPath(), f.xattrName);   // XATTR_REPLACE with no value: removal
        } else {
            Posix.setxattr(f.procPath(), f.xattrName, v, f.xattrFlags);
        }
    }

    Rxattrwalk xattrwalk(Txattrwalk m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if ((f.qid.type() & Qid.QTSYMLINK) != 0) throw new P9Error(P9.ENODATA, "no xattrs on symlinks here");
        byte[] value;
        if (m.name().isEmpty()) {
            value = Posix.listxattr(f.procPath());
            if (f.export.mapped()) value = Mapped.hide(value);
        } else {
            value = f.export.mapped() && Mapped.reserved(m.name()) ? null : Posix.getxattr(f.procPath(), m.name());
        }
        if (value == null) throw new P9Error(P9.ENODATA, "no xattr " + m.name());
        Fid x = new Fid(f.export, f.path, Posix.dup(f.fd), f.qid, f.uid, f.dev);
        try {
            server.holdXattr(x, value.length);
        } catch (P9Error e) {
            Posix.close(x.fd);
            throw e;
        }
        x.xattrValue = value;
        if (m.newfid() == m.fid()) ops.replace(m.newfid(), x);
        else ops.bind(m.newfid(), x);
        return new Rxattrwalk(m.tag(), value.length);
    }

    Rxattrcreate xattrcreate(Txattrcreate m) throws P9Error {
        Fid f = ops.fid(m.fid());
        P9Ops.writable(f);
        if (m.size() < 0 || m.size() > P9Ops.MAX_XATTR) throw new P9Error(P9.E2BIG, "xattr of " + m.size() + " bytes");
        if (m.name().isEmpty()) throw new P9Error(P9.EINVAL, "empty xattr name");
        if (f.export.mapped() && !Mapped.allowed(m.name())) {
            // the server's own user.virtfs.* are refused as QEMU does; other namespaces would act on the host file itself
            throw Mapped.reserved(m.name()) ? new P9Error(P9.EACCES, "xattr " + m.name() + " is the server's")
                    : new P9Error(P9.EOPNOTSUPP, "only user.* xattrs under security=mapped");
        }
        if (f.xattrWrite != null) throw new P9Error(P9.EINVAL, "fid already creates an xattr");
        server.holdXattr(f, (int) m.size());       // before the buffer is made
        f.xattrName = m.name();
        f.xattrSize = m.size();
        f.xattrFlags = m.flags();
        f.xattrWrite = new ByteArrayOutputStream((int) m.size());
        return new Rxattrcreate(m.tag());
    }

    Rlock lock(Tlock m) throws P9Error, IOException {
        clientId(m.clientId());
        Fid f = ops.fid(m.fid());
        Stat st = Posix.fstat(f.fd);
        var owner = new LockTable.Owner(ops.session, m.clientId(), m.procId());
        return new Rlock(m.tag(), server.locks.lock(new FileKey(st.dev(), st.ino()), owner, m.type(), m.start(), m.length()));
    }

    Rgetlock getlock(Tgetlock m) throws P9Error, IOException {
        clientId(m.clientId());
        Fid f = ops.fid(m.fid());
        Stat st = Posix.fstat(f.fd);
        var owner = new LockTable.Owner(ops.session, m.clientId(), m.procId());
        LockTable.Holder h = server.locks.test(new FileKey(st.dev(), st.ino()), owner, m.type(), m.start(), m.length());
        if (h == null) return new Rgetlock(m.tag(), P9.LOCK_TYPE_UNLCK, m.start(), m.length(), m.procId(), m.clientId());
        return new Rgetlock(m.tag(), h.type(), h.start(), h.length(), h.procId(), h.clientId());
    }

    /** A lock's client id is kept with it: one longer than any host name is refused. */
    private static void clientId(String id) throws P9Error {
        if (id.length() > LockTable.MAX_CLIENT_ID) throw new P9Error(P9.EINVAL, "lock client id of " + id.length() + " characters");
    }
}
