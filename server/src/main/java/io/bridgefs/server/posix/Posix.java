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
 * fallocate (punch hole, zero range), preadv/pwritev so O_DIRECT I/O goes straight between the
 * disk and the cache's frames, and native AIO to submit many such reads at once ({@link AsyncReads}).
 * Linux x86_64 numbers.
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
    public static final int EINTR = 4;
    public static final int EFBIG = 27;

    private interface LibC extends Library {
        int umask(int mask);
        int ioctl(int fd, long request, com.sun.jna.ptr.IntByReference arg) throws LastErrorException;
        int name_to_handle_at(int dirfd, String path, Pointer handle, Pointer mountId, int flags) throws LastErrorException;
        Pointer mmap(Pointer addr, long length, int prot, int flags, int fd, long offset) throws LastErrorException;
        int madvise(Pointer addr, long length, int advice) throws LastErrorException;
        int munmap(Pointer addr, long length) throws LastErrorException;
        int gettid();
        int getpriority(int which, int who) throws LastErrorException;
        int setpriority(int which, int who, int prio) throws LastErrorException;
        int mallopt(int param, int value);
    }

    public static final int O_PATH = 0x200000;
    public static final int O_DIRECTORY = 0x10000;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int AT_FDCWD = -100;
    public static final int AT_SYMLINK_NOFOLLOW = 0x100;
    public static final int AT_REMOVEDIR = 0x200;
    public static final int AT_EMPTY_PATH = 0x1000;
    public static final long UTIME_NOW = (1L << 30) - 1;
    public static final long UTIME_OMIT = (1L << 30) - 2;
    public static final int S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000, S_IFLNK = 0120000,
            S_IFIFO = 0010000, S_IFSOCK = 0140000, S_IFCHR = 0020000, S_IFBLK = 0060000;
    public static final int S_ISUID = 04000, S_ISGID = 02000;

    /** The fields of struct stat (x86_64 layout) that 9P needs. */
    public record Stat(long dev, long ino, long nlink, int mode, int uid, int gid, long rdev, long size, long blksize,
                       long blocks, long atimeSec, long atimeNsec, long mtimeSec, long mtimeNsec, long ctimeSec, long ctimeNsec) {
        public int type() { return mode & S_IFMT; }
        public boolean isDir() { return type() == S_IFDIR; }
        public boolean isRegular() { return type() == S_IFREG; }
        public boolean isSymlink() { return type() == S_IFLNK; }
    }

    /** struct statfs (x86_64). */
    public record StatFs(long type, long bsize, long blocks, long bfree, long bavail, long files, long ffree, long fsid, long namelen) {}

    private static final ThreadLocal<Memory> SCRATCH = ThreadLocal.withInitial(() -> new Memory(8192));

    private static ErrnoException err(String call, LastErrorException e) {
        return new ErrnoException(call, e.getErrorCode());
    }

    /** A libc call that fails with errno (JNA's LastErrorException). */
    @FunctionalInterface
    private interface Call {
        long run() throws LastErrorException;
    }

    /** Runs a call; its errno becomes an {@link ErrnoException} naming {@code call}. */
    private static long check(String call, Call c) throws ErrnoException {
        try {
            return c.run();
        } catch (LastErrorException e) {
            throw err(call, e);
        }
    }

    public static void ftruncate(int fd, long length) throws ErrnoException {
        check("ftruncate", () -> Hot.ftruncate(fd, length));
    }

    public static int dup(int fd) throws ErrnoException {
        return (int) check("dup", () -> Hot.dup(fd));
    }

    public static int openat(int dirfd, String path, int flags, int mode) throws ErrnoException {
        return (int) check("openat", () -> Hot.openat(dirfd, path, flags | O_CLOEXEC, mode));
    }

    private static final long SYS_OPENAT2 = 437;
    private static final long RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_CACHED = 0x20;
    private static final ThreadLocal<Memory> OPEN_HOW = ThreadLocal.withInitial(() -> new Memory(24));
    private static volatile boolean cachedLookups = true;

    /**
     * An O_PATH|O_NOFOLLOW descriptor of {@code name} in the directory {@code dirfd}, only if the lookup
     * can be answered from the kernel's dentry cache and stays on the directory's mount (openat2 with
     * RESOLVE_CACHED | RESOLVE_NO_XDEV, Linux 5.12+): never reads the disk, so a network thread may call
     * it. -1 where it would have had to (EAGAIN), would leave the mount (EXDEV), failed any other way
     * (the caller does the lookup the ordinary way and reports the error), or the kernel lacks it.
     */
    public static int openPathCached(int dirfd, String name) {
        return openCached(dirfd, name, O_PATH | O_NOFOLLOW);
    }

    /**
     * A directory descriptor for reading ({@code dirfd} itself, which may be O_PATH, opened again through
     * "."), only where the lookup is answered from the dentry cache as in {@link #openPathCached}; the open
     * itself reads nothing (io_uring opens this way without blocking). -1 where it cannot, whatever the
     * reason: the caller opens it the ordinary way and reports the error.
     */
    public static int openDirCached(int dirfd) {
        return openCached(dirfd, ".", O_RDONLY | O_DIRECTORY);
    }

    private static int openCached(int dirfd, String name, int flags) {
        if (!cachedLookups) return -1;
        Memory how = OPEN_HOW.get();
        how.setLong(0, flags | O_CLOEXEC);
        how.setLong(8, 0);
        how.setLong(16, RESOLVE_CACHED | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS);
        try {
            return (int) Hot.syscall(SYS_OPENAT2, dirfd, name, how, 24);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == ENOSYS || e.getErrorCode() == EINVAL) cachedLookups = false;   // before 5.12: never again
            return -1;
        }
    }

    /**
     * The file handle of the file a descriptor refers to (name_to_handle_at: inode and generation, what
     * an NFS server identifies files by), or null where the file system has none. Needs no privilege.
     */
    public static byte[] fileHandle(int fd) {
        Memory m = SCRATCH.get();
        Memory mountId = new Memory(4);
        m.setInt(0, 128);                   // handle_bytes: MAX_HANDLE_SZ
        try {
            LIBC.name_to_handle_at(fd, "", m, mountId, AT_EMPTY_PATH);
        } catch (LastErrorException e) {
            return null;                    // EOPNOTSUPP, EOVERFLOW, ...
        }
        int n = m.getInt(0);
        return m.getByteArray(0, 8 + Math.max(0, Math.min(128, n)));   // handle_bytes, handle_type, f_handle
    }

    /** fstatat; with an empty path and AT_EMPTY_PATH, the file the descriptor refers to. */
    public static Stat fstatat(int dirfd, String path, int flags) throws ErrnoException {
        Memory m = SCRATCH.get();
        try {
            Hot.fstatat(dirfd, path, m, flags);
        } catch (LastErrorException e) {
            throw err("fstatat", e);
        }
        return stat(m);
    }

    /** struct stat (x86_64) as read by fstat and fstatat. */
    private static Stat stat(Memory m) {
        return new Stat(m.getLong(0), m.getLong(8), m.getLong(16), m.getInt(24), m.getInt(28), m.getInt(32), m.getLong(40),
                m.getLong(48), m.getLong(56), m.getLong(64), m.getLong(72), m.getLong(80), m.getLong(88), m.getLong(96),
                m.getLong(104), m.getLong(112));
    }

    public static Stat fstat(int fd) throws ErrnoException {
        Memory m = SCRATCH.get();
        try {
            Hot.fstat(fd, m);
        } catch (LastErrorException e) {
            throw err("fstat", e);
        }
        return stat(m);
    }

    public static StatFs fstatfs(int fd) throws ErrnoException {
        Memory m = SCRATCH.get();
        try {
            Hot.fstatfs(fd, m);
        } catch (LastErrorException e) {
            throw err("fstatfs", e);
        }
        return new StatFs(m.getLong(0), m.getLong(8), m.getLong(16), m.getLong(24), m.getLong(32), m.getLong(40),
                m.getLong(48), m.getLong(56), m.getLong(64));
    }

    public static void mkdirat(int dirfd, String path, int mode) throws ErrnoException {
        check("mkdirat", () -> Hot.mkdirat(dirfd, path, mode));
    }

    public static void mknodat(int dirfd, String path, int mode, long dev) throws ErrnoException {
        check("mknodat", () -> Hot.mknodat(dirfd, path, mode, dev));
    }

    public static void unlinkat(int dirfd, String path, int flags) throws ErrnoException {
        check("unlinkat", () -> Hot.unlinkat(dirfd, path, flags));
    }

    public static void renameat(int olddirfd, String oldpath, int newdirfd, String newpath) throws ErrnoException {
        check("renameat", () -> Hot.renameat(olddirfd, oldpath, newdirfd, newpath));
    }

    public static void symlinkat(String target, int dirfd, String path) throws ErrnoException {
        check("symlinkat", () -> Hot.symlinkat(target, dirfd, path));
    }

    public static String readlinkat(int dirfd, String path) throws ErrnoException {
        Memory m = SCRATCH.get();
        try {
            long n = Hot.readlinkat(dirfd, path, m, m.size());
            return new String(m.getByteArray(0, (int) n), java.nio.charset.StandardCharsets.UTF_8);
        } catch (LastErrorException e) {
            throw err("readlinkat", e);
        }
    }

    public static void linkat(int olddirfd, String oldpath, int newdirfd, String newpath, int flags) throws ErrnoException {
        check("linkat", () -> Hot.linkat(olddirfd, oldpath, newdirfd, newpath, flags));
    }

    public static void fchownat(int dirfd, String path, int uid, int gid, int flags) throws ErrnoException {
        check("fchownat", () -> Hot.fchownat(dirfd, path, uid, gid, flags));
    }

    public static void fchmodat(int dirfd, String path, int mode) throws ErrnoException {
        check("fchmodat", () -> Hot.fchmodat(dirfd, path, mode, 0));
    }

    /** utimensat on a path; each time is (seconds, nanoseconds) or UTIME_NOW / UTIME_OMIT in nanoseconds. */
    public static void utimensat(int dirfd, String path, long aSec, long aNsec, long mSec, long mNsec, int flags) throws ErrnoException {
        Memory m = SCRATCH.get();
        m.setLong(0, aSec);
        m.setLong(8, aNsec);
        m.setLong(16, mSec);
        m.setLong(24, mNsec);
        check("utimensat", () -> Hot.utimensat(dirfd, path, m, flags));
    }

    /** getdents64 into {@code count} bytes of a buffer ({@link Dirents}); returns the bytes filled (0 at the end of the directory). */
    static int getdents64(int fd, Memory buf, long count) throws ErrnoException {
        try {
            return (int) Hot.getdents64(fd, buf, count);
        } catch (LastErrorException e) {
            throw err("getdents64", e);
        }
    }

    /** The value of an xattr, or null if it does not exist (ENODATA). */
    public static byte[] getxattr(String path, String name) throws ErrnoException {
        try {
            long n = Hot.getxattr(path, name, null, 0);
            if (n == 0) return new byte[0];
            Memory m = new Memory(n);
            n = Hot.getxattr(path, name, m, n);
            return m.getByteArray(0, (int) n);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == 61) return null;
            throw err("getxattr", e);
        }
    }

    /**
     * The value of an xattr expected to be small (at most {@code max} bytes, up to 8192) in one system
     * call instead of two, or null if it does not exist; a larger value is read as {@link #getxattr} does.
     */
    public static byte[] getxattrSmall(String path, String name, int max) throws ErrnoException {
        Memory m = SCRATCH.get();
        try {
            long n = Hot.getxattr(path, name, m, Math.min(max, m.size()));
            return m.getByteArray(0, (int) n);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == 61) return null;            // ENODATA
            if (e.getErrorCode() == 34) return getxattr(path, name);   // ERANGE: larger than expected
            throw err("getxattr", e);
        }
    }

    public static void setxattr(String path, String name, byte[] value, int flags) throws ErrnoException {
        Memory m = new Memory(Math.max(1, value.length));
        m.write(0, value, 0, value.length);
        check("setxattr", () -> Hot.setxattr(path, name, m, value.length, flags));
    }

    public static void removexattr(String path, String name) throws ErrnoException {
        check("removexattr", () -> Hot.removexattr(path, name));
    }

    /** The NUL-separated list of xattr names. */
    public static byte[] listxattr(String path) throws ErrnoException {
        try {
            long n = Hot.listxattr(path, null, 0);
            if (n == 0) return new byte[0];
            Memory m = new Memory(n);
            n = Hot.listxattr(path, m, n);
            return m.getByteArray(0, (int) n);
        } catch (LastErrorException e) {
            throw err("listxattr", e);
        }
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
            return Hot.preadv(fd, iovecs(bufs, count, lengths), count, offset);
        } catch (LastErrorException e) {
            throw new ErrnoException("preadv", e.getErrorCode());
        }
    }

    /** pwritev from direct buffers; returns bytes written. */
    public static long pwritev(int fd, ByteBuffer[] bufs, int count, int[] lengths, long offset) throws ErrnoException {
        try {
            return Hot.pwritev(fd, iovecs(bufs, count, lengths), count, offset);
        } catch (LastErrorException e) {
            throw new ErrnoException("pwritev", e.getErrorCode());
        }
    }

    // Linux native AIO (x86_64 system call numbers): many reads queued with one io_submit (see AsyncReads)
    private static final long SYS_IO_SETUP = 206, SYS_IO_DESTROY = 207, SYS_IO_GETEVENTS = 208, SYS_IO_SUBMIT = 209;

    /** io_setup: a context for up to {@code events} reads in flight. */
    static long ioSetup(int events) throws ErrnoException {
        if (!"amd64".equals(System.getProperty("os.arch"))) throw new ErrnoException("io_setup", ENOSYS);
        Memory ctx = new Memory(8);
        ctx.setLong(0, 0);
        try {
            Aio.syscall(SYS_IO_SETUP, events, Pointer.nativeValue(ctx), 0, 0, 0);
        } catch (LastErrorException e) {
            throw new ErrnoException("io_setup", e.getErrorCode());
        }
        return ctx.getLong(0);
    }

    /** io_destroy: waits for whatever is still in flight, then frees the context. */
    static void ioDestroy(long ctx) {
        try {
            Aio.syscall(SYS_IO_DESTROY, ctx, 0, 0, 0, 0);
        } catch (LastErrorException e) {
            // nothing to do: the context is gone either way
        }
    }

    /** io_submit of {@code n} control blocks (an array of pointers); returns how many the kernel took. */
    static int ioSubmit(long ctx, int n, long iocbPointers) throws ErrnoException {
        try {
            return (int) Aio.syscall(SYS_IO_SUBMIT, ctx, n, iocbPointers, 0, 0);
        } catch (LastErrorException e) {
            throw new ErrnoException("io_submit", e.getErrorCode());
        }
    }

    /** io_getevents: waits for at least {@code min} completions; returns how many were stored (0 if interrupted). */
    static int ioGetevents(long ctx, int min, int max, long events) throws ErrnoException {
        try {
            return (int) Aio.syscall(SYS_IO_GETEVENTS, ctx, min, max, events, 0);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == EINTR) return 0;
            throw new ErrnoException("io_getevents", e.getErrorCode());
        }
    }

    private static final class Aio {
        static native long syscall(long number, long a, long b, long c, long d, long e) throws LastErrorException;

        static {
            Native.register(Aio.class, com.sun.jna.NativeLibrary.getInstance("c"));
        }
    }

    /** The address of a direct buffer's position. */
    static Pointer at(ByteBuffer b) {
        if (!b.isDirect()) throw new IllegalArgumentException("not a direct buffer");
        return Native.getDirectBufferPointer(b).share(b.position());
    }

    /**
     * pread into a direct buffer from its position; advances the position. Returns bytes read (0 at end
     * of file). A plain system call: unlike a FileChannel, a thread interrupt never closes the descriptor.
     */
    public static int pread(int fd, ByteBuffer dst, long offset) throws ErrnoException {
        while (true) {
            try {
                int n = (int) Hot.pread(fd, at(dst), dst.remaining(), offset);
                dst.position(dst.position() + n);
                return n;
            } catch (LastErrorException e) {
                if (e.getErrorCode() != EINTR) throw new ErrnoException("pread", e.getErrorCode());
            }
        }
    }

    /** pwrite from a direct buffer's position; advances the position. Returns bytes written. */
    public static int pwrite(int fd, ByteBuffer src, long offset) throws ErrnoException {
        while (true) {
            try {
                int n = (int) Hot.pwrite(fd, at(src), src.remaining(), offset);
                src.position(src.position() + n);
                return n;
            } catch (LastErrorException e) {
                if (e.getErrorCode() != EINTR) throw new ErrnoException("pwrite", e.getErrorCode());
            }
        }
    }

    public static void fdatasync(int fd) throws ErrnoException {
        check("fdatasync", () -> Hot.fdatasync(fd));
    }

    private static final long SIOCOUTQ = 0x5411;

    /** Bytes a TCP socket has sent or holds to send that its peer has not acknowledged, or -1 if that cannot be told. */
    public static int unacknowledged(int fd) {
        var n = new com.sun.jna.ptr.IntByReference();
        try {
            LIBC.ioctl(fd, SIOCOUTQ, n);
            return n.getValue();
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            return -1;
        }
    }

    private static final int PROT_RW = 0x3, MAP_PRIVATE_ANONYMOUS = 0x22, MADV_HUGEPAGE = 14;
    private static final class Unmapper {   // its thread starts only in a process that maps memory
        static final java.lang.ref.Cleaner CLEANER = java.lang.ref.Cleaner.create();
    }

    /**
     * {@code length} bytes of zeroed anonymous memory that the kernel is asked to back with transparent
     * huge pages, as a direct buffer; unmapped once it and every view of it are unreachable. Null where
     * it cannot be had (then the caller allocates as usual). Every page is touched here, as
     * {@code allocateDirect} does by zeroing: a first touch zeroes the page, which is better paid once at
     * start than inside the first request that uses it.
     */
    public static ByteBuffer hugePageMemory(int length) {
        try {
            Pointer p = LIBC.mmap(null, length, PROT_RW, MAP_PRIVATE_ANONYMOUS, -1, 0);
            long address = Pointer.nativeValue(p);
            if (address == -1) return null;
            try {
                LIBC.madvise(p, length, MADV_HUGEPAGE);
            } catch (LastErrorException e) {
                // no transparent huge pages in this kernel: still the same zeroed memory
            }
            ByteBuffer b = p.getByteBuffer(0, length).order(java.nio.ByteOrder.BIG_ENDIAN);   // as allocateDirect gives
            for (int i = 0; i < length; i += 4096) b.put(i, (byte) 0);
            Unmapper.CLEANER.register(b, () -> LIBC.munmap(new Pointer(address), length));
            return b;
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            return null;
        }
    }

    /**
     * Adds {@code increment} to the calling thread's nice value, as {@code nice -n} does to a process
     * (at most 19), and to it alone: Linux keeps a nice value per thread. False where that cannot be
     * done. Lowering a thread's priority needs no privilege.
     */
    public static boolean niceThisThread(int increment) {
        try {
            int tid = LIBC.gettid();
            int nice = Math.min(19, LIBC.getpriority(0 /* PRIO_PROCESS: a thread id names one thread */, tid) + increment);
            LIBC.setpriority(0, tid, nice);
            return true;
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            return false;
        }
    }

    // glibc's malloc.h
    private static final int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
    /** What {@link #keepFreedMemory} sets: the largest malloc served from a heap, and how much may lie free at a heap's top. */
    private static final int MMAP_THRESHOLD = 8 << 20, TRIM_THRESHOLD = 16 << 20;

    /**
     * Tells the C allocator to keep freed memory at the top of each of its heaps for reuse until more
     * than 16 MiB lies free there, and to serve requests below 8 MiB
     * from its heaps, instead of giving memory back to the kernel once 128 KiB lie free (glibc's starting
     * values; it raises them itself, up to 64 and 32 MiB, only after freeing a large mapped block).
     * Netty's receive buffers are malloc'd: while requests hold them on the I/O threads (writes that
     * cannot take the network thread's fast path: FUA, pages not resident, 9P appends) its pools run dry
     * and it allocates and frees them one by one, and every such buffer was handed back and faulted in
     * again page by page. Measured with 1 MiB NBD writes to resident pages sent through the I/O threads
     * (a build forcing that path): 1.4-1.5 GB/s with the network thread busy 7.4 s of 11; 2.2-2.5 GB/s
     * and 5 s with this (4 MiB kept was not enough, 16 MiB was). The cost is resident memory the process
     * no longer uses: at most the threshold per heap, after a burst. False where the C library has no
     * mallopt (not glibc) or refuses.
     */
    public static boolean keepFreedMemory() {
        try {
            return LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 && LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1;
        } catch (UnsatisfiedLinkError e) {
            return false;
        }
    }

    /** Sets the process's file mode creation mask; returns the old one. */
    public static int umask(int mask) {
        return LIBC.umask(mask);
    }

    /** Open descriptors of this process (entries of /proc/self/fd), or -1 where that cannot be read. */
    public static int openDescriptors() {
        String[] names = new java.io.File("/proc/self/fd").list();
        return names == null ? -1 : names.length - 1;   // less the one the listing itself used
    }

    private static final LibC LIBC = Native.load("c", LibC.class);

    /**
     * The calls on every request's path, bound by JNA's direct mapping: a call costs about what a JNI
     * call does, without the interface mapping's proxy, reflection and per-call argument conversion
     * (measured: a getattr storm spent a tenth of its network-thread time in JNA's proxy and in
     * converting the empty path of fstatat(fd, "", AT_EMPTY_PATH)). Every file-system call a request
     * makes is here (an lseek 1.5 us against 2.3 through the interface, an openat and close 5.4 against 7.5).
     */
    private static final class Hot {
        static native int fstat(int fd, Pointer buf) throws LastErrorException;
        static native long pread(int fd, Pointer buf, long count, long offset) throws LastErrorException;
        static native long pwrite(int fd, Pointer buf, long count, long offset) throws LastErrorException;
        static native long preadv(int fd, Pointer iov, int iovcnt, long offset) throws LastErrorException;
        static native long pwritev(int fd, Pointer iov, int iovcnt, long offset) throws LastErrorException;
        static native int close(int fd) throws LastErrorException;
        static native long syscall(long number, int dirfd, String path, Pointer how, long size) throws LastErrorException;
        static native int open(String path, int flags, int mode) throws LastErrorException;
        static native long lseek(int fd, long offset, int whence) throws LastErrorException;
        static native int fallocate(int fd, int mode, long offset, long length) throws LastErrorException;
        static native int openat(int dirfd, String path, int flags, int mode) throws LastErrorException;
        static native int dup(int fd) throws LastErrorException;
        static native int ftruncate(int fd, long length) throws LastErrorException;
        static native int fstatat(int dirfd, String path, Pointer buf, int flags) throws LastErrorException;
        static native int fstatfs(int fd, Pointer buf) throws LastErrorException;
        static native int mkdirat(int dirfd, String path, int mode) throws LastErrorException;
        static native int mknodat(int dirfd, String path, int mode, long dev) throws LastErrorException;
        static native int unlinkat(int dirfd, String path, int flags) throws LastErrorException;
        static native int renameat(int olddirfd, String oldpath, int newdirfd, String newpath) throws LastErrorException;
        static native int symlinkat(String target, int newdirfd, String linkpath) throws LastErrorException;
        static native long readlinkat(int dirfd, String path, Pointer buf, long size) throws LastErrorException;
        static native int linkat(int olddirfd, String oldpath, int newdirfd, String newpath, int flags) throws LastErrorException;
        static native int fchownat(int dirfd, String path, int uid, int gid, int flags) throws LastErrorException;
        static native int fchmodat(int dirfd, String path, int mode, int flags) throws LastErrorException;
        static native int utimensat(int dirfd, String path, Pointer times, int flags) throws LastErrorException;
        static native long getdents64(int fd, Pointer buf, long count) throws LastErrorException;
        static native long getxattr(String path, String name, Pointer value, long size) throws LastErrorException;
        static native int setxattr(String path, String name, Pointer value, long size, int flags) throws LastErrorException;
        static native long listxattr(String path, Pointer list, long size) throws LastErrorException;
        static native int removexattr(String path, String name) throws LastErrorException;
        static native int fdatasync(int fd) throws LastErrorException;

        static {
            Native.register(Hot.class, com.sun.jna.NativeLibrary.getInstance("c"));
        }
    }

    /** An errno from a failed call, kept so callers can tell "unsupported" from a real failure. */
    public static final class ErrnoException extends IOException {
        private final int errno;
        public ErrnoException(String call, int errno) {
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
            return Hot.open(path, flags | O_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw err("open(" + path + ")", e);     // the path named only when it failed
        }
    }

    public static void close(int fd) {
        try {
            Hot.close(fd);
        } catch (LastErrorException ignored) {
            // nothing useful to do: the descriptor is gone either way
        }
    }

    /** lseek; returns -1 for ENXIO (no data / no hole at or after offset). */
    public static long lseek(int fd, long offset, int whence) throws ErrnoException {
        try {
            return Hot.lseek(fd, offset, whence);
        } catch (LastErrorException e) {
            if (e.getErrorCode() == ENXIO) return -1;
            throw new ErrnoException("lseek", e.getErrorCode());
        }
    }

    public static void fallocate(int fd, int mode, long offset, long length) throws ErrnoException {
        check("fallocate", () -> Hot.fallocate(fd, mode, offset, length));
    }
}
