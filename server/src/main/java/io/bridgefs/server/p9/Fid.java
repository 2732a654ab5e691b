package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.posix.Posix;
import java.io.ByteArrayOutputStream;
import java.util.List;

/**
 * A client's handle on a host file. It holds an O_PATH descriptor obtained by resolving each path
 * component with openat(O_NOFOLLOW) from the export root, so it always refers to the same inode
 * (open-unlink keeps working) and never to anything outside the export. {@code path} (the names from
 * the root) only serves ".." and rename bookkeeping.
 */
final class Fid {
    final P9Export export;
    volatile List<String> path;   // names from the export root (updated by Trename)
    final int fd;
    final Qid qid;
    final int uid;

    // after Tlopen / Tlcreate
    boolean opened;
    int openFlags;
    CachedFile file;          // regular files: data through the shared cache
    int dirFd = -1;           // directories: a readable descriptor for getdents64

    // xattr fids (Txattrwalk / Txattrcreate)
    byte[] xattrValue;
    String xattrName;
    long xattrSize;
    int xattrFlags;
    ByteArrayOutputStream xattrWrite;

    Fid(P9Export export, List<String> path, int fd, Qid qid, int uid) {
        this.export = export;
        this.path = List.copyOf(path);
        this.fd = fd;
        this.qid = qid;
        this.uid = uid;
    }

    boolean isDir() { return (qid.type() & Qid.QTDIR) != 0; }

    /** The magic link that reopens exactly this inode (never a path lookup). */
    String procPath() { return "/proc/self/fd/" + fd; }

    /** Closes the descriptors; the cached file reference is returned by the session. */
    void closeDescriptors() {
        if (dirFd >= 0) Posix.close(dirFd);
        dirFd = -1;
        Posix.close(fd);
    }
}
