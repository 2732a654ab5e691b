package io.bridgefs.server.cache;

import com.sun.nio.file.ExtendedOpenOption;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A host file. Aligned I/O goes through an O_DIRECT channel where the filesystem allows it (so the host
 * kernel does not hold a second copy of what the page cache holds); the unaligned tail of a file, and
 * filesystems without O_DIRECT (tmpfs), use an ordinary channel. Holes are found with SEEK_DATA/SEEK_HOLE
 * and punched with fallocate, through {@link Posix}.
 */
public final class FileBackingStore implements BackingStore {
    private final Path path;
    private final FileChannel buffered;
    private final FileChannel direct;     // null where O_DIRECT is not supported
    private final int directAlign;
    private final int fd;                 // lseek/fallocate, and preadv/pwritev (O_DIRECT when directIo)
    private volatile boolean sparse = true;

    private FileBackingStore(Path path, FileChannel buffered, FileChannel direct, int directAlign, int fd) {
        this.path = path;
        this.buffered = buffered;
        this.direct = direct;
        this.directAlign = directAlign;
        this.fd = fd;
    }

    public static FileBackingStore open(Path path, boolean readOnly) throws IOException {
        List<OpenOption> opts = new ArrayList<>(List.of(StandardOpenOption.READ));
        if (!readOnly) opts.add(StandardOpenOption.WRITE);
        FileChannel buffered = FileChannel.open(path, opts.toArray(OpenOption[]::new));
        FileChannel direct = null;
        int align = 4096;
        try {
            align = blockSize(path);
            opts.add(ExtendedOpenOption.DIRECT);
            if (align <= PageCache.PAGE_SIZE && PageCache.PAGE_SIZE % align == 0) {
                direct = FileChannel.open(path, opts.toArray(OpenOption[]::new));
            }
        } catch (IOException | UnsupportedOperationException e) {
            direct = null;   // e.g. tmpfs: EINVAL on O_DIRECT
        }
        int fd;
        try {
            int mode = readOnly ? Posix.O_RDONLY : Posix.O_RDWR;
            fd = Posix.open(path.toString(), direct != null ? mode | Posix.O_DIRECT : mode);
        } catch (IOException e) {
            buffered.close();
            if (direct != null) direct.close();
            throw e;
        }
        return new FileBackingStore(path, buffered, direct, align, fd);
    }

    /** Block size of the file system holding {@code path}, looked up once per device (it parses the mount table). */
    private static final java.util.concurrent.ConcurrentHashMap<Long, Integer> BLOCK_SIZES = new java.util.concurrent.ConcurrentHashMap<>();

    private static int blockSize(Path path) throws IOException {
        long dev = ((Number) Files.getAttribute(path, "unix:dev")).longValue();
        Integer known = BLOCK_SIZES.get(dev);
        if (known != null) return known;
        int size = (int) Math.max(512, Files.getFileStore(path).getBlockSize());
        BLOCK_SIZES.put(dev, size);
        return size;
    }

    @Override
    public long size() throws IOException {
        return buffered.size();
    }

    private boolean aligned(ByteBuffer b, long position) {
        return direct != null && b.isDirect() && position % directAlign == 0 && b.remaining() % directAlign == 0
                && b.alignmentOffset(b.position(), directAlign) == 0;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        int start = dst.position();
        if (aligned(dst, position)) {
            int n = direct.read(dst, position);
            if (n <= 0 || !dst.hasRemaining()) return Math.max(0, dst.position() - start);
            position += n;   // short direct read: end of file, or finish the rest without O_DIRECT
        }
        while (dst.hasRemaining()) {
            int n = buffered.read(dst, position);
            if (n <= 0) break;
            position += n;
        }
        return dst.position() - start;
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        FileChannel ch = aligned(src, position) ? direct : buffered;
        while (src.hasRemaining()) {
            position += ch.write(src, position);
        }
    }

    @Override
    public int readPages(ByteBuffer[] pages, int count, long position) throws IOException {
        if (direct == null) return BackingStore.super.readPages(pages, count, position);
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
            long n = Posix.preadv(fd, slice(pages, first, count), count - first, lengths, position + total);
            if (n <= 0) break;
            total += n;
        }
        return (int) total;
    }

    @Override
    public void writePages(ByteBuffer[] pages, int count, long position, int lastLength) throws IOException {
        if (direct == null || count == 0) {
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
            long n = Posix.pwritev(fd, slice(pages, first, whole), whole - first, lengths, position + done);
            if (n <= 0) throw new IOException("pwritev wrote nothing at " + (position + done));
            done += n;
            int off = (int) (done % PageCache.PAGE_SIZE);
            if (off != 0) {
                // a short write inside a page: finish that page without O_DIRECT, then go on aligned
                ByteBuffer rest = pages[(int) (done / PageCache.PAGE_SIZE)].duplicate().clear().position(off);
                long at = position + done;
                while (rest.hasRemaining()) at += buffered.write(rest, at);
                done += PageCache.PAGE_SIZE - off;
            }
        }
        if (whole < count) {
            ByteBuffer last = pages[count - 1].duplicate().clear().limit(lastLength);
            long at = position + (long) whole * PageCache.PAGE_SIZE;
            while (last.hasRemaining()) at += buffered.write(last, at);
        }
    }

    private static ByteBuffer[] slice(ByteBuffer[] pages, int from, int to) {
        return from == 0 ? pages : java.util.Arrays.copyOfRange(pages, from, to);
    }

    @Override
    public void sync() throws IOException {
        buffered.force(false);
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
                            "{}: the host filesystem cannot punch holes; trims and zeroing write zeros instead", path);
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
                            "{}: the host filesystem cannot report holes; block status reports everything as data", path);
                }
                sparse = false;
                return new Extent(end - offset, false);
            }
            throw e;
        }
    }

    @Override
    public long stamp() throws IOException {
        Posix.Stat st = Posix.fstat(fd);
        long h = st.size() * 0x9E3779B97F4A7C15L;
        h = (h ^ st.mtimeSec()) * 0xC2B2AE3D27D4EB4FL ^ st.mtimeNsec();
        h = (h ^ st.ctimeSec()) * 0x165667B19E3779F9L ^ st.ctimeNsec();
        return h == 0 ? 1 : h;
    }

    @Override
    public boolean directIo() {
        return direct != null;
    }

    @Override
    public boolean sparse() {
        return sparse;
    }

    @Override
    public void close() throws IOException {
        Posix.close(fd);
        try {
            buffered.close();
        } finally {
            if (direct != null) direct.close();
        }
    }

    @Override
    public String toString() {
        return path.toString();
    }
}
