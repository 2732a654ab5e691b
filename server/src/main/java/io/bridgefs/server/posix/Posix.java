package io.bridgefs.server.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The few POSIX calls {@code java.nio} lacks, through JNA: open/close, lseek with SEEK_DATA/SEEK_HOLE,
 * fallocate (punch hole, zero range), and preadv/pwritev so O_DIRECT I/O goes straight between the
 * disk and the cache's frames. Linux x86_64 numbers.
 */
public final class Posix {
    private Posix() {}

    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CLOEXEC = 0x80000;
    public static final int O_NOFOLLOW = 0x20000;
    public static final int O_DIRECT = 0x4000;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    public static final int ENXIO = 6;
    public static final int EOPNOTSUPP = 95;
    public static final int ENOSYS = 38;
    public static final int EINVAL = 22;

    private interface LibC extends Library {
        int open(String path, int flags, int mode) throws LastErrorException;
        int close(int fd) throws LastErrorException;
        long lseek(int fd, long offset, int whence) throws LastErrorException;
        int fallocate(int fd, int mode, long offset, long length) throws LastErrorException;
        long preadv(int fd, Pointer iov, int iovcnt, long offset) throws LastErrorException;
        long pwritev(int fd, Pointer iov, int iovcnt, long offset) throws LastErrorException;
    }

    private static final ThreadLocal<Memory> IOVECS = ThreadLocal.withInitial(() -> new Memory(16L * 256));

    /** Builds a struct iovec array over direct buffers (each from position 0 for {@code lengths[i]} bytes). */
    private static Pointer iovecs(ByteBuffer[] bufs, int count, int[] lengths) {
        Memory m = IOVECS.get();
        if (m.size() < 16L * count) {
            m = new Memory(16L * count);
            IOVECS.set(m);
        }
        for (int i = 0; i < count; i++) {
            m.setPointer(16L * i, Native.getDirectBufferPointer(bufs[i]));
            m.setLong(16L * i + 8, lengths[i]);
        }
        return m;
    }

    /** preadv into direct buffers; returns bytes read (short only at end of file). */
    public static long preadv(int fd, ByteBuffer[] bufs, int count, int[] lengths, long offset) throws ErrnoException {
        try {
            return LIBC.preadv(fd, iovecs(bufs, count, lengths), count, offset);
        } catch (LastErrorException e) {
            throw new ErrnoException("preadv", e.getErrorCode());
        }
    }

    /** pwritev from direct buffers; returns bytes written. */
    public static long pwritev(int fd, ByteBuffer[] bufs, int count, int[] lengths, long offset) throws ErrnoException {
        try {
            return LIBC.pwritev(fd, iovecs(bufs, count, lengths), count, offset);
        } catch (LastErrorException e) {
            throw new ErrnoException("pwritev", e.getErrorCode());
        }
    }

    private static final LibC LIBC = Native.load("c", LibC.class);

    /** An errno from a failed call, kept so callers can tell "unsupported" from a real failure. */
    public static final class ErrnoException extends IOException {
        private final int errno;
        ErrnoException(String call, int errno) {
            super(call + " failed: " + name(errno));
            this.errno = errno;
        }

        private static String name(int errno) {
            return switch (errno) {
                case 1 -> "EPERM (Operation not permitted)";
                case 5 -> "EIO (Input/output error)";
                case 13 -> "EACCES (Permission denied)";
                case 22 -> "EINVAL (Invalid argument)";
                case 28 -> "ENOSPC (No space left on device)";
                case 30 -> "EROFS (Read-only file system)";
                case 95 -> "EOPNOTSUPP (Operation not supported)";
                case 122 -> "EDQUOT (Disk quota exceeded)";
                default -> "errno " + errno;
            };
        }
        public int errno() { return errno; }
    }

    public static int open(String path, int flags) throws ErrnoException {
        try {
            return LIBC.open(path, flags | O_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw new ErrnoException("open(" + path + ")", e.getErrorCode());
        }
    }

    public static void close(int fd) {
        try {
            LIBC.close(fd);
        } catch (LastErrorException ignored) {
            // nothing useful to do: the descriptor is gone either way
        }
    }

    /** lseek; returns -1 for ENXIO (no data / no hole at or after offset). */
    public static long lseek(int fd, long offset, int whence) throws ErrnoException {
        try {
            return LIBC.lseek(fd, offset, whence);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == ENXIO) return -1;
            throw new ErrnoException("lseek", e.getErrorCode());
        }
    }

    public static void fallocate(int fd, int mode, long offset, long length) throws ErrnoException {
        try {
            LIBC.fallocate(fd, mode, offset, length);
        } catch (LastErrorException e) {
            throw new ErrnoException("fallocate", e.getErrorCode());
        }
    }
}
