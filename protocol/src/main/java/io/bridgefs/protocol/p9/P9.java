package io.bridgefs.protocol.p9;

/** Numbers of 9P2000.L (see diod's protocol.md and the Linux kernel's net/9p). All little-endian. */
public final class P9 {
    private P9() {}

    public static final String VERSION = "9P2000.L";
    public static final int NOTAG = 0xFFFF;
    public static final int NOFID = 0xFFFFFFFF;
    public static final int HEADER = 7;             // size[4] type[1] tag[2]
    public static final int IOHDRSZ = 24;           // room for a Twrite/Rread header inside msize
    public static final int MAXWELEM = 16;

    // Tgetattr request mask / Rgetattr valid bits
    public static final long GETATTR_MODE = 0x1, GETATTR_NLINK = 0x2, GETATTR_UID = 0x4, GETATTR_GID = 0x8,
            GETATTR_RDEV = 0x10, GETATTR_ATIME = 0x20, GETATTR_MTIME = 0x40, GETATTR_CTIME = 0x80,
            GETATTR_INO = 0x100, GETATTR_SIZE = 0x200, GETATTR_BLOCKS = 0x400, GETATTR_BTIME = 0x800,
            GETATTR_GEN = 0x1000, GETATTR_DATA_VERSION = 0x2000, GETATTR_BASIC = 0x7ff, GETATTR_ALL = 0x3fff;

    // Tsetattr valid bits
    public static final int SETATTR_MODE = 0x1, SETATTR_UID = 0x2, SETATTR_GID = 0x4, SETATTR_SIZE = 0x8,
            SETATTR_ATIME = 0x10, SETATTR_MTIME = 0x20, SETATTR_CTIME = 0x40, SETATTR_ATIME_SET = 0x80,
            SETATTR_MTIME_SET = 0x100;

    // Tlock
    public static final int LOCK_TYPE_RDLCK = 0, LOCK_TYPE_WRLCK = 1, LOCK_TYPE_UNLCK = 2;
    public static final int LOCK_SUCCESS = 0, LOCK_BLOCKED = 1, LOCK_ERROR = 2, LOCK_GRACE = 3;
    public static final int LOCK_FLAGS_BLOCK = 1, LOCK_FLAGS_RECLAIM = 2;

    // Linux open flags as sent in Tlopen/Tlcreate
    public static final int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3, O_CREAT = 0x40, O_EXCL = 0x80,
            O_NOCTTY = 0x100, O_TRUNC = 0x200, O_APPEND = 0x400, O_NONBLOCK = 0x800, O_DIRECT = 0x4000,
            O_LARGEFILE = 0x8000, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_NOATIME = 0x40000,
            O_CLOEXEC = 0x80000, O_SYNC = 0x101000;

    public static final int AT_REMOVEDIR = 0x200;

    // Linux errno values for Rlerror
    public static final int EPERM = 1, ENOENT = 2, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9, EAGAIN = 11, ENOMEM = 12,
            EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21,
            EINVAL = 22, ENFILE = 23, EMFILE = 24, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31,
            ERANGE = 34, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61, EPROTO = 71,
            EOVERFLOW = 75, EBADMSG = 74, EMSGSIZE = 90, EOPNOTSUPP = 95, EDQUOT = 122, ESTALE = 116;
}
