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
    private final int fd;                 // for lseek/fallocate only
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
            align = (int) Math.max(512, Files.getFileStore(path).getBlockSize());
            opts.add(ExtendedOpenOption.DIRECT);
            if (align <= PageCache.PAGE_SIZE && PageCache.PAGE_SIZE % align == 0) {
                direct = FileChannel.open(path, opts.toArray(OpenOption[]::new));
            }
        } catch (IOException | UnsupportedOperationException e) {
            direct = null;   // e.g. tmpfs: EINVAL on O_DIRECT
        }
        int fd;
        try {
            fd = Posix.open(path.toString(), readOnly ? Posix.O_RDONLY : Posix.O_RDWR);
        } catch (IOException e) {
            buffered.close();
            if (direct != null) direct.close();
            throw e;
        }
        return new FileBackingStore(path, buffered, direct, align, fd);
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
    public void sync() throws IOException {
        buffered.force(false);
    }

    @Override
    public void truncate(long size) throws IOException {
        if (size < buffered.size()) {
            buffered.truncate(size);
        } else if (size > buffered.size()) {
            // grow sparsely: writing one byte at the end would allocate a block
            try (var raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size);
            }
        }
    }

    @Override
    public boolean punchHole(long offset, long length) throws IOException {
        if (!sparse || length <= 0) return false;
        try {
            Posix.fallocate(fd, Posix.FALLOC_FL_PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, offset, length);
            return true;
        } catch (Posix.ErrnoException e) {
            if (e.errno() == Posix.EOPNOTSUPP || e.errno() == Posix.ENOSYS) {
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
                sparse = false;
                return new Extent(end - offset, false);
            }
            throw e;
        }
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
