package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Walking, making, renaming, linking and removing directory entries, and the ownership a new entry gets under
 * each security model. Part of one connection's {@link P9Ops}, which holds its fid table, credentials and
 * boundary rules.
 */
final class P9NodeOps {
    private final P9Ops ops;
    private final P9ServerContext server;

    P9NodeOps(P9Ops ops, P9ServerContext server) {
        this.ops = ops;
        this.server = server;
    }

    /**
     * Gives a new node the creating client's ownership (or the export's squash ownership); under
     * mapped, records the guest's owner, mode ({@code mode}, with its type) and device ({@code rdev}, -1: none).
     */
    void own(Fid dir, String name, int gid, int mode, long rdev) throws IOException {
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
        Posix.fchownat(dir.fd, name, ops.uidFor(dir), ops.gidFor(dir, gid), Posix.AT_SYMLINK_NOFOLLOW);
    }

    /** The qid of the new entry {@code name} in {@code d}, as the client sees it. */
    static Qid statQid(Fid d, String name) throws IOException {
        int fd = Posix.openat(d.fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        try {
            return P9Ops.qid(P9Ops.stat(d.export, fd), 0);
        } finally {
            Posix.close(fd);
        }
    }

    /**
     * security=mapped: records the creating guest user's view of the new entry {@code name} in {@code d}
     * (reached without following anything; the xattrs never land on a symlink's target).
     */
    static void mappedOwn(Fid d, String name, int gid, int mode, long rdev) throws IOException {
        int fd = Posix.openat(d.fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
        try {
            Mapped.set("/proc/self/fd/" + fd, d.uid, gid, mode, rdev);
        } finally {
            Posix.close(fd);
        }
    }

    Rsymlink symlink(Tsymlink m) throws P9Error, IOException {
        Fid d = ops.newEntryIn(m.fid(), m.name());
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
        Fid d = ops.newEntryIn(m.dfid(), m.name());
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
        Fid d = ops.newEntryIn(m.dfid(), m.name());
        Posix.mkdirat(d.fd, m.name(), d.export.mapped() ? Mapped.DIR_MODE : m.mode() & 07777);
        own(d, m.name(), m.gid(), Posix.S_IFDIR | (m.mode() & 07777), -1);
        return new Rmkdir(m.tag(), statQid(d, m.name()));
    }

    Rrename rename(Trename m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        Fid d = ops.fid(m.dfid());
        P9Ops.writable(f);
        P9Ops.checkName(m.name());
        List<String> path = f.path;
        if (path.isEmpty()) throw new P9Error(P9.EBUSY, "cannot rename the export root");
        int parent = ops.resolve(f.export, path.subList(0, path.size() - 1));
        FileKey replaced = regularAt(d.fd, m.name());
        try {
            Posix.renameat(parent, path.get(path.size() - 1), d.fd, m.name());
        } finally {
            Posix.close(parent);
        }
        server.unlinked(replaced);
        List<String> np = new ArrayList<>(d.path);
        np.add(m.name());
        server.renamed(f.export, path, np);
        return new Rrename(m.tag());
    }

    Rrenameat renameat(Trenameat m) throws P9Error, IOException {
        Fid od = ops.fid(m.olddirfid());
        Fid nd = ops.fid(m.newdirfid());
        P9Ops.writable(od);
        P9Ops.checkName(m.oldname());
        P9Ops.checkName(m.newname());
        FileKey replaced = regularAt(nd.fd, m.newname());
        Posix.renameat(od.fd, m.oldname(), nd.fd, m.newname());
        server.unlinked(replaced);
        List<String> from = new ArrayList<>(od.path);
        from.add(m.oldname());
        List<String> to = new ArrayList<>(nd.path);
        to.add(m.newname());
        server.renamed(od.export, from, to);
        return new Rrenameat(m.tag());
    }

    Runlinkat unlinkat(Tunlinkat m) throws P9Error, IOException {
        Fid d = ops.newEntryIn(m.dirfid(), m.name());
        FileKey gone = regularAt(d.fd, m.name());
        Posix.unlinkat(d.fd, m.name(), m.flags() & P9.AT_REMOVEDIR);
        server.unlinked(gone);
        return new Runlinkat(m.tag());
    }

    /**
     * The cache key of the regular file {@code name} in the directory {@code dirfd}, or null (none, or
     * not a regular file): what a remove or a replacing rename takes a name from ({@link P9ServerContext#unlinked}).
     */
    static FileKey regularAt(int dirfd, String name) {
        try {
            Stat st = Posix.fstatat(dirfd, name, Posix.AT_SYMLINK_NOFOLLOW);
            return st.isRegular() ? new FileKey(st.dev(), st.ino()) : null;
        } catch (IOException e) {
            return null;
        }
    }

    Rlink link(Tlink m) throws P9Error, IOException {
        Fid d = ops.fid(m.dfid());
        Fid f = ops.fid(m.fid());
        P9Ops.writable(d);
        P9Ops.checkName(m.name());
        Posix.linkat(f.fd, "", d.fd, m.name(), Posix.AT_EMPTY_PATH);
        return new Rlink(m.tag());
    }

    Rreadlink readlink(Treadlink m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if ((f.qid.type() & Qid.QTSYMLINK) == 0) throw new P9Error(P9.EINVAL, "not a symlink");
        if (f.export.mapped() && Posix.fstat(f.fd).isRegular()) return new Rreadlink(m.tag(), mappedTarget(f));
        return new Rreadlink(m.tag(), Posix.readlinkat(f.fd, ""));
    }

    /** security=mapped: a symlink is a regular file holding its target. */
    static String mappedTarget(Fid f) throws IOException {
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

    /**
     * A walk answered on the network thread, or null: the executor then walks as usual (and reports any
     * error). Only where nothing can wait: names looked up in the kernel's dentry cache without leaving
     * the mount (a miss, a mount point, a missing name, a name the user may not look up or a bad one all
     * decline), on the export root's local file system (so fstat reads an in-memory inode), not under
     * mapped (its attributes are xattrs), to a new fid, and without "." or "..". Under passthrough the
     * lookups run with the user's credentials, and only when the user's groups are already known (reading
     * /etc/group could wait); the thread keeps them afterwards ({@link Credentials#hold}), so the next walk
     * of the same user switches nothing, and a root walk (or anything but a 9P request: see
     * {@link io.bridgefs.server.net.ServerIdentity}) makes it the server again first.
     */
    Rwalk tryWalk(Twalk m) {
        if (m.newfid() == m.fid() || m.names().isEmpty() || m.names().size() > P9.MAXWELEM) return null;
        Fid f = ops.fidNow(m.fid());
        if (f == null) return null;
        int fd = -1;
        try {
            if (f.export.mapped() || !server.localAttributes(f) || ops.bound(m.newfid())) return null;
            if (!RequestUser.actAsIfKnown(f)) return null;
            List<String> path = new ArrayList<>(f.path);
            List<Qid> qids = new ArrayList<>(m.names().size());
            Qid q = f.qid;
            long dev = f.dev;
            for (String name : m.names()) {
                if ((q.type() & Qid.QTDIR) == 0) return null;
                P9Ops.checkName(name);
                int next = Posix.openPathCached(fd < 0 ? f.fd : fd, name);
                if (next < 0) return null;
                if (fd >= 0) Posix.close(fd);
                fd = next;
                Stat st = Posix.fstat(fd);
                q = P9Ops.qid(st, 0);
                dev = st.dev();
                qids.add(q);
                path.add(name);
            }
            Fid nf = new Fid(f.export, path, fd, q, f.uid, dev);
            fd = -1;                            // the new fid's now, released by bind if it fails
            ops.bind(m.newfid(), nf);
            return new Rwalk(m.tag(), qids);
        } catch (P9Error | IOException e) {
            return null;
        } finally {
            if (fd >= 0) Posix.close(fd);
            ops.doneFast(f);
        }
    }

    Rwalk walk(Twalk m) throws P9Error, IOException {
        Fid f = ops.fid(m.fid());
        if (m.names().size() > P9.MAXWELEM) throw new P9Error(P9.EINVAL, "walk of " + m.names().size() + " names");
        // walking from an open fid is allowed (diod does; the new fid is never open)
        if (m.newfid() != m.fid()) {
            if (ops.bound(m.newfid())) throw new P9Error(P9.EBADF, "newfid " + m.newfid() + " in use");
        }
        List<String> path = new ArrayList<>(f.path);
        int fd = Posix.dup(f.fd);
        Qid q = f.qid;
        long dev = f.dev;
        List<Qid> qids = new ArrayList<>();
        for (String name : m.names()) {
            int next;
            try {
                if (name.equals("..")) {
                    if (!path.isEmpty()) path.remove(path.size() - 1);   // at the root ".." stays at the root
                    next = ops.resolve(f.export, path);
                } else if (name.equals(".")) {
                    if ((q.type() & Qid.QTDIR) == 0) throw new P9Error(P9.ENOTDIR, "walk through a non-directory");
                    next = Posix.dup(fd);
                } else {
                    P9Ops.checkName(name);
                    if ((q.type() & Qid.QTDIR) == 0) throw new P9Error(P9.ENOTDIR, "walk through a non-directory");
                    next = Posix.openat(fd, name, Posix.O_PATH | Posix.O_NOFOLLOW, 0);
                    path.add(name);
                }
                Stat st = P9Ops.stat(f.export, next);
                q = P9Ops.qid(st, 0);
                dev = st.dev();
            } catch (P9Error | IOException x) {
                Posix.close(fd);
                if (qids.isEmpty()) throw x instanceof P9Error p ? p : P9Error.from((IOException) x);
                return new Rwalk(m.tag(), qids);            // partial walk: newfid stays unbound
            }
            Posix.close(fd);
            fd = next;
            qids.add(q);
        }
        Fid nf = new Fid(f.export, path, fd, q, f.uid, dev);
        if (m.newfid() == m.fid()) ops.replace(m.newfid(), nf);
        else ops.bind(m.newfid(), nf);
        return new Rwalk(m.tag(), qids);
    }

    Rremove remove(Tremove m) throws P9Error, IOException {
        Fid f = ops.unbind(m.fid());
        FileKey gone = null;
        try {
            RequestUser.actAs(f.export, f.uid);     // out of the table (clunked whatever happens), still its user's request
            P9Ops.writable(f);
            if (f.path.isEmpty()) throw new P9Error(P9.EBUSY, "cannot remove the export root");
            int parent = ops.resolve(f.export, f.path.subList(0, f.path.size() - 1));
            try {
                gone = regularAt(parent, f.path.get(f.path.size() - 1));
                Posix.unlinkat(parent, f.path.get(f.path.size() - 1), f.isDir() ? Posix.AT_REMOVEDIR : 0);
            } finally {
                Posix.close(parent);
            }
        } finally {
            ops.retire(f);
        }
        server.unlinked(gone);
        return new Rremove(m.tag());
    }
}
