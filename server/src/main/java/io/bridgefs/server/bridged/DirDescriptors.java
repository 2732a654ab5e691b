package io.bridgefs.server.bridged;

import io.bridgefs.server.posix.Posix;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * O_PATH descriptors of the directories below an export root, kept for the most recently used ones, in
 * which the bridged disk stats and opens file names: each directory is reached one component at a
 * time with O_NOFOLLOW (a directory replaced by a symlink is not followed), and a name is resolved in
 * its directory's descriptor, never by a path from the root.
 *
 * <p>The table's lock is held only to find or count a descriptor, never across a system call in it:
 * stats and opens of files in different directories (each may wait for the disk when the host's inode
 * cache is cold) run in parallel. A descriptor dropped from the table is closed by its last user, never
 * while a call resolves a name in it, so its number cannot be reused meanwhile for another directory.
 */
final class DirDescriptors {
    /** Descriptors kept by default. */
    static final int KEPT = 64;

    /** A call resolving {@code name} in the directory {@code dirFd}. */
    interface InDir<T> {
        T call(int dirFd, String name) throws Posix.ErrnoException;
    }

    /** A directory's descriptor and how many calls are using it (guarded by the table). */
    private static final class DirFd {
        final int fd;
        int users;
        boolean dropped;

        DirFd(int fd) {
            this.fd = fd;
        }
    }

    private final Path root;
    private final int kept;
    /** By path relative to the root ("" is the root), most recently used last; guarded by itself. */
    private final LinkedHashMap<String, DirFd> table = new LinkedHashMap<>(128, 0.75f, true);

    DirDescriptors(Path root, int kept) {
        this.root = root;
        this.kept = kept;
    }

    /** {@code call} on the last component of {@code rel} (a path below the root) in its directory's descriptor. */
    <T> T inParent(String rel, InDir<T> call) throws Posix.ErrnoException {
        DirFd d = acquire(parentOf(rel));
        try {
            return call.call(d.fd, nameOf(rel));
        } finally {
            release(d);
        }
    }

    /** The directory at {@code rel}, counted as used until {@link #release}; opened outside the lock if not kept. */
    private DirFd acquire(String rel) throws Posix.ErrnoException {
        synchronized (table) {
            DirFd d = table.get(rel);
            if (d != null) {
                d.users++;
                return d;
            }
        }
        int fd;
        if (rel.isEmpty()) {
            fd = Posix.openat(Posix.AT_FDCWD, root.toString(), Posix.O_PATH | Posix.O_DIRECTORY, 0);
        } else {
            DirFd parent = acquire(parentOf(rel));
            try {
                fd = Posix.openat(parent.fd, nameOf(rel), Posix.O_PATH | Posix.O_DIRECTORY | Posix.O_NOFOLLOW, 0);
            } finally {
                release(parent);
            }
        }
        DirFd mine = new DirFd(fd);
        DirFd use;
        List<DirFd> close = new ArrayList<>(1);
        synchronized (table) {
            DirFd raced = table.get(rel);
            if (raced != null) {                     // another thread opened it meanwhile: use theirs
                use = raced;
                close.add(mine);
            } else {
                use = mine;
                table.put(rel, mine);
                var it = table.values().iterator();
                while (table.size() > kept) {        // the eldest, never the one just put (it is last)
                    DirFd eldest = it.next();
                    it.remove();
                    eldest.dropped = true;
                    if (eldest.users == 0) close.add(eldest);
                }
            }
            use.users++;
        }
        for (DirFd d : close) Posix.close(d.fd);
        return use;
    }

    /** A call is done with {@code d}; one dropped from the table is closed by its last user. */
    private void release(DirFd d) {
        boolean close;
        synchronized (table) {
            close = --d.users == 0 && d.dropped;
        }
        if (close) Posix.close(d.fd);
    }

    /** Drops every directory from the table; those in use are closed by their last user. */
    void closeAll() {
        List<DirFd> close = new ArrayList<>();
        synchronized (table) {
            for (DirFd d : table.values()) {
                d.dropped = true;
                if (d.users == 0) close.add(d);
            }
            table.clear();
        }
        for (DirFd d : close) Posix.close(d.fd);
    }

    private static String parentOf(String rel) {
        int slash = rel.lastIndexOf('/');
        return slash < 0 ? "" : rel.substring(0, slash);
    }

    private static String nameOf(String rel) {
        return rel.substring(rel.lastIndexOf('/') + 1);
    }
}
