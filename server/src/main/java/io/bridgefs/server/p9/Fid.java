package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CachedFile;
import java.io.ByteArrayOutputStream;
import java.util.List;

/**
 * A client's handle on a host file. It holds an O_PATH descriptor obtained by resolving each path
 * component with openat(O_NOFOLLOW) from the export root, so it refers to one inode (open-unlink keeps
 * working) and never to anything outside the export. {@code path} (the names from the root) serves
 * ".." and, for a fid whose descriptor was reclaimed, re-resolution: a client caching many dentries
 * (cache=loose) holds more fids than the process may have descriptors, so descriptors of idle,
 * unopened fids are closed least recently used first and reopened on use, checked to be the same inode.
 */
final class Fid {
    final P9Export export;
    volatile List<String> path;   // names from the export root (updated by Trename)
    volatile int fd;          // -1 while reclaimed
    boolean counted;          // its descriptor counts against the server's budget
    int users;                // requests using it now (guarded by the connection's P9Ops)
    boolean dropped;          // clunked (connection end, Tversion) while in use: released when the last user ends
    byte[] handle;            // while reclaimed: the file handle its descriptor had (null: none available)
    final Qid qid;
    final int uid;
    final long dev;           // st_dev of the file: the fast getattr runs only on the export root's (local) device

    // after Tlopen / Tlcreate
    boolean opened;
    int openFlags;
    boolean clearPrivileges;  // opened for writing by a non-root user on a setuid/setgid file: the first write clears them
    CachedFile file;          // regular files: data through the shared cache
    int dirFd = -1;           // directories: a readable descriptor for getdents64
    int openHeld;             // descriptors of the budget its open holds (its data file's, or dirFd)
    volatile DirAhead ahead;  // directories opened on the network thread: their first entries (guarded by P9Ops)

    // xattr fids (Txattrwalk / Txattrcreate)
    byte[] xattrValue;
    String xattrName;
    long xattrSize;
    int xattrFlags;
    ByteArrayOutputStream xattrWrite;
    int xattrHeld;              // bytes of the server's xattr budget the value or the write holds

    Fid(P9Export export, List<String> path, int fd, Qid qid, int uid, long dev) {
        this.dev = dev;
        this.export = export;
        this.path = List.copyOf(path);
        this.fd = fd;
        this.qid = qid;
        this.uid = uid;
    }

    boolean isDir() { return (qid.type() & Qid.QTDIR) != 0; }

    /** Whether its descriptor may be closed now and reopened by path later. */
    boolean reclaimable() {
        return fd >= 0 && users == 0 && !opened && file == null && dirFd < 0 && xattrValue == null && xattrWrite == null;
    }

    /** The magic link that reopens exactly this inode (never a path lookup). */
    String procPath() { return "/proc/self/fd/" + fd; }
}
