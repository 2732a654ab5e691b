package io.bridgefs.server.cache;

import io.bridgefs.server.posix.Credentials;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A host file. Aligned I/O goes through an O_DIRECT channel where the filesystem allows it (so the host
 * kernel does not hold a second copy of what the page cache holds); the unaligned tail of a file, and
 * filesystems without O_DIRECT (tmpfs), use an ordinary channel. Holes are found with SEEK_DATA/SEEK_HOLE
 * and punched with fallocate, through {@link Posix}.
 */
public final class FileBackingStore implements BackingStore {
    private final String name;            // for messages
    private final int fd;                 // buffered: unaligned I/O, lseek, fallocate, ftruncate, fstat, fdatasync
    private final int directFd;           // O_DIRECT (preadv/pwritev into frames); -1 where not supported
    private final int directAlign;
    private volatile boolean sparse = true;

    private FileBackingStore(String name, int fd, int directFd, int directAlign) {
        this.name = name;
        this.fd = fd;
        this.directFd = directFd;
        this.directAlign = directAlign;
    }

    /**
     * Opens the file twice, buffered and (where the file system allows) O_DIRECT. Plain descriptors, not
     * FileChannels: an interrupted thread must never close a backing file under an in-flight write.
     */
    public static FileBackingStore open(Path path, boolean readOnly) throws IOException {
        int[] inherited = io.bridgefs.server.posix.Inherited.fileFds(path);
        if (inherited != null) return new FileBackingStore(path.toString(), inherited[0], inherited[1], PageCache.PAGE_SIZE);  // opened before --user
        int mode = readOnly ? Posix.O_RDONLY : Posix.O_RDWR;
        int fd = Posix.open(path.toString(), mode);
        return withDirect(path.toString(), fd, path, mode, -1);
    }

    /**
     * Takes over {@code fd}, a read-only descriptor of a regular file on device {@code dev} the caller
     * opened (and checked), as the buffered descriptor, and opens the file once more with O_DIRECT
     * through it: one open instead of two, and no lookup of the file system by path. The descriptor is
     * closed with the store, or here if this fails. {@code label} names the file in messages.
     */
    public static FileBackingStore adopt(int fd, long dev, String label) {
        return withDirect(label, fd, Path.of("/proc/self/fd/" + fd), Posix.O_RDONLY, dev);
    }

    /**
     * The store over {@code fd}, the buffered descriptor of the file at {@code path}, with an O_DIRECT
     * descriptor of it where the file system allows one (not tmpfs: EINVAL). {@code dev} is the file's
     * device, or -1 to look it up by path. Closes {@code fd} if this fails unexpectedly.
     */
    private static FileBackingStore withDirect(String name, int fd, Path path, int mode, long dev) {
        int direct = -1;
        int align = 4096;
        try {
            align = blockSize(dev >= 0 ? dev : ((Number) Files.getAttribute(path, "unix:dev")).longValue(), path);
            if (align <= PageCache.PAGE_SIZE && PageCache.PAGE_SIZE % align == 0) direct = Posix.open(path.toString(), mode | Posix.O_DIRECT);
        } catch (IOException | UnsupportedOperationException e) {
            direct = -1;   // e.g. tmpfs: EINVAL on O_DIRECT
        } catch (RuntimeException | Error e) {
            Posix.close(fd);
            throw e;
        }
        return new FileBackingStore(name, fd, direct, align);
    }

    /** Block size of the file system holding {@code path}, looked up once per device (it parses the mount table). */
    private static final java.util.concurrent.ConcurrentHashMap<Long, Integer> BLOCK_SIZES = new java.util.concurrent.ConcurrentHashMap<>();

    private static int blockSize(long dev, Path path) throws IOException {
        Integer known = BLOCK_SIZES.get(dev);
        if (known != null) return known;
        int size = (int) Math.max(512, Files.getFileStore(path).getBlockSize());
        BLOCK_SIZES.put(dev, size);
        return size;
    }

    @Override
    public long size() throws IOException {
        return Posix.fstat(fd).size();
    }

    private boolean aligned(ByteBuffer b, long position) {
        return directFd >= 0 && b.isDirect() && position % directAlign == 0 && b.remaining() % directAlign == 0
                && b.alignmentOffset(b.position(), directAlign) == 0;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        int start = dst.position();
        if (aligned(dst, position)) {
            int n = Posix.pread(directFd, dst, position);
            if (n <= 0 || !dst.hasRemaining()) return Math.max(0, dst.position() - start);
            position += n;   // short direct read: end of file, or finish the rest without O_DIRECT
        }
        if (!dst.isDirect()) return readHeap(dst, position);
        while (dst.hasRemaining()) {
            int n = Posix.pread(fd, dst, position);
            if (n <= 0) break;
            position += n;
        }
        return dst.position() - start;
    }

    private int readHeap(ByteBuffer dst, long position) throws IOException {
        ByteBuffer tmp = ByteBuffer.allocateDirect(dst.remaining());
        int n = read(tmp, position);
        dst.put(tmp.flip());
        return n;
    }

    /**
     * Writing cached pages back is the server's work on whatever thread does it: one acting as a 9P user
     * (its fsync, an eviction waiting for write-back) writes as the server for the call, or the kernel
     * would clear the file's setuid bit as it does for an unprivileged writer.
     */
    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        ByteBuffer data = src.isDirect() ? src : ByteBuffer.allocateDirect(src.remaining()).put(src).flip();
        int target = aligned(data, position) ? directFd : fd;
        Credentials.asServer(() -> {
            writeFully(target, data, position);
            return null;
        });
    }

    private static void writeFully(int fd, ByteBuffer src, long position) throws IOException {
        while (src.hasRemaining()) {
            int n = Posix.pwrite(fd, src, position);
            if (n <= 0) throw new IOException("pwrite wrote nothing at " + position);
            position += n;
        }
    }

    @Override
    public int directFd() {
        return directFd >= 0 && directAlign > 0 && PageCache.PAGE_SIZE % directAlign == 0 ? directFd : -1;
    }

    @Override
    public int readPages(ByteBuffer[] pages, int count, long position) throws IOException {
        if (directFd < 0) return BackingStore.super.readPages(pages, count, position);
        int[] lengths = new int[count];
        java.util.Arrays.fill(lengths, PageCache.PAGE_SIZE);
        long total = 0;
        long want = (long) count * PageCache.PAGE_SIZE;
        while (total < want) {
            int first = (int) (total / PageCache.PAGE_SIZE);
            if (total % PageCache.PAGE_SIZE != 0) {
                // a short read inside a page: only at end of file
                break;
            }
            long n = Posix.preadv(directFd, slice(pages, first, count), count - first, lengths, position + total);
            if (n <= 0) break;
            total += n;
        }
        return (int) total;
    }

    /** As the server, as {@link #write}. */
    @Override
    public void writePages(ByteBuffer[] pages, int count, long position, int lastLength) throws IOException {
        Credentials.asServer(() -> {
            writePagesAsIs(pages, count, position, lastLength);
            return null;
        });
    }

    private void writePagesAsIs(ByteBuffer[] pages, int count, long position, int lastLength) throws IOException {
        if (directFd < 0 || count == 0) {
            BackingStore.super.writePages(pages, count, position, lastLength);
            return;
        }
        // whole pages go straight from the frames with O_DIRECT; a partial last page (end of file) does not
        int whole = lastLength == PageCache.PAGE_SIZE ? count : count - 1;
        int[] lengths = new int[Math.max(1, whole)];
        java.util.Arrays.fill(lengths, PageCache.PAGE_SIZE);
        long done = 0;
        long want = (long) whole * PageCache.PAGE_SIZE;
        while (done < want) {
            int first = (int) (done / PageCache.PAGE_SIZE);
            long n = Posix.pwritev(directFd, slice(pages, first, whole), whole - first, lengths, position + done);
            if (n <= 0) throw new IOException("pwritev wrote nothing at " + (position + done));
            done += n;
            int off = (int) (done % PageCache.PAGE_SIZE);
            if (off != 0) {
                // a short write inside a page: finish that page without O_DIRECT, then go on aligned
                ByteBuffer rest = pages[(int) (done / PageCache.PAGE_SIZE)].duplicate().clear().position(off);
                writeFully(fd, rest, position + done);
                done += PageCache.PAGE_SIZE - off;
            }
        }
        if (whole < count) {
            ByteBuffer last = pages[count - 1].duplicate().clear().limit(lastLength);
            writeFully(fd, last, position + (long) whole * PageCache.PAGE_SIZE);
        }
    }

    private static ByteBuffer[] slice(ByteBuffer[] pages, int from, int to) {
        return from == 0 ? pages : java.util.Arrays.copyOfRange(pages, from, to);
    }

    @Override
    public void sync() throws IOException {
        Posix.fdatasync(fd);
    }

    @Override
    public void truncate(long size) throws IOException {
        // on our own descriptor: the path may be a /proc/self/fd link that no longer exists; grows sparsely
        Posix.ftruncate(fd, size);
    }

    @Override
    public boolean punchHole(long offset, long length) throws IOException {
        if (!sparse || length <= 0) return false;
        try {
            Posix.fallocate(fd, Posix.FALLOC_FL_PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, offset, length);
            return true;
        } catch (Posix.ErrnoException e) {
            if (e.errno() == Posix.EOPNOTSUPP || e.errno() == Posix.ENOSYS) {
                if (sparse) {
                    org.slf4j.LoggerFactory.getLogger(FileBackingStore.class).warn(
                            "{}: the host filesystem cannot punch holes; trims and zeroing write zeros instead", name);
                }
                sparse = false;
                return false;
            }
            throw e;
        }
    }

    @Override
    public Extent extentAt(long offset, long limit) throws IOException {
        long size = size();
        if (offset >= size) return new Extent(limit - offset, true);
        long end = Math.min(limit, size);
        try {
            long data = Posix.lseek(fd, offset, Posix.SEEK_DATA);
            if (data < 0 || data >= end) return new Extent(limit - offset, true);   // hole to the end
            if (data > offset) return new Extent(data - offset, true);
            long hole = Posix.lseek(fd, offset, Posix.SEEK_HOLE);
            if (hole < 0 || hole > end) hole = end;
            return new Extent(Math.max(1, hole - offset), false);
        } catch (Posix.ErrnoException e) {
            if (e.errno() == Posix.EINVAL || e.errno() == Posix.EOPNOTSUPP) {
                if (sparse) {
                    org.slf4j.LoggerFactory.getLogger(FileBackingStore.class).warn(
                            "{}: the host filesystem cannot report holes; block status reports everything as data", name);
                }
                sparse = false;
                return new Extent(end - offset, false);
            }
            throw e;
        }
    }

    @Override
    public boolean unlinked() throws IOException {
        return Posix.fstat(fd).nlink() == 0;
    }

    @Override
    public long stamp() throws IOException {
        return stampOf(Posix.fstat(fd));
    }

    /** What {@link #stamp} gives for a file with these attributes. */
    public static long stampOf(Posix.Stat st) {
        long h = st.size() * 0x9E3779B97F4A7C15L;
        h = (h ^ st.mtimeSec()) * 0xC2B2AE3D27D4EB4FL ^ st.mtimeNsec();
        h = (h ^ st.ctimeSec()) * 0x165667B19E3779F9L ^ st.ctimeNsec();
        return h == 0 ? 1 : h;
    }

    @Override
    public boolean directIo() {
        return directFd >= 0;
    }

    @Override
    public boolean sparse() {
        return sparse;
    }

    @Override
    public void close() throws IOException {
        Posix.close(fd);
        if (directFd >= 0) Posix.close(directFd);
    }

    @Override
    public String toString() {
        return name;
    }
}
