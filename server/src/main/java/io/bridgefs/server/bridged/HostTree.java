package io.bridgefs.server.bridged;

import io.bridgefs.server.posix.Dirents;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A snapshot of the shape of a host directory tree: every entry's type, owner, mode, times, and for a
 * regular file where its data lies (SEEK_DATA/SEEK_HOLE, in pages). The walk uses the 9P path's
 * boundary rules: every name is resolved relative to its parent's descriptor with O_NOFOLLOW, symlinks
 * are recorded, never followed, and only regular files and directories are ever opened (device files,
 * FIFOs and sockets are stat'ed only). Memory grows with the number of entries, not with the data.
 */
public final class HostTree {
    private static final Logger log = LoggerFactory.getLogger(HostTree.class);
    private static final int O_NONBLOCK = 0x800;
    private static final int DIR_FLAGS = Posix.O_RDONLY | Posix.O_DIRECTORY | Posix.O_NOFOLLOW;

    /** A host file as the image shows it; a hard-linked file is one node with several names. */
    public static final class Node {
        final int mode;             // st_mode: type and permission bits
        final int uid, gid;
        final long size;            // regular files and symlinks; 0 for the others
        final long atime, atimeNs, mtime, mtimeNs, ctime, ctimeNs;
        final long rdev;
        final long dev, ino;        // the host identity: the page cache key of a regular file
        final List<Dirent> entries;  // directories: children, by name
        byte[] target;              // symlinks
        long[] runs = new long[0];  // regular files: (first page, pages) of each data run, ascending
        int links;                  // names in the tree (directories: 2 + subdirectories)
        int imageIno;               // assigned by the layout
        Node parent;                // directories
        // placed by the layout (Ext4Image): blocks in the metadata area (directory blocks, a long symlink's
        // target, a large file's extent tree) and a regular file's first data block
        long metaBlock, dataBlock;
        int metaBlocks;
        int[] dirBlockStart;        // directories: the index of the first entry in each block (0 is ".", 1 is "..")
        final String path;          // relative to the root, for opening regular files again and for messages

        Node(Posix.Stat st, String path) {
            this.mode = st.mode();
            this.uid = st.uid();
            this.gid = st.gid();
            int type = st.type();
            this.size = type == Posix.S_IFREG || type == Posix.S_IFLNK ? st.size() : 0;
            this.atime = st.atimeSec();
            this.atimeNs = st.atimeNsec();
            this.mtime = st.mtimeSec();
            this.mtimeNs = st.mtimeNsec();
            this.ctime = st.ctimeSec();
            this.ctimeNs = st.ctimeNsec();
            this.rdev = st.rdev();
            this.dev = st.dev();
            this.ino = st.ino();
            this.entries = type == Posix.S_IFDIR ? new ArrayList<>() : null;
            this.path = path;
        }

        /** A node not on the host (lost+found when the tree has none). */
        Node(int mode, long now) {
            this.mode = mode;
            this.uid = 0;
            this.gid = 0;
            this.size = 0;
            this.atime = this.mtime = this.ctime = now;
            this.atimeNs = this.mtimeNs = this.ctimeNs = 0;
            this.rdev = 0;
            this.dev = -1;
            this.ino = -1;
            this.entries = new ArrayList<>();
            this.path = null;
        }

        int type() { return mode & Posix.S_IFMT; }
        boolean isDir() { return type() == Posix.S_IFDIR; }
        boolean isRegular() { return type() == Posix.S_IFREG; }
        boolean isSymlink() { return type() == Posix.S_IFLNK; }

        /** Pages holding data (holes excluded). */
        long dataPages() {
            long n = 0;
            for (int i = 1; i < runs.length; i += 2) n += runs[i];
            return n;
        }

        public String path() { return path; }
        public long dev() { return dev; }
        public long ino() { return ino; }
        public long size() { return size; }
    }

    /** One name in a directory. */
    public record Dirent(byte[] name, Node node) {}

    final Path dir;
    final Node root;
    /** Every node but the root, each once, in reading order: depth-first, each directory's entries by name. */
    final List<Node> nodes = new ArrayList<>();
    int skipped;
    private int maxEntries, names;

    private HostTree(Path dir, Node root) {
        this.dir = dir;
        this.root = root;
    }

    public int entries() { return nodes.size(); }

    /** Entries a bridged export's tree may have unless its {@code entries=} option says otherwise. */
    public static final int DEFAULT_MAX_ENTRIES = io.bridgefs.server.config.NbdExportSpec.DEFAULT_MAX_ENTRIES;
    /** Heap an entry of a scanned tree and its image layout take at most (see BridgedLimitsTest). */
    public static final long ENTRY_HEAP_BYTES = 512;

    /**
     * Walks {@code dir}. Entries that vanish during the walk, or whose names are not UTF-8, are left out
     * (logged once). A tree with more than {@code maxEntries} names fails the scan: its memory is bounded
     * (a guest that can create files in the directory another way must not be able to exhaust the heap).
     */
    public static HostTree scan(Path dir, int maxEntries) throws IOException {
        int rootFd = Posix.openat(Posix.AT_FDCWD, dir.toString(), DIR_FLAGS, 0);
        try {
            HostTree t = new HostTree(dir, new Node(Posix.fstat(rootFd), ""));
            t.root.parent = t.root;
            t.maxEntries = maxEntries;
            t.walk(rootFd);
            if (t.skipped > 0) log.warn("bridged image of {}: {} entries left out (vanished during the scan, or names that are not UTF-8)", dir, t.skipped);
            return t;
        } finally {
            Posix.close(rootFd);
        }
    }

    private void walk(int rootFd) throws IOException {
        Map<List<Long>, Node> linked = new HashMap<>();      // (dev, ino) of regular files etc. with more than one link
        ArrayDeque<Node> todo = new ArrayDeque<>();
        todo.push(root);
        while (!todo.isEmpty()) {
            Node d = todo.pop();
            int fd;
            try {
                fd = d == root ? Posix.dup(rootFd) : Posix.openat(rootFd, d.path, DIR_FLAGS, 0);
            } catch (Posix.ErrnoException e) {
                skipped++;     // replaced since it was stat'ed; shown empty
                continue;
            }
            // opened by its path from the root: a directory on the way replaced by a symlink since it was
            // stat'ed in its parent would be followed, so the one opened must be the one recorded
            if (d != root && !sameDirectory(fd, d)) {
                Posix.close(fd);
                skipped++;     // shown empty
                continue;
            }
            try {
                List<byte[]> listed = names(fd, maxEntries - names);
                names += listed.size();
                if (names > maxEntries) {
                    throw new IOException("bridged image of " + dir + ": more than " + maxEntries + " entries (each takes up to "
                            + ENTRY_HEAP_BYTES + " bytes of heap): give the export a larger entries= if the server should hold them");
                }
                for (byte[] name : listed) {
                    String s = new String(name, StandardCharsets.UTF_8);
                    if (!Arrays.equals(s.getBytes(StandardCharsets.UTF_8), name)) {
                        skipped++;
                        continue;
                    }
                    Posix.Stat st;
                    try {
                        st = Posix.fstatat(fd, s, Posix.AT_SYMLINK_NOFOLLOW);
                    } catch (Posix.ErrnoException e) {
                        skipped++;
                        continue;
                    }
                    String rel = d.path.isEmpty() ? s : d.path + "/" + s;
                    Node n;
                    List<Long> id = List.of(st.dev(), st.ino());
                    if (st.type() != Posix.S_IFDIR && st.nlink() > 1 && linked.containsKey(id)) {
                        n = linked.get(id);
                    } else {
                        n = new Node(st, rel);
                        if (!describe(fd, s, n)) {
                            skipped++;
                            continue;
                        }
                        if (st.type() != Posix.S_IFDIR && st.nlink() > 1) linked.put(id, n);
                        nodes.add(n);
                        if (n.isDir()) {
                            n.parent = d;
                            todo.push(n);
                        }
                    }
                    d.entries.add(new Dirent(name, n));
                }
            } finally {
                Posix.close(fd);
            }
            d.entries.sort(Comparator.comparing(Dirent::name, Arrays::compareUnsigned));
        }
        inReadingOrder();
        for (Node n : nodes) if (!n.isDir()) n.links = 0;
        for (Node d : dirs()) {
            int sub = 0;
            for (Dirent e : d.entries) {
                if (e.node.isDir()) sub++;
                else e.node.links++;
            }
            d.links = 2 + sub;
        }
    }

    /** Whether {@code fd} is the directory {@code d} was when stat'ed in its parent (same device and inode). */
    private static boolean sameDirectory(int fd, Node d) {
        try {
            Posix.Stat st = Posix.fstat(fd);
            return st.dev() == d.dev && st.ino() == d.ino && st.type() == Posix.S_IFDIR;
        } catch (Posix.ErrnoException e) {
            return false;
        }
    }

    /**
     * Puts the nodes (which the walk found a directory at a time, in the host's directory order) in the
     * order a reader walking the tree depth-first by name meets them, as tar, cp -r and grep -r do: the
     * layout numbers inodes and places file data in this order, so such a reader goes through the data
     * area from start to end (and the bridged disk's read-ahead across files reads what it asks next).
     */
    private void inReadingOrder() {
        List<Node> ordered = new ArrayList<>(nodes.size());
        java.util.Set<Node> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        ArrayDeque<java.util.Iterator<Dirent>> stack = new ArrayDeque<>();
        stack.push(root.entries.iterator());
        while (!stack.isEmpty()) {
            java.util.Iterator<Dirent> it = stack.peek();
            if (!it.hasNext()) {
                stack.pop();
                continue;
            }
            Node n = it.next().node();
            if (!seen.add(n)) continue;                  // a hard link's later names
            ordered.add(n);
            if (n.isDir()) stack.push(n.entries.iterator());
        }
        if (ordered.size() != nodes.size()) return;      // every node has a name in the tree; never lose one if not
        nodes.clear();
        nodes.addAll(ordered);
    }

    /** The names in a directory other than "." and "..", as the host spells them. */
    /** A directory's names but . and ..; stops once it has more than {@code limit} (the caller refuses). */
    private static List<byte[]> names(int fd, int limit) throws Posix.ErrnoException {
        List<byte[]> out = new ArrayList<>();
        Dirents d = Dirents.mine();
        int n;
        while (out.size() <= limit && (n = d.read(fd, Integer.MAX_VALUE)) > 0) {
            for (int pos = 0; pos < n; pos += d.reclen(pos)) {
                if (!d.dots(pos)) out.add(d.name(pos));
            }
        }
        return out;
    }

    /** Every directory, the root first. */
    List<Node> dirs() {
        List<Node> out = new ArrayList<>();
        out.add(root);
        for (Node n : nodes) if (n.isDir()) out.add(n);
        return out;
    }

    /** Reads what the image needs beyond the stat: a symlink's target, a regular file's data runs. */
    private static boolean describe(int dirFd, String name, Node n) throws IOException {
        try {
            if (n.isSymlink()) {
                n.target = Posix.readlinkat(dirFd, name).getBytes(StandardCharsets.UTF_8);
            } else if (n.isRegular() && n.size > 0) {
                int fd = Posix.openat(dirFd, name, Posix.O_RDONLY | Posix.O_NOFOLLOW | O_NONBLOCK, 0);
                try {
                    Posix.Stat st = Posix.fstat(fd);
                    if (st.dev() != n.dev || st.ino() != n.ino) return false;      // replaced since the stat
                    n.runs = dataRuns(fd, n.size);
                } finally {
                    Posix.close(fd);
                }
            }
            return true;
        } catch (Posix.ErrnoException e) {
            return false;
        }
    }

    /** The file's data as (first page, pages) runs: SEEK_DATA/SEEK_HOLE, widened to whole pages. */
    static long[] dataRuns(int fd, long size) throws Posix.ErrnoException {
        long pages = (size + 4095) >>> 12;
        long[] out = new long[8];
        int n = 0;
        long pos = 0;
        while (pos < size) {
            long data, hole;
            try {
                data = Posix.lseek(fd, pos, Posix.SEEK_DATA);               // -1: no data at or after pos
                if (data < 0) break;
                hole = Posix.lseek(fd, data, Posix.SEEK_HOLE);
                if (hole < 0) hole = size;
            } catch (Posix.ErrnoException e) {
                if (e.errno() != Posix.EINVAL && e.errno() != Posix.EOPNOTSUPP) throw e;
                data = pos;                                                  // no SEEK_DATA here: all data
                hole = size;
            }
            if (data >= size) break;
            long first = data >>> 12;
            long end = Math.min(pages, (Math.min(hole, size) + 4095) >>> 12);
            if (n > 0 && out[n - 2] + out[n - 1] >= first) {
                out[n - 1] = Math.max(out[n - 2] + out[n - 1], end) - out[n - 2];
            } else if (end > first) {
                if (n == out.length) out = Arrays.copyOf(out, n * 2);
                out[n++] = first;
                out[n++] = end - first;
            }
            pos = Math.max(hole, data + 1);
        }
        return Arrays.copyOf(out, n);
    }
}
